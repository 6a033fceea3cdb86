"""Plot a soak run's RSS and budget over time (bench/soak.sh).

usage: soak_plot.py SOAK_RSS_CSV OUT_PNG SUMMARY_TXT
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = list(csv.DictReader(open(sys.argv[1])))
t = [int(r["second"]) / 60 for r in rows]
rss = [float(r["rss_mib"]) for r in rows]
budget = [float(r["budget_in_use_mib"]) for r in rows]
title = open(sys.argv[3]).readline().strip()

fig, ax = plt.subplots(figsize=(9, 4), dpi=110)
ax.plot(t, rss, label="RSS (VmRSS)", color="#1f77b4")
ax.plot(t, budget, label="memory budget in use", color="#ff7f0e", linewidth=0.8)
ax.set_xlabel("minutes")
ax.set_ylabel("MiB")
ax.set_ylim(bottom=0)
ax.grid(alpha=0.3)
ax.legend(loc="upper left")
ax.set_title(title, fontsize=9)
fig.tight_layout()
fig.savefig(sys.argv[2])

# Per minute: RSS median and floor, the budget's median, and RSS less the
# budget in use (memory held outside the budget; negative while reserved
# budget is not yet touched). RSS that follows the budget is load, not a
# leak; a leak shows as a rising floor and a rising RSS less budget.
import statistics  # noqa: E402

lines = ["minute  rss_median  rss_floor  budget_median  rss_less_budget_median"]
for m in range(int(max(t)) + 1):
    sel = [i for i, x in enumerate(t) if m <= x < m + 1]
    if not sel:
        continue
    r = [rss[i] for i in sel]
    b = [budget[i] for i in sel]
    d = [rss[i] - budget[i] for i in sel]
    lines.append(
        f"{m + 1:>6}  {statistics.median(r):>10.1f}  {min(r):>9.1f}  "
        f"{statistics.median(b):>13.1f}  {statistics.median(d):>22.1f}"
    )
with open(sys.argv[3], "a") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
