#!/usr/bin/env bash
# SCIM goodput (benches/README.md): an IdP-like sync of many tenants through nginx (configured as
# well as nginx can be for SCIM: consistent hash on Authorization, limit_req, keep-alive) and
# through scimitar (token affinity with read-your-writes pins, limits, overload protection, the
# response cache with write-through), in
# front of three independent scim2-server replicas. Replicas restart for every run.
# Output: bench-results/goodput.jsonl and bench-results/goodput.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh
RUNS=${RUNS:-5}
TENANTS=${TENANTS:-24}
USERS=${USERS:-20}
DISCOVERY_EVERY=${DISCOVERY_EVERY:-4}
OUT=${OUT:-bench-results}
T=$OUT/tmp
mkdir -p "$T"
: >"$OUT/goodput.jsonl"
VENV=${SCIMITAR_VENV:-.venv}

scripts/ensure-apt.sh nginx cmake pkg-config libssl-dev
make -s venv
cargo build --release --bin scimitar --example scim_sync 2>&1 | tail -1
REPLICAS=(18101 18102 18103)
pids=()
rpids=()
cleanup() { stop_all "${pids[@]}" "${rpids[@]}"; }
trap cleanup EXIT INT TERM

start_replicas() {
  for p in "${rpids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${rpids[@]}"; do wait "$p" 2>/dev/null || true; done
  rpids=()
  for p in "${REPLICAS[@]}"; do
    $SERVE "$VENV/bin/scim2-server" --hostname 127.0.0.1 --port "$p" >/dev/null 2>&1 & rpids+=($!)
  done
  for p in "${REPLICAS[@]}"; do wait_port "$p"; done
}

cat >"$T/goodput-nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $PWD/$T/goodput-nginx.pid;
error_log $PWD/$T/goodput-nginx.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  limit_req_zone \$http_authorization zone=per_token:10m rate=200r/s;
  upstream scim {
    hash \$http_authorization consistent;
    $(for p in "${REPLICAS[@]}"; do printf 'server 127.0.0.1:%s; ' "$p"; done)
    keepalive 64;
  }
  server {
    listen 127.0.0.1:18110;
    client_max_body_size 1m;
    location /v2/ {
      limit_req zone=per_token burst=400 nodelay;
      limit_req_status 429;
      proxy_pass http://scim;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_read_timeout 55s;
    }
  }
}
NGX
$SERVE nginx -c "$PWD/$T/goodput-nginx.conf" -e "$PWD/$T/goodput-nginx.err" & pids+=($!)

cat >"$T/goodput-scimitar.yaml" <<Y
server: {threads: 1, pid_file: $PWD/$T/gp.pid, upgrade_sock: $PWD/$T/gp.sock, grace_period_seconds: 0, graceful_shutdown_timeout_seconds: 1}
listeners: [{name: main, address: "127.0.0.1:18111"}]
admin: {address: "127.0.0.1:18112"}
upstreams:
  scim:
    selection: consistent
    servers: [$(for p in "${REPLICAS[@]}"; do printf '"127.0.0.1:%s", ' "$p"; done | sed 's/, $//')]
    health_check: {path: /v2/ServiceProviderConfig, interval: 2s}
    timeouts: {connect: 10s, read: 55s}   # nginx waits 60 s to connect; scim2-server has a 5-deep accept queue
    max_inflight: 64
    queue: 512
    queue_timeout: 5s
    # scim2-server is single-threaded with a 5-deep accept queue: queue here, not there.
    max_conns: 4
routes:
  - base_path: /v2
    upstream: scim
    affinity: {key: [token, client_ip], pin_after_write: 30s}
    rate_limits: [per-token]
    cache: {discovery: 5m, resources: 10s, write_through: true, ignore_cache_control: true}
rate_limits:
  policies:
    per-token: {key: [token], rate: 200/s, burst: 400}
Y
RUST_LOG=warn $SERVE target/release/scimitar -c "$T/goodput-scimitar.yaml" 2>"$T/goodput-scimitar.log" & pids+=($!)
wait_port 18110
wait_port 18111

replica_urls=()
for p in "${REPLICAS[@]}"; do replica_urls+=("http://127.0.0.1:$p/v2"); done
for i in $(seq 1 "$RUNS"); do
  for target in nginx scimitar; do
    port=18110
    [ "$target" = scimitar ] && port=18111
    start_replicas
    o1=$(listen_overflows)
    line=$($LOAD target/release/examples/scim_sync "http://127.0.0.1:$port/v2" "$TENANTS" "$USERS" "$DISCOVERY_EVERY" "${replica_urls[@]}")
    o2=$(listen_overflows)
    echo "{\"target\":\"$target\",\"run\":$i,\"overflows\":$((o2 - o1)),\"result\":$line}" | tee -a "$OUT/goodput.jsonl"
  done
done

python3 - "$OUT/goodput.jsonl" >"$OUT/goodput.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("## SCIM goodput — IdP-like sync through a proxy to 3 independent scim2-server replicas\n")
print("| proxy | user syncs/s (median, spread) | requests | errors | throttled (429/503) | read-your-writes misses | duplicate users | p50 ms | p99 ms | replica accept-queue overflows |")
print("|---|---|---|---|---|---|---|---|---|---|")
med = {}
for t in ("nginx", "scimitar"):
    rs = [r["result"] for r in rows if r["target"] == t]
    if not rs:
        continue
    g = [r["syncs_per_s"] for r in rs]
    med[t] = statistics.median(g)
    s = lambda k: sum(r[k] for r in rs)
    m = lambda k: statistics.median(r[k] for r in rs)
    ov = sum(r.get("overflows", 0) for r in rows if r["target"] == t)
    print(f"| {t} | {med[t]:.1f} ({min(g):.1f}–{max(g):.1f}) | {s('requests')} | {s('errors')} | {s('throttled')} | {s('read_your_writes_misses')} | {s('duplicates')} | {m('p50_ms'):.1f} | {m('p99_ms'):.1f} | {ov} |")
if "nginx" in med and "scimitar" in med:
    print(f"\nscimitar / nginx goodput: {med['scimitar'] / med['nginx']:.2f}×")
PY
cat "$OUT/goodput.md"
