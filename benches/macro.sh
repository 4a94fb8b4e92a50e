#!/usr/bin/env bash
# Side-by-side macro benchmark (benches/README.md): scimitar with policies on and off, a bare
# Pingora proxy, nginx, HAProxy and direct, in front of the same three nginx upstreams serving a
# 1 KB SCIM User. Load generator on core 0; proxy + upstreams on core 1; one worker thread each.
# Output: bench-results/macro.jsonl (raw) and bench-results/macro.md (the table).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh
RUNS=${RUNS:-3}
DUR=${DUR:-3}
OUT=${OUT:-bench-results}
T=$OUT/tmp
mkdir -p "$T"
: >"$OUT/macro.jsonl"
ulimit -n 65536 2>/dev/null || true

scripts/ensure-apt.sh wrk nginx haproxy nghttp2-client cmake pkg-config libssl-dev
cargo build --release --bin scimitar --example bare_pingora 2>&1 | tail -1

pids=()
cleanup() { stop_all "${pids[@]}"; }
trap cleanup EXIT INT TERM


start_upstreams

# --- proxies -----------------------------------------------------------------------------------
scimitar_conf 18090 18095 on >"$T/on.yaml"
scimitar_conf 18091 18096 off >"$T/off.yaml"
SCIMITAR_LOG=${SCIMITAR_LOG:-warn}
RUST_LOG=$SCIMITAR_LOG $SERVE target/release/scimitar -c "$T/on.yaml" 2>"$T/on.log" & pids+=($!); PID_ON=$!
RUST_LOG=$SCIMITAR_LOG $SERVE target/release/scimitar -c "$T/off.yaml" 2>"$T/off.log" & pids+=($!); PID_OFF=$!
RUST_LOG=warn $SERVE target/release/examples/bare_pingora 127.0.0.1:18092 1 4096 "${UP[@]/#/127.0.0.1:}" 2>"$T/bare.log" & pids+=($!); PID_BARE=$!

{ nginx_proxy_head nginx-proxy; cat <<NGX
  server {
    listen 127.0.0.1:18093;
    location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGX
} >"$T/nginx-proxy.conf"
$SERVE nginx -c "$PWD/$T/nginx-proxy.conf" -e "$PWD/$T/nginx-proxy.err" & pids+=($!); PID_NGINX=$!

cat >"$T/haproxy.cfg" <<HAP
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend f
  bind 127.0.0.1:18094
  default_backend b
backend b
  balance roundrobin
$(for p in "${UP[@]}"; do printf '  server s%s 127.0.0.1:%s\n' "$p" "$p"; done)
HAP
$SERVE haproxy -f "$T/haproxy.cfg" -db & pids+=($!); PID_HAPROXY=$!

for p in 18090 18091 18092 18093 18094; do wait_port "$p"; done

declare -A PORT=(["scimitar (policies on)"]=18090 ["scimitar (policies off)"]=18091 ["bare pingora"]=18092 ["nginx"]=18093 ["haproxy"]=18094 ["direct"]=${UP[0]})
declare -A PIDOF=(["scimitar (policies on)"]=$PID_ON ["scimitar (policies off)"]=$PID_OFF ["bare pingora"]=$PID_BARE ["nginx"]=$PID_NGINX ["haproxy"]=$PID_HAPROXY ["direct"]=0)
TARGETS=("scimitar (policies on)" "scimitar (policies off)" "bare pingora" "nginx" "haproxy" "direct")

rss_kb() {
  local total=0 p v
  for p in $1 $(pgrep -P "$1" 2>/dev/null); do
    v=$(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
HZ=$(getconf CLK_TCK)
URL_PATH=/scim/v2/Users/2819c223-7f76-453a-919d-413861904646

run() { # target scenario run
  local target=$1 sc=$2 i=$3 port=${PORT[$1]} pid=${PIDOF[$1]}
  local conns=64 env=(WRK_METHOD=GET)
  case $sc in
    post) env=(WRK_METHOD=POST WRK_BODY_FILE="$T/user.json") ;;
    paced) conns=16; env=(WRK_METHOD=GET WRK_DELAY_MS=4) ;;
    close) env=(WRK_METHOD=GET WRK_CLOSE=1) ;;
    c1000) conns=1000 ;;
  esac
  local path=$URL_PATH
  [ "$sc" = post ] && path=/scim/v2/Users
  local before=0 after=0
  [ "$pid" != 0 ] && before=$(ticks "$pid")
  local line
  line=$(env "${env[@]}" $LOAD wrk -t1 -c"$conns" -d"${DUR}s" --timeout 5s -s benches/wrk/report.lua "http://127.0.0.1:$port$path" | grep '^{' | tail -1)
  [ "$pid" != 0 ] && after=$(ticks "$pid")
  python3 - "$target" "$sc" "$i" "$line" "$before" "$after" "$HZ" >>"$OUT/macro.jsonl" <<'PY'
import json, sys
target, sc, i, line, before, after, hz = sys.argv[1:]
r = json.loads(line)
secs = r["duration_us"] / 1e6
cpu_s = (int(after) - int(before)) / int(hz)
n = max(r["requests"], 1)
print(json.dumps({"target": target, "scenario": sc, "run": int(i), "requests": r["requests"],
                  "rps": r["requests"] / secs, "cpu_us_per_req": cpu_s * 1e6 / n,
                  "p50_us": r["p50_us"], "p99_us": r["p99_us"], "p999_us": r["p999_us"],
                  "errors": r["errors"]}))
PY
  tail -1 "$OUT/macro.jsonl"
}

# Warm every target (connections, pools) before measuring.
for t in "${TARGETS[@]}"; do $LOAD wrk -t1 -c64 -d1s "http://127.0.0.1:${PORT[$t]}$URL_PATH" >/dev/null; done
for sc in ${SCENARIOS:-get post paced close c1000}; do
  for i in $(seq 1 "$RUNS"); do
    for t in "${TARGETS[@]}"; do run "$t" "$sc" "$i"; done
  done
done
for t in "${TARGETS[@]}"; do
  [ "${PIDOF[$t]}" != 0 ] && echo "{\"kind\":\"rss\",\"target\":\"$t\",\"rss_kb\":$(rss_kb "${PIDOF[$t]}")}" >>"$OUT/macro.jsonl"
done
{
  echo "## Macro benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, ${RUNS} runs × ${DUR}s, wrk -t1"
  echo
  echo "git $(git rev-parse --short HEAD 2>/dev/null || echo '?'); load on core 0, proxy + 3 nginx upstreams on core 1; one worker thread per proxy."
  python3 benches/summarize.py "$OUT/macro.jsonl"
} >"$OUT/macro.md"
cat "$OUT/macro.md"
