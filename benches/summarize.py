#!/usr/bin/env python3
"""Turns benches/macro.sh's JSON lines into the Markdown report: medians with spread over the
runs, CPU µs per request, and ratios against nginx, HAProxy and bare Pingora."""

import json
import statistics
import sys
from collections import defaultdict

TARGETS = ["scimitar (policies on)", "scimitar (policies off)", "bare pingora", "nginx", "haproxy", "direct"]
SCENARIOS = [
    ("get", "keep-alive GET, 64 conns, saturation"),
    ("post", "keep-alive POST 1 KB, 64 conns, saturation"),
    ("paced", "GET at a fixed pace (16 conns × 4 ms), latency"),
    ("close", "connection per request, 64 conns"),
    ("c1000", "keep-alive GET, 1000 conns"),
]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def spread(xs):
    return f"{min(xs):.0f}–{max(xs):.0f}" if xs else "-"


def main(path):
    rows = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
    by = defaultdict(list)
    rss = {}
    for r in rows:
        if r.get("kind") == "rss":
            rss[r["target"]] = r["rss_kb"]
            continue
        by[(r["target"], r["scenario"])].append(r)
    out = []
    for key, title in SCENARIOS:
        out.append(f"\n### {title}\n")
        out.append("| proxy | req/s (median, spread) | CPU µs/req (median, spread) | vs nginx | vs HAProxy | vs bare Pingora | p50 ms | p99 ms | p99.9 ms | errors |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        cpu_med = {}
        for t in TARGETS:
            rs = by.get((t, key), [])
            if rs:
                cpu_med[t] = med([r["cpu_us_per_req"] for r in rs])
        for t in TARGETS:
            rs = by.get((t, key), [])
            if not rs:
                continue
            rps = [r["rps"] for r in rs]
            cpu = [r["cpu_us_per_req"] for r in rs]
            c = cpu_med[t]

            def ratio(other):
                o = cpu_med.get(other)
                return f"{c / o:.2f}×" if o and t != "direct" else "-"

            cpu_text = f"{c:.1f} ({min(cpu):.1f}–{max(cpu):.1f})" if t != "direct" else "(upstream only)"
            out.append(
                f"| {t} | {med(rps):.0f} ({spread(rps)}) | {cpu_text} | {ratio('nginx')} | {ratio('haproxy')} | {ratio('bare pingora')} "
                f"| {med([r['p50_us'] for r in rs]) / 1000:.2f} | {med([r['p99_us'] for r in rs]) / 1000:.2f} "
                f"| {med([r['p999_us'] for r in rs]) / 1000:.2f} | {sum(r['errors'] for r in rs)} |"
            )
    if rss:
        out.append("\n### Peak RSS after all scenarios\n")
        out.append("| proxy | peak RSS MiB |")
        out.append("|---|---|")
        for t in TARGETS:
            if t in rss:
                out.append(f"| {t} | {rss[t] / 1024:.1f} |")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
