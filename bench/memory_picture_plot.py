"""Plot bench/memory-picture.sh: sluice's RSS, allocated bytes and budget in
use over a mixed run, and the seed-style Go replica's RSS under the same zip
load, placed at the zip phase.

usage: memory_picture_plot.py SLUICE_CSV REPLICA_CSV ZIP_START_S PHASES OUT_PNG
PHASES: "name:start:end,..." in seconds, for the shaded phase labels.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def column(rows, key, shift=0.0):
    xs, ys = [], []
    for r in rows:
        if r[key]:
            xs.append((float(r["second"]) + shift) / 60)
            ys.append(float(r[key]))
    return xs, ys


sluice = list(csv.DictReader(open(sys.argv[1])))
replica = list(csv.DictReader(open(sys.argv[2])))
zip_start = float(sys.argv[3])
phases = [p.split(":") for p in sys.argv[4].split(",")]

fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
for i, (name, a, b) in enumerate(phases):
    a, b = float(a) / 60, float(b) / 60
    if i % 2 == 0:
        ax.axvspan(a, b, color="#000000", alpha=0.04)
    ax.text((a + b) / 2, 0.98, name, transform=ax.get_xaxis_transform(),
            ha="center", va="top", fontsize=8, color="#555555")
ax.plot(*column(replica, "rss_mib", zip_start), label="seed-style Go replica: RSS (same zip load)",
        color="#d62728", linewidth=1.0)
ax.plot(*column(sluice, "rss_mib"), label="sluice: RSS", color="#1f77b4")
ax.plot(*column(sluice, "allocated_mib"), label="sluice: allocated (jemalloc)", color="#2ca02c",
        linewidth=0.9)
ax.plot(*column(sluice, "budget_in_use_mib"), label="sluice: memory budget in use",
        color="#ff7f0e", linewidth=0.9)
ax.set_yscale("log")
ax.set_xlabel("minutes")
ax.set_ylabel("MiB (log scale)")
ax.grid(alpha=0.3, which="both")
ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.92), fontsize=8)
ax.set_title("Memory over a mixed run: pass-through, thumbnails, 32 zip clients, idle", fontsize=9)
fig.tight_layout()
fig.savefig(sys.argv[5])
print("plot:", sys.argv[5])
