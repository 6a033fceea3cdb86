#!/usr/bin/env python3
"""Parse a /metrics body from stdin with the official Python client's parser
and print every sample as one tab-separated line:
    family  type  sample_name  label=value,label=value  value
(labels sorted by name; our label values never contain ',' or '=').

Usage: parse_metrics.py prometheus|openmetrics < body

Exits non-zero (with the parser's message) when the text does not parse, so a
test that shells out to this fails on malformed exposition text.
"""
import sys

fmt = sys.argv[1] if len(sys.argv) > 1 else "prometheus"
text = sys.stdin.read()
if fmt == "openmetrics":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
elif fmt == "prometheus":
    from prometheus_client.parser import text_string_to_metric_families
else:
    sys.exit("unknown format " + fmt)

families = 0
for family in text_string_to_metric_families(text):
    families += 1
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{family.name}\t{family.type}\t{s.name}\t{labels}\t{s.value!r}")
if families == 0:
    sys.exit("no metric families parsed")
