#!/usr/bin/env bash
# Instructions per proxied request (benches/README.md), exact and repeatable where CPU timings
# on a shared 2-core machine wobble by ±1 µs: each proxy runs under `valgrind --tool=callgrind`
# twice, for N1 and N2 keep-alive GETs (h2load), and (I(N2) − I(N1)) / (N2 − N1) is reported, so
# start-up cost cancels out (so do the client's 4 TLS handshakes on the HTTPS row, made in both runs).
# Output: bench-results/instructions.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh
N1=${N1:-1000}
N2=${N2:-3000}
OUT=${OUT:-bench-results}
T=$OUT/tmp
mkdir -p "$T"
pids=()
cleanup() { stop_all "${pids[@]}"; }
trap cleanup EXIT INT TERM

scripts/ensure-apt.sh valgrind nginx nghttp2-client openssl cmake pkg-config libssl-dev
cargo build --release --bin scimitar --example bare_pingora 2>&1 | tail -1
start_upstreams
# A probe every 5 s would land unevenly in the two runs; one a minute keeps it out of the delta.
scimitar_conf 18190 18195 on | sed 's/interval: 5s/interval: 60s/' >"$T/i-on.yaml"
scimitar_conf 18191 18196 off >"$T/i-off.yaml"
# The same with issue 11's edge features on the route: a bearer-token check (h2load sends
# `Bearer bench`) and header rules each way (one with a variable).
sha=$(printf bench | sha256sum | cut -d' ' -f1)
scimitar_conf 18189 18188 off | awk -v sha="$sha" '{ print } /^    upstream: u$/ {
  print "    auth: {tokens: [{name: bench, sha256: " sha "}]}"
  print "    headers:"
  print "      request: {set: {X-Real-IP: $remote_addr}, remove: [X-Debug]}"
  print "      response: {set: {Strict-Transport-Security: max-age=63072000}, remove: [Server]}"
}' >"$T/i-edge.yaml"
# The same, proxying HTTPS/1.1 from a TLS listener (ECDSA P-256): what TLS adds per request.
make_cert ec
scimitar_conf 18193 18198 off | add_tls_listeners 18193 ec:18194 >"$T/i-tls.yaml"

count() { # name port cmd… → instructions for N requests, for N in N1 N2 (SCHEME=https for TLS)
  local name=$1 port=$2 scheme=${SCHEME:-http} n
  shift 2
  for n in "$N1" "$N2"; do
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$T/cg-$name-$n.out" "$@" \
      >/dev/null 2>"$T/cg-$name-$n.log" &
    local vp=$!
    # count runs in $(…): the script's cleanup cannot see vp, so this subshell stops it itself.
    trap "stop_all $vp" EXIT
    wait_port "$port" 600
    sleep 0.5
    h2load --h1 -n "$n" -c 4 -H "Authorization: Bearer bench" \
      "$scheme://127.0.0.1:$port/scim/v2/Users/2819c223-7f76-453a-919d-413861904646" >"$T/h2load-$name-$n.txt"
    grep -q "$n succeeded" "$T/h2load-$name-$n.txt" || { echo "$name: not every request succeeded" >&2; exit 1; }
    kill -TERM "$vp"
    wait "$vp" 2>/dev/null || true
    trap - EXIT
  done
  local a b
  a=$(grep -oE "Collected : [0-9]+" "$T/cg-$name-$N1.log" | awk '{print $3}')
  b=$(grep -oE "Collected : [0-9]+" "$T/cg-$name-$N2.log" | awk '{print $3}')
  echo $(((b - a) / (N2 - N1)))
}

bare=$(count bare 18192 target/release/examples/bare_pingora 127.0.0.1:18192 1 4096 "${UP[@]/#/127.0.0.1:}")
off=$(count off 18191 target/release/scimitar -c "$T/i-off.yaml")
on=$(count on 18190 target/release/scimitar -c "$T/i-on.yaml")
edge=$(count edge 18189 target/release/scimitar -c "$T/i-edge.yaml")
tls=$(SCHEME=https count tls 18194 target/release/scimitar -c "$T/i-tls.yaml")
{
  echo "## Instructions per keep-alive GET (callgrind, ($N2 − $N1) requests) — git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo
  echo "| proxy | instructions/request | vs bare Pingora |"
  echo "|---|---|---|"
  for row in "bare pingora:$bare" "scimitar (policies off):$off" "scimitar (policies on):$on" "scimitar (policies off) + auth + header rules:$edge" "scimitar (policies off), HTTPS/1.1 ECDSA:$tls"; do
    name=${row%%:*}
    v=${row##*:}
    echo "| $name | $v | $(python3 -c "print(f'{$v / $bare:.3f}×')") |"
  done
} >"$OUT/instructions.md"
cat "$OUT/instructions.md"
