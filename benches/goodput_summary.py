#!/usr/bin/env python3
"""benches/goodput.sh's numbers (benches/README.md, "SCIM goodput").

  goodput_summary.py window RESULT TRACE MARKS CREATES
      One rolling-restart run: the load generator's JSON line (RESULT), its per-request trace
      (TRACE: end_ms,latency_us,kind,status), the restart marks (MARKS: `kill PORT MS`,
      `up PORT MS`, `end MS`) and the replicas' log of applied creates (CREATES) → one JSON
      object with what happened inside the restart window (first kill → `end`).
  goodput_summary.py report JSONL
      bench-results/goodput.jsonl → the Markdown report (both scenarios).
"""

import json
import statistics
import sys
from collections import Counter, defaultdict

OK = {200, 201, 204}
THROTTLED = {429, 503}  # scimitar's 503s carry Retry-After (overload); nginx sends none here


def failed(status):
    return status == 0 or (status >= 500 and status not in THROTTLED)


def pct(xs, p):
    xs = sorted(xs)
    return xs[int((len(xs) - 1) * p)] / 1000.0 if xs else 0.0


def window(result_path, trace_path, marks_path, creates_path):
    marks = [line.split() for line in open(marks_path) if line.strip()]
    kills = [(int(m[1]), int(m[2])) for m in marks if m[0] == "kill"]
    ups = [(int(m[1]), int(m[2])) for m in marks if m[0] == "up"]
    end = [int(m[1]) for m in marks if m[0] == "end"]
    res = json.loads(open(result_path).read())
    if not kills or not end:
        return {"error": "no restart marks"}
    ws, we = kills[0][1], end[0]
    secs = (we - ws) / 1000.0
    rows = []
    for line in open(trace_path):
        t, lat, kind, status = line.strip().split(",")
        rows.append((int(t), int(lat), kind, int(status)))
    inw = [r for r in rows if ws <= r[0] < we]
    reqs = [r for r in inw if r[2] != "sync"]
    syncs = sum(1 for r in inw if r[2] == "sync")
    ok = sum(1 for r in reqs if r[3] in OK)
    fails = [r for r in reqs if failed(r[3])]
    # The same rate before the first kill (from 1 s after the start), for the size of the dip.
    b0 = res["start_ms"] + 1000
    before = [r for r in rows if b0 <= r[0] < ws and r[2] != "sync" and r[3] in OK]
    before_s = max((ws - b0) / 1000.0, 0.001)
    # ... and after it (the window's end → the load's stop), to see whether the pool recovered.
    stop = [int(m[1]) for m in marks if m[0] == "stop"]
    after = [r for r in rows if stop and we <= r[0] < stop[0] and r[2] != "sync" and r[3] in OK]
    after_s = (stop[0] - we) / 1000.0 if stop else 0.0
    per_s = Counter((r[0] - ws) // 1000 for r in reqs if r[3] in OK)
    whole = int(secs)
    worst = min((per_s.get(i, 0) for i in range(whole)), default=0)
    by_port = Counter()
    for line in open(creates_path):
        try:
            c = json.loads(line)
        except ValueError:
            continue
        if ws <= c["t"] < we:
            by_port[str(c["port"])] += 1
    # Each failed answer, by kind, and how long after the nearest earlier kill it came.
    fail_detail = []
    for r in fails:
        k = max((k for k in kills if k[1] <= r[0]), default=None, key=lambda k: k[1])
        fail_detail.append({"kind": r[2], "status": r[3], "ms_after_kill": r[0] - k[1] if k else None,
                            "killed": k[0] if k else None})
    cpu = [m for m in marks if m[0] == "cpu"]
    cpu_s = int(cpu[0][1]) / int(cpu[0][2]) if cpu else 0.0
    proxy_cpu_s = int(cpu[0][3]) / int(cpu[0][2]) if cpu and len(cpu[0]) > 3 else 0.0
    return {
        "window_s": round(secs, 2),
        "ops_per_s": round(ok / secs, 1),
        "cpu_s": round(cpu_s, 2),
        "proxy_cpu_s": round(proxy_cpu_s, 2),
        "ops_per_cpu_s": round(ok / cpu_s, 1) if cpu_s else 0.0,
        "syncs_per_s": round(syncs / secs, 1),
        "baseline_ops_per_s": round(len(before) / before_s, 1),
        "after_ops_per_s": round(len(after) / after_s, 1) if after_s > 0 else 0.0,
        "worst_second_ops": worst,
        "failed_answers": len(fails),
        "failed_answers_outside": sum(1 for r in rows if r[2] != "sync" and failed(r[3])) - len(fails),
        "throttled": sum(1 for r in reqs if r[3] in THROTTLED),
        "not_found_read": sum(1 for r in reqs if r[3] == 404 and r[2] == "read"),
        "not_found_patch": sum(1 for r in reqs if r[3] == 404 and r[2] == "patch"),
        "p50_ms": pct([r[1] for r in reqs], 0.5),
        "p99_ms": pct([r[1] for r in reqs], 0.99),
        "creates_by_replica": dict(sorted(by_port.items())),
        "downtime_ms": [u[1] - k[1] for k, u in zip(kills, ups)],
        "failures": fail_detail[:50],
    }


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def steady_report(rows):
    print("## SCIM goodput — IdP-like sync through a proxy to 3 independent scim2-server replicas\n")
    print("| proxy | user syncs/s (median, spread) | requests | errors | throttled (429/503) | read-your-writes misses | duplicate users | p50 ms | p99 ms | replica accept-queue overflows |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    m = {}
    for t in ("nginx", "scimitar"):
        rs = [r["result"] for r in rows if r["target"] == t]
        if not rs:
            continue
        g = [r["syncs_per_s"] for r in rs]
        m[t] = med(g)
        s = lambda k: sum(r.get(k, 0) for r in rs)
        mm = lambda k: med([r[k] for r in rs])
        ov = sum(r.get("overflows", 0) for r in rows if r["target"] == t)
        print(f"| {t} | {m[t]:.1f} ({min(g):.1f}–{max(g):.1f}) | {s('requests')} | {s('errors')} | {s('throttled')} | {s('read_your_writes_misses')} | {s('duplicates')} | {mm('p50_ms'):.1f} | {mm('p99_ms'):.1f} | {ov} |")
    if "nginx" in m and "scimitar" in m:
        print(f"\nscimitar / nginx goodput: {m['scimitar'] / m['nginx']:.2f}×")


def rolling_report(rows, control=False, replica_ms=0):
    cap = f", each replica serving one request at a time in ≥ {replica_ms:g} ms (ROLL_REPLICA_MS)" if replica_ms else ""
    if control:
        print(f"\n## Rolling-restart control — the same schedule and window, nothing killed (ROLL_CONTROL=1){cap}\n")
    else:
        print(f"\n## Rolling restart — each of the 3 replicas killed and started again in turn during the sync{cap}\n")
    print("Window: first kill → last replica back + the gap. Goodput = 2xx answers per second in the window; "
          "per CPU-second = the same answers ÷ CPU time of the proxy and the replicas in the window.\n")
    print("| proxy | run | goodput ops/s in window (before first kill; after the window) | ops per CPU-s (proxy's share of that CPU) | worst second | syncs/s in window | syncs (whole run) | failed answers | failed operations | duplicates: replayed / applied after a failed answer | read-your-writes misses (404 on read / patch in window) | p99 ms in window | creates by replica in window | accept-queue overflows |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    by = defaultdict(list)
    for r in rows:
        by[r["target"]].append(r)
    for t in ("nginx", "scimitar"):
        for r in sorted(by.get(t, []), key=lambda r: r["run"]):
            w, res = r["window"], r["result"]
            cr = "/".join(str(v) for v in w.get("creates_by_replica", {}).values())
            print(f"| {t} | {r['run']} | {w['ops_per_s']:.1f} ({w['baseline_ops_per_s']:.1f}; {w.get('after_ops_per_s', 0):.1f}) | {w.get('ops_per_cpu_s', 0):.0f} ({100 * w.get('proxy_cpu_s', 0) / max(w.get('cpu_s', 0), 0.01):.0f}%) | {w['worst_second_ops']} "
                  f"| {w['syncs_per_s']:.1f} | {res['syncs']} | {res['errors']} | {res['failed_ops']} "
                  f"| {res['duplicates_replayed']} / {res['applied_after_failed_answer']} "
                  f"| {res['read_your_writes_misses']} ({w.get('not_found_read', 0)} / {w.get('not_found_patch', 0)}) "
                  f"| {w['p99_ms']:.1f} | {cr} | {r.get('overflows', 0)} |")
    runs = sorted({r["run"] for r in rows})
    for key, label in (("ops_per_s", "goodput in the window"), ("ops_per_cpu_s", "goodput per CPU-second in the window"),
                       ("baseline_ops_per_s", "goodput before the first kill"), ("after_ops_per_s", "goodput after the window")):
        ratios = []
        for i in runs:
            g = {r["target"]: r["window"].get(key, 0) for r in rows if r["run"] == i}
            if g.get("nginx") and g.get("scimitar"):
                ratios.append(g["scimitar"] / g["nginx"])
        if ratios:
            print(f"\nscimitar / nginx, {label}, per run: {', '.join(f'{x:.2f}×' for x in ratios)}; median {med(ratios):.2f}×")
    for t in ("nginx", "scimitar"):
        rs = by.get(t, [])
        if rs:
            s = lambda k: sum(r["result"].get(k, 0) for r in rs)
            print(f"\n{t}: {s('errors')} failed answers, {s('failed_ops')} failed operations, "
                  f"{s('duplicates_replayed')} replayed creates, {s('applied_after_failed_answer')} creates applied although the IdP got a failure, "
                  f"{s('client_post_resends')} POSTs the client itself sent again, {s('answered_not_applied')} 201s without an applied create (should be 0)")
            fk = Counter()
            for r in rs:
                for f in r["window"].get("failures", []):
                    fk[(f["kind"], f["status"])] += 1
            if fk:
                print(f"  failed answers in the window by (kind, status): {dict(fk)}")
            for r in rs:
                if r.get("proxy"):
                    print(f"  run {r['run']}: {json.dumps(r['proxy'])}")


def report(path):
    rows = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
    steady = [r for r in rows if r.get("scenario", "steady") == "steady"]
    if steady:
        steady_report(steady)
    groups = defaultdict(list)
    for r in rows:
        if r.get("scenario") == "rolling":
            groups[(bool(r.get("control")), r.get("replica_ms", 0))].append(r)
    for (control, ms), rs in sorted(groups.items()):
        rolling_report(rs, control=control, replica_ms=ms)


if __name__ == "__main__":
    if sys.argv[1] == "window":
        print(json.dumps(window(*sys.argv[2:6])))
    else:
        report(sys.argv[2])
