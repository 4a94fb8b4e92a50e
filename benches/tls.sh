#!/usr/bin/env bash
# TLS benchmark (benches/README.md, "TLS (issue 8)"): scimitar against nginx terminating the same
# certificates in front of the same three upstreams, one worker thread/process each, pinned like
# macro.sh (load on core 0, proxies + upstreams on core 1). scimitar runs twice: as shipped
# (Pingora's vendored OpenSSL) and built with OPENSSL_NO_VENDOR=1 (the system libssl3, the very
# library nginx uses), so handshake costs compare like for like.
#
# Scenarios (SCENARIOS overrides the list):
# Handshake scenarios run HS_CLIENTS s_time processes at once (all on core 0) and add them up.
#   hs-new-<1.2|1.3>-<rsa|ec>   full handshakes, no request: `openssl s_time -new` (no session
#                               reuse by the client), the connection is closed after the handshake
#   get-new-<ver>-<key>         full handshake + one proxied HTTP/1.0 GET per connection (s_time -new -www)
#   get-reuse-<ver>-<key>       resumed handshake + one GET (s_time -reuse -www; TLS 1.3 needs the
#                               GET: the ticket only arrives after the handshake)
#   ka-http, ka-https           HTTP/1.1 keep-alive GET, wrk -t1 -c64, plaintext and over TLS (ECDSA)
#   h2                          HTTP/2 over TLS (ALPN h2, ECDSA), h2load -c4 -m32
# Every scenario records the proxy's own CPU (utime + stime from /proc, nginx's worker included)
# per connection or request, which is what compares proxies fairly when the single-threaded
# client on core 0 is the bottleneck (ECDSA verification costs the client more than signing
# costs the server).
# Output: bench-results/tls.jsonl (raw) and bench-results/tls.md (the table).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh
RUNS=${RUNS:-3}
DUR=${DUR:-4}
HS_CLIENTS=${HS_CLIENTS:-3} # parallel s_time clients: one alone waits on every round trip and leaves the proxy idle
OUT=${OUT:-bench-results}
SYS_TARGET=${SYS_TARGET:-target/sysssl}
T=$OUT/tmp
mkdir -p "$T"
: >"$OUT/tls.jsonl"
ulimit -n 65536 2>/dev/null || true
DEFAULT_SCENARIOS=""
for v in 1.3 1.2; do for k in rsa ec; do
  DEFAULT_SCENARIOS+=" hs-new-$v-$k get-new-$v-$k get-reuse-$v-$k"
done; done
DEFAULT_SCENARIOS+=" ka-http ka-https h2"
SCENARIOS=${SCENARIOS:-$DEFAULT_SCENARIOS}

scripts/ensure-apt.sh wrk nginx nghttp2-client openssl cmake pkg-config libssl-dev
# Debian's `nginx` has both modules; nginx-light is the fallback that certainly does.
if ! nginx -V 2>&1 | grep -q -- --with-http_ssl_module || ! nginx -V 2>&1 | grep -q -- --with-http_v2_module; then
  scripts/ensure-apt.sh nginx-light
fi
# The same command as macro.sh and instructions.sh (the example's dev-dependencies change tokio's
# features, so `--bin scimitar` alone would rebuild everything, and both builds must match).
cargo build --release --bin scimitar --example bare_pingora 2>&1 | tail -1
OPENSSL_NO_VENDOR=1 CARGO_TARGET_DIR=$SYS_TARGET cargo build --release --bin scimitar --example bare_pingora 2>&1 | tail -1
BIN_VENDORED=target/release/scimitar
BIN_SYSTEM=$SYS_TARGET/release/scimitar

