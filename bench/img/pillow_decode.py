#!/usr/bin/env python3
"""CPU time of thumbor's decode alone: Pillow (its bundled libjpeg-turbo)
opening each JPEG with draft() at the bench's 800-px target, as thumbor's
PIL engine does before resizing. Median of 3 per file, then the total.

    bench/.venv/bin/python bench/img/pillow_decode.py bench/out/corpus/*.jpg
"""
import sys
import time

from PIL import Image, features

total = 0.0
for path in sys.argv[1:]:
    times = []
    for _ in range(3):
        start = time.process_time()
        im = Image.open(path)
        w, h = im.size
        im.draft(None, (800, h * 800 // w))
        im.load()
        times.append(time.process_time() - start)
    ms = sorted(times)[1] * 1000
    total += ms
    print(f"{path.rsplit('/', 1)[-1]:>48} {im.size[0]}x{im.size[1]} {ms:.0f} ms")
print(f"TOTAL {total:.0f} ms CPU for {len(sys.argv) - 1} files "
      f"(libjpeg-turbo {features.version('libjpeg_turbo')})")
