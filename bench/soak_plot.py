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