# Which OpenSSL each proxy runs with (the vendored one is linked statically: no libssl in ldd).
libssl_of() { ldd "$1" | awk '/libssl/ {print $3}'; }
openssl_version_of() { # binary → "OpenSSL x.y.z" it carries or links
  local lib
  lib=$(libssl_of "$1")
  if [ -z "$lib" ]; then
    grep -aoE 'OpenSSL [0-9]+\.[0-9]+\.[0-9]+[a-z-]* +[0-9]+ [A-Z][a-z]+ [0-9]{4}' "$1" | head -1
  else
    local crypto
    crypto=$(ldd "$1" | awk '/libcrypto/ {print $3}')
    grep -aoE 'OpenSSL [0-9]+\.[0-9]+\.[0-9]+[a-z-]* +[0-9]+ [A-Z][a-z]+ [0-9]{4}' "$(readlink -f "$crypto")" | head -1
  fi
}
NGINX_BIN=$(command -v nginx)
{
  for b in "$BIN_VENDORED" "$BIN_SYSTEM" "$NGINX_BIN"; do
    printf '%s: libssl %s, %s\n' "$b" "$(libssl_of "$b" | grep . || echo 'static (vendored)')" "$(openssl_version_of "$b")"
  done
} | tee "$T/tls-libs.txt"
[ -n "$(libssl_of "$BIN_SYSTEM")" ] || { echo "$BIN_SYSTEM does not link the system libssl" >&2; exit 1; }

pids=()
cpids=()
cleanup() { stop_all "${pids[@]}" "${cpids[@]}"; }
trap cleanup EXIT INT TERM

make_cert rsa
make_cert ec

start_upstreams

# --- proxies: each with a plaintext, an RSA and an ECDSA listener on one worker ---------------
# ports: plain, rsa, ec, admin
declare -A PLAIN=([vendored]=18300 [system]=18301 [nginx]=18303)
declare -A RSA=([vendored]=18310 [system]=18311 [nginx]=18313)
declare -A EC=([vendored]=18320 [system]=18321 [nginx]=18323)
declare -A ADMIN=([vendored]=18305 [system]=18306)
tls_conf() { # vendored|system → scimitar YAML (policies off, the lightest proxying)
  scimitar_conf "${PLAIN[$1]}" "${ADMIN[$1]}" off | add_tls_listeners "${PLAIN[$1]}" "rsa:${RSA[$1]}" "ec:${EC[$1]}"
}
tls_conf vendored >"$T/tls-vendored.yaml"
tls_conf system >"$T/tls-system.yaml"
SCIMITAR_LOG=${SCIMITAR_LOG:-warn}
RUST_LOG=$SCIMITAR_LOG $SERVE "$BIN_VENDORED" -c "$T/tls-vendored.yaml" 2>"$T/tls-vendored.log" & pids+=($!); PID_VENDORED=$!
RUST_LOG=$SCIMITAR_LOG $SERVE "$BIN_SYSTEM" -c "$T/tls-system.yaml" 2>"$T/tls-system.log" & pids+=($!); PID_SYSTEM=$!

# nginx as close to scimitar's TLS settings as 1.22 gets: Pingora's acceptor is
# SslAcceptor::mozilla_intermediate_v5 (TLS 1.2 + 1.3, this cipher list, client's preference)
# with OpenSSL's defaults for the rest: the in-process session cache (20480 entries), stateless
# tickets, 2 h session lifetime.
MOZ_CIPHERS=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384
LOC='location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; }'
{ nginx_proxy_head tls-nginx; cat <<NGX
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_ciphers $MOZ_CIPHERS;
  ssl_prefer_server_ciphers off;
  ssl_session_cache builtin:20480;
  ssl_session_tickets on;
  ssl_session_timeout 2h;
  server { listen 127.0.0.1:${PLAIN[nginx]}; $LOC }
  server { listen 127.0.0.1:${RSA[nginx]} ssl http2; ssl_certificate $PWD/$T/rsa.pem; ssl_certificate_key $PWD/$T/rsa.key; $LOC }
  server { listen 127.0.0.1:${EC[nginx]} ssl http2; ssl_certificate $PWD/$T/ec.pem; ssl_certificate_key $PWD/$T/ec.key; $LOC }
}
NGX
} >"$T/tls-nginx.conf"
$SERVE nginx -c "$PWD/$T/tls-nginx.conf" -e "$PWD/$T/tls-nginx.err" & pids+=($!); PID_NGINX=$!

for t in vendored system nginx; do for p in "${PLAIN[$t]}" "${RSA[$t]}" "${EC[$t]}"; do wait_port "$p"; done; done

