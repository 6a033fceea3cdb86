"""Drive one phase of bench/memory-picture.sh and sample memory meanwhile.

usage: memory_picture_load.py sample OUT_CSV PID [ADMIN_URL]
       memory_picture_load.py passthrough|images BASE_URL SECONDS THREADS

`sample` writes one row every 0.5 s until killed: seconds since start, the
process's RSS (VmRSS) and, with ADMIN_URL (sluice's admin listener), jemalloc's
allocated bytes and the memory budget in use, all in MiB. The load phases
fetch the bench photos (/photos/photo-01.jpg .. -16) through sluice: whole
(pass-through) or as thumbnails of a changing width (images), THREADS at a
time, for SECONDS; they print requests, failures and bytes.
"""
import re
import sys
import threading
import time
import urllib.request

MIB = 1 << 20


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def sample(out, pid, admin=None):
    start = time.monotonic()
    with open(out, "w") as f:
        f.write("second,rss_mib,allocated_mib,budget_in_use_mib\n")
        while True:
            alloc = budget = ""
            if admin:
                try:
                    text = urllib.request.urlopen(admin + "/metrics", timeout=2).read().decode()
                    m = dict(re.findall(r"^(sluice_[a-z_]+) ([0-9.e+]+)$", text, re.M))
                    alloc = "%.2f" % (float(m["sluice_allocator_allocated_bytes"]) / MIB)
                    budget = "%.2f" % (float(m["sluice_memory_budget_in_use_bytes"]) / MIB)
                except Exception:  # a missed scrape is a gap in the plot
                    pass
            try:
                rss = rss_mib(pid)
            except FileNotFoundError:
                return
            f.write("%.2f,%.2f,%s,%s\n" % (time.monotonic() - start, rss, alloc, budget))
            f.flush()
            time.sleep(0.5)


def load(kind, base, seconds, threads):
    deadline = time.monotonic() + seconds
    counts = {"requests": 0, "failures": 0, "bytes": 0}
    lock = threading.Lock()

    def worker(k):
        i = k
        while time.monotonic() < deadline:
            i += 1
            photo = "photo-%02d.jpg" % (i % 16 + 1)
            if kind == "passthrough":
                url = f"{base}/photos/{photo}"
            else:
                url = f"{base}/img/_/rs:fit:{240 + (i * 7) % 400}:0/plain/photos/{photo}"
            try:
                with urllib.request.urlopen(url, timeout=60) as r:
                    n = len(r.read())
                ok = True
            except Exception:
                n, ok = 0, False
            with lock:
                counts["requests"] += 1
                counts["failures"] += 0 if ok else 1
                counts["bytes"] += n

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(f"{kind}: {counts['requests']} requests, {counts['failures']} failed, "
          f"{counts['bytes'] / 1e6:.0f} MB in {seconds} s")


if __name__ == "__main__":
    if sys.argv[1] == "sample":
        sample(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        load(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
