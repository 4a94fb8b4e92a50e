#!/usr/bin/env python3
"""Turns benches/tls.sh's JSON lines into the Markdown report: per scenario the median rate and
the proxy's CPU µs per connection/request for scimitar (vendored OpenSSL), scimitar (system
OpenSSL) and nginx, the ratios to nginx, and the issue's two targets."""

import json
import statistics
import sys
from collections import defaultdict

TARGETS = ["vendored", "system", "nginx"]
NAMES = {"vendored": "scimitar, vendored OpenSSL", "system": "scimitar, system OpenSSL", "nginx": "nginx"}


def describe(sc):
    if sc == "ka-http":
        return "HTTP/1.1 keep-alive GET, plaintext, wrk -c64", "req/s"
    if sc == "ka-https":
        return "HTTP/1.1 keep-alive GET over TLS (ECDSA), wrk -c64", "req/s"
    if sc == "h2":
        return "HTTP/2 GET over TLS (ECDSA), h2load -c4 -m32", "req/s"
    kind, mode, ver, key = sc.split("-")
    key = "RSA-2048" if key == "rsa" else "ECDSA P-256"
    what = {("hs", "new"): "full handshake, no request",
            ("get", "new"): "full handshake + 1 GET",
            ("get", "reuse"): "resumed handshake + 1 GET"}[(kind, mode)]
    return f"TLS {ver} {key}: {what}", "conn/s"


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt(x, digits=0):
    return "-" if x != x else f"{x:,.{digits}f}"


def main(path):
    rows = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
    by = defaultdict(list)
    logs = {}
    order = []
    for r in rows:
        if r.get("kind") == "log":
            logs[r["target"]] = r["lines"]
            continue
        if r["scenario"] not in order:
            order.append(r["scenario"])
        by[(r["scenario"], r["target"])].append(r)

    def m(sc, t, key):
        return med([r[key] for r in by[(sc, t)]])

    def spread(sc, t, key):
        xs = [r[key] for r in by[(sc, t)]]
        return f" ({min(xs):,.0f}–{max(xs):,.0f})" if len(xs) > 1 else ""

    print()
    print("Rates are per second of the client's run; CPU is the proxy's own utime + stime per")
    print("connection (handshake scenarios) or per request, from /proc. *÷ nginx*: rate ratio (higher is")
    print("better) and CPU ratio (lower is better). Medians; spread over runs in brackets.")
    print()
    print("| scenario | metric | " + " | ".join(NAMES[t] for t in TARGETS) + " | vendored ÷ nginx | system ÷ nginx |")
    print("|---|---|" + "---|" * len(TARGETS) + "---|---|")
    for sc in order:
        title, unit = describe(sc)
        rate = {t: m(sc, t, "rate") for t in TARGETS}
        cpu = {t: m(sc, t, "cpu_us_per_op") for t in TARGETS}
        cells = [f"{fmt(rate[t])}{spread(sc, t, 'rate')}" for t in TARGETS]
        print(f"| {title} | {unit} | " + " | ".join(cells) +
              f" | {rate['vendored'] / rate['nginx']:.2f} | {rate['system'] / rate['nginx']:.2f} |")
        cells = [f"{fmt(cpu[t], 1)}" for t in TARGETS]
        print(f"| | CPU µs/{'conn' if unit == 'conn/s' else 'req'} | " + " | ".join(cells) +
              f" | {cpu['vendored'] / cpu['nginx']:.2f} | {cpu['system'] / cpu['nginx']:.2f} |")
    # Sanity: resumption happened, GETs got their 1 KB answer, no errors.
    notes = []
    for (sc, t), rs in sorted(by.items()):
        for r in rs:
            if sc.startswith("get-reuse") and r.get("full", 0) > 1:
                notes.append(f"{sc} {t} run {r['run']}: {r['full']} of {r['full'] + r['reused']} connections not resumed")
            if sc.startswith("get-") and r.get("bytes_per_conn", 1024) < 1024:
                notes.append(f"{sc} {t} run {r['run']}: only {r['bytes_per_conn']} bytes per connection")
            if r.get("errors", 0) or r.get("failed", 0) not in (0,):
                notes.append(f"{sc} {t} run {r['run']}: errors {r.get('errors', 0)}, failed {r.get('failed', 0)}")
            if sc == "h2" and r.get("alpn") != "h2":
                notes.append(f"h2 {t} run {r['run']}: ALPN {r.get('alpn')}")
            if r["count"] == 0:
                notes.append(f"{sc} {t} run {r['run']}: nothing completed")
    print()
    reuse = [(sc, t, sum(r["reused"] for r in rs), sum(r["reused"] + r["full"] for r in rs))
             for (sc, t), rs in sorted(by.items()) if sc.startswith("get-reuse")]
    if reuse:
        print("Resumed connections (s_time marks): " + "; ".join(f"{sc} {t} {a}/{b}" for sc, t, a, b in reuse))
        print()
    if logs:
        print("Log lines written during the measured runs: " + ", ".join(f"{NAMES[t]} {n}" for t, n in logs.items()))
        print()
    print("Checks: " + ("; ".join(notes) if notes else "every run completed, resumed where asked, no errors."))
    print()

    # The targets.
    print("### Targets")
    print()
    hs = [sc for sc in order if sc.startswith("hs-new")]
    for sc in hs:
        r = m(sc, "system", "rate") / m(sc, "nginx", "rate")
        c = m(sc, "nginx", "cpu_us_per_op") / m(sc, "system", "cpu_us_per_op")
        ok = "met" if min(r, c) >= 0.9 else f"NOT met ({min(r, c) / 0.9 - 1:+.0%} against 0.9×)"
        print(f"- {describe(sc)[0]}, same OpenSSL (system): handshakes/s {r:.2f}× nginx, "
              f"per-core capacity (nginx CPU ÷ scimitar CPU per handshake) {c:.2f}× → ≥ 0.9×: **{ok}**")
    if "ka-http" in order and "ka-https" in order:
        for t in ("vendored", "system"):
            p = m("ka-http", t, "rate") / m("ka-http", "nginx", "rate")
            s = m("ka-https", t, "rate") / m("ka-https", "nginx", "rate")
            pc = m("ka-http", t, "cpu_us_per_op") / m("ka-http", "nginx", "cpu_us_per_op")
            sc_ = m("ka-https", t, "cpu_us_per_op") / m("ka-https", "nginx", "cpu_us_per_op")
            # Run-to-run noise on this machine is a few per cent: call a miss within 5% "within noise".
            worst = max(p / s, sc_ / pc)
            ok = "met" if worst <= 1 else "within noise (≤ 5%)" if worst <= 1.05 else f"NOT met (by {100 * (worst - 1):.0f}%)"
            print(f"- keep-alive, {NAMES[t]}: req/s ÷ nginx {s:.2f} over TLS vs {p:.2f} plaintext; "
                  f"CPU/req ÷ nginx {sc_:.2f} over TLS vs {pc:.2f} plaintext → TLS no worse: **{ok}**")


if __name__ == "__main__":
    main(sys.argv[1])