TARGETS=(vendored system nginx)
declare -A PIDOF=([vendored]=$PID_VENDORED [system]=$PID_SYSTEM [nginx]=$PID_NGINX)
URL_PATH=/scim/v2/Users/2819c223-7f76-453a-919d-413861904646

# What each listener negotiates with a default client (no SNI, as s_time): protocol, cipher, group.
for t in "${TARGETS[@]}"; do for k in rsa ec; do
  port=$([ "$k" = rsa ] && echo "${RSA[$t]}" || echo "${EC[$t]}")
  s=$(timeout 10 openssl s_client -connect "127.0.0.1:$port" -noservername -alpn h2,http/1.1 </dev/null 2>&1 | tr -d '\0' || true)
  printf '%s %s: %s, %s, %s, ALPN %s\n' "$t" "$k" \
    "$(grep -m1 -oE 'New, [^,]+, Cipher is [^ ]+' <<<"$s")" \
    "$(grep -m1 -oE 'Server Temp Key: [^ ]+' <<<"$s")" \
    "$(grep -m1 -oE 'subject=.*' <<<"$s")" \
    "$(grep -m1 -oE 'ALPN protocol: [^ ]+' <<<"$s" | awk '{print $3}')"
done; done | tee "$T/tls-negotiated.txt"

HZ=$(getconf CLK_TCK)
BOUND=$((DUR + 30)) # hard cap on any one load run, seconds

record() { # target scenario run count seconds ticks_before ticks_after extra_json
  python3 - "$@" >>"$OUT/tls.jsonl" <<'PY'
import json, sys
target, sc, i, n, secs, before, after, hz, extra = sys.argv[1:]
n, secs = int(n), float(secs)
cpu_s = (int(after) - int(before)) / int(hz)
r = {"target": target, "scenario": sc, "run": int(i), "count": n, "secs": secs,
     "rate": n / secs if secs > 0 else 0.0, "cpu_us_per_op": cpu_s * 1e6 / max(n, 1)}
r.update(json.loads(extra))
print(json.dumps(r))
PY
  tail -1 "$OUT/tls.jsonl"
}

run() { # target scenario run
  local t=$1 sc=$2 i=$3 pid=${PIDOF[$1]} before after out
  case $sc in
    hs-* | get-*)
      local mode ver key args port
      IFS=- read -r _ mode ver key <<<"$sc"
      port=$([ "$key" = rsa ] && echo "${RSA[$t]}" || echo "${EC[$t]}")
      args=(-connect "127.0.0.1:$port" "-$mode" -time "$DUR" "-tls${ver/./_}")
      # s_time sends `GET <www> HTTP/1.0` and no Host; scimitar forwards a Host-less request as is
      # (preserve_host) and the upstream answers 400, so the path carries a Host line of its own.
      [ "${sc%%-*}" = get ] && args+=(-www "$URL_PATH HTTP/1.0"$'\r\n'"Host: bench.test"$'\r\n'"X-Bench: s_time")
      # s_time reports whole seconds only, so the rate is over the measured wall time.
      local t0 t1
      before=$(ticks "$pid")
      t0=$(date +%s.%N)
      cpids=()
      for c in $(seq 1 "$HS_CLIENTS"); do
        $LOAD timeout "$BOUND" openssl s_time "${args[@]}" >"$T/s_time-$c.out" 2>&1 &
        cpids+=($!)
      done
      wait "${cpids[@]}" || true
      t1=$(date +%s.%N)
      out=$(for c in $(seq 1 "$HS_CLIENTS"); do cat "$T/s_time-$c.out"; done)
      after=$(ticks "$pid")
      local parsed
      parsed=$(python3 - "$out" "$t0" "$t1" <<'PY'
import json, re, sys
out, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
m = re.findall(r"(\d+) connections in \d+ real seconds, (\d+) bytes read per connection", out)
marks = "".join(re.findall(r"^[r*t3]+", out, re.M))
n = sum(int(c) for c, _ in m)
b = min((int(b) for _, b in m), default=0)
print(n, t1 - t0, json.dumps({"clients": len(m), "bytes_per_conn": b, "reused": marks.count("r"), "full": marks.count("*")}))
PY
)
      local n secs extra
      read -r n secs extra <<<"$parsed"
      record "$t" "$sc" "$i" "$n" "$secs" "$before" "$after" "$HZ" "$extra"
      ;;
    ka-http | ka-https)
      local url line
      if [ "$sc" = ka-http ]; then url="http://127.0.0.1:${PLAIN[$t]}$URL_PATH"; else url="https://127.0.0.1:${EC[$t]}$URL_PATH"; fi
      before=$(ticks "$pid")
      line=$(WRK_METHOD=GET $LOAD timeout "$BOUND" wrk -t1 -c64 -d"${DUR}s" --timeout 5s -s benches/wrk/report.lua "$url" | grep '^{' | tail -1)
      after=$(ticks "$pid")
      local n secs extra
      read -r n secs extra < <(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["requests"], r["duration_us"]/1e6, json.dumps({"errors": r["errors"], "p50_us": r["p50_us"], "p99_us": r["p99_us"]}))' "$line")
      record "$t" "$sc" "$i" "$n" "$secs" "$before" "$after" "$HZ" "$extra"
      ;;
    h2)
      before=$(ticks "$pid")
      out=$($LOAD timeout "$BOUND" h2load -c4 -m32 -D "$DUR" -H "Authorization: Bearer bench-token-1" "https://127.0.0.1:${EC[$t]}$URL_PATH" 2>&1 || true)
      after=$(ticks "$pid")
      local n secs extra
      read -r n secs extra < <(python3 - "$out" <<'PY'
import json, re, sys
out = sys.argv[1]
ok = re.search(r"status codes: (\d+) 2xx", out)
fin = re.search(r"finished in ([\d.]+)(m?s),", out)
errs = re.search(r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
proto = re.search(r"Application protocol: (\S+)", out)
secs = float(fin.group(1)) / (1000 if fin and fin.group(2) == "ms" else 1) if fin else 1.0
print(int(ok.group(1)) if ok else 0, secs, json.dumps({"failed": int(errs.group(1)) if errs else -1, "alpn": proto.group(1) if proto else "?"}))
PY
)
      record "$t" "$sc" "$i" "$n" "$secs" "$before" "$after" "$HZ" "$extra"
      ;;
    *) echo "unknown scenario $sc" >&2; exit 1 ;;
  esac
}

# Warm every listener (upstream keep-alive pools, session caches) before measuring.
for t in "${TARGETS[@]}"; do
  $LOAD timeout 10 wrk -t1 -c64 -d1s "http://127.0.0.1:${PLAIN[$t]}$URL_PATH" >/dev/null
  $LOAD timeout 10 wrk -t1 -c64 -d1s "https://127.0.0.1:${EC[$t]}$URL_PATH" >/dev/null
done
declare -A LOGB=([vendored]=$(wc -l <"$T/tls-vendored.log") [system]=$(wc -l <"$T/tls-system.log") [nginx]=$(wc -l <"$T/tls-nginx.err"))
for sc in $SCENARIOS; do
  for i in $(seq 1 "$RUNS"); do
    for t in "${TARGETS[@]}"; do run "$t" "$sc" "$i"; done
  done
done
declare -A LOGF=([vendored]="$T/tls-vendored.log" [system]="$T/tls-system.log" [nginx]="$T/tls-nginx.err")
for t in "${TARGETS[@]}"; do
  printf '{"kind":"log","target":"%s","lines":%d}\n' "$t" "$(($(wc -l <"${LOGF[$t]}") - ${LOGB[$t]}))" >>"$OUT/tls.jsonl"
done
{
  echo "## TLS benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, ${RUNS} runs × ${DUR}s"
  echo
  echo "git $(git rev-parse --short HEAD 2>/dev/null || echo '?'); load on core 0, proxy + 3 nginx upstreams on core 1; one worker thread per proxy."
  echo
  echo '```'
  cat "$T/tls-libs.txt" "$T/tls-negotiated.txt"
  echo '```'
  python3 benches/tls_summary.py "$OUT/tls.jsonl"
} >"$OUT/tls.md"
cat "$OUT/tls.md"
