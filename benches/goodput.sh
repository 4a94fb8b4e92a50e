#!/usr/bin/env bash
# SCIM goodput (benches/README.md): an IdP-like sync of many tenants through nginx (configured as
# well as nginx can be for SCIM: consistent hash on Authorization, limit_req, keep-alive) and
# through scimitar (token affinity with read-your-writes pins, limits, overload protection, the
# response cache with write-through), in front of three independent scim2-server replicas.
# Two scenarios (GOODPUT_SCENARIOS, default both):
# - steady: RUNS syncs of TENANTS × USERS users; replicas restart for every run.
# - rolling: ROLL_RUNS runs in which each replica is killed (SIGTERM: scim2-server dies at once,
#   with whatever it had in flight), left down ROLL_DOWN s, started again on the same port (empty:
#   it keeps everything in memory) and given ROLL_GAP s before the next one is killed, while the
#   IdP syncs for the whole time. nginx as a careful operator configures it (max_fails, fail_timeout,
#   proxy_next_upstream without non_idempotent), scimitar as its README recommends (health checks,
#   passive ejection, replay-safe retries only). Proxies and replicas are fresh for every run,
#   and the two proxies take turns going first.
# Output: bench-results/goodput.jsonl and bench-results/goodput.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh
RUNS=${RUNS:-5}
TENANTS=${TENANTS:-24}
USERS=${USERS:-20}
DISCOVERY_EVERY=${DISCOVERY_EVERY:-4}
GOODPUT_SCENARIOS=${GOODPUT_SCENARIOS:-steady rolling}
ROLL_RUNS=${ROLL_RUNS:-3}
ROLL_TENANTS=${ROLL_TENANTS:-$TENANTS}
ROLL_USERS=${ROLL_USERS:-1000}    # per tenant: the count bound; the schedule below is the time bound
ROLL_WARMUP=${ROLL_WARMUP:-6}     # s of sync before the first kill
ROLL_DOWN=${ROLL_DOWN:-1}         # s a replica stays down
ROLL_GAP=${ROLL_GAP:-4}           # s between a replica being back (port open) and the next kill
ROLL_TAIL=${ROLL_TAIL:-3}         # s of sync after the window
ROLL_CONTROL=${ROLL_CONTROL:-0}   # 1: the same schedule without killing anything (what the window costs without restarts)
ROLL_REPLICA_MS=${ROLL_REPLICA_MS:-0} # > 0: each replica serves one request at a time, each taking at least this many ms
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
declare -A rp=() # rolling scenario: replica pid by port
proxy_pid= # rolling scenario: the proxy of the current run
cleanup() { stop_all "${pids[@]}" "${rpids[@]}" "${rp[@]}" $proxy_pid; }
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

# `nginx_upstream NAME SERVER_SUFFIX PORT…`: the consistent-hash pool both scenarios use.
nginx_upstream() {
  local name=$1 suffix=$2 p
  shift 2
  printf 'upstream %s {\n    hash $http_authorization consistent;\n    ' "$name"
  for p in "$@"; do printf 'server 127.0.0.1:%s%s; ' "$p" "$suffix"; done
  printf '\n    keepalive 64;\n  }\n'
}

# nginx in front of the replicas as both scenarios run it: `nginx_conf NAME PORT SERVER_PARAMS
# LOCATION_EXTRA REPLICA...` writes $T/NAME-nginx.conf (SERVER_PARAMS go on each upstream
# `server`, LOCATION_EXTRA lines into the SCIM location).
nginx_conf() {
  local name=$1 port=$2 params=$3 extra=$4
  shift 4
  cat >"$T/$name-nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $PWD/$T/$name-nginx.pid;
error_log $PWD/$T/$name-nginx.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  limit_req_zone \$http_authorization zone=per_token:10m rate=200r/s;
  $(nginx_upstream scim "$params" "$@")
  server {
    listen 127.0.0.1:$port;
    client_max_body_size 1m;
    location /v2/ {
      limit_req zone=per_token burst=400 nodelay;
      limit_req_status 429;
      proxy_pass http://scim;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_read_timeout 55s;$extra
    }
  }
}
NGX
}

steady() {
  nginx_conf goodput 18110 "" "" "${REPLICAS[@]}"
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

  local replica_urls=() i target port o1 o2 line p
  for p in "${REPLICAS[@]}"; do replica_urls+=("http://127.0.0.1:$p/v2"); done
  for i in $(seq 1 "$RUNS"); do
    for target in nginx scimitar; do
      port=18110
      [ "$target" = scimitar ] && port=18111
      start_replicas
      # scimitar's health checks may have seen the replicas down while they restarted.
      [ "$target" = scimitar ] && wait_scimitar_healthy 18112
      o1=$(listen_overflows)
      line=$($LOAD target/release/examples/scim_sync "http://127.0.0.1:$port/v2" "$TENANTS" "$USERS" "$DISCOVERY_EVERY" "${replica_urls[@]}")
      o2=$(listen_overflows)
      echo "{\"scenario\":\"steady\",\"target\":\"$target\",\"run\":$i,\"overflows\":$((o2 - o1)),\"result\":$line}" | tee -a "$OUT/goodput.jsonl"
    done
  done
  stop_all "${pids[@]}" "${rpids[@]}"
  pids=()
  rpids=()
}

# ---- rolling restart ----
ROLL=(18121 18122 18123)
ROLL_NGINX=18130
ROLL_SCIMITAR=18131
ROLL_ADMIN=18132
CREATES=$T/roll-creates.log # the current run's files; each run's are kept as $T/roll-<target>-<run>.*
MARKS=$T/roll-marks
STOP=$T/roll-stop

# scim2-server, plus one JSON line per create it applied, appended (O_APPEND, one write) to
# CREATES_LOG right after the in-memory store took it — so creates on a replica that is killed
# later are still counted.
write_replica_launcher() {
  cat >"$T/replica.py" <<'PY'
import json, os, sys, time
from scim2_server import memory
from scim2_server.testserver import cli
log = os.open(os.environ["CREATES_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
port = int(sys.argv[sys.argv.index("--port") + 1])
store = memory.InMemoryStorage.create
def create(self, resource_type, resource):
    r = store(self, resource_type, resource)
    line = {"t": int(time.time() * 1000), "port": port, "externalId": getattr(r, "external_id", None)}
    os.write(log, (json.dumps(line) + "\n").encode())
    return r
memory.InMemoryStorage.create = create
# REPLICA_MS > 0: each request holds the replica for at least that long, one at a time, as if
# each replica were its own machine of that capacity rather than a share of one core.
ms = float(os.environ.get("REPLICA_MS") or 0)
if ms > 0:
    import threading
    serial = threading.Lock()
    make_server = cli.make_server
    def capped(host, port, app, **kw):
        def one_at_a_time(environ, start_response):
            with serial:
                t = time.monotonic()
                body = list(app(environ, start_response))
                time.sleep(max(0.0, ms / 1000 - (time.monotonic() - t)))
            return body
        return make_server(host, port, one_at_a_time, **kw)
    cli.make_server = capped
sys.argv[0] = "scim2-server"
cli.main()
PY
}

start_roll_replica() {
  CREATES_LOG=$CREATES REPLICA_MS=$ROLL_REPLICA_MS $SERVE "$VENV/bin/python" "$T/replica.py" --hostname 127.0.0.1 --port "$1" >/dev/null 2>&1 &
  rp[$1]=$!
}

stop_roll_replicas() {
  stop_all "${rp[@]}"
  rp=()
}

write_roll_configs() {
  # A careful operator: passive failure detection as scimitar's (3 failures → out for 10 s,
  # nginx's default fail_timeout), the next server on errors and timeouts and on 502/503/504
  # answers, but never a POST/PATCH that was already sent (no `non_idempotent`); retries
  # bounded like scimitar's (retries: 2 → 3 tries).
  nginx_conf roll "$ROLL_NGINX" " max_fails=3 fail_timeout=10s" "
      proxy_next_upstream error timeout http_502 http_503 http_504;
      proxy_next_upstream_tries 3;" "${ROLL[@]}"
  # The steady scenario's scimitar plus conf/scimitar.yaml's health check and passive ejection.
  cat >"$T/roll-scimitar.yaml" <<Y
server: {threads: 1, pid_file: $PWD/$T/roll.pid, upgrade_sock: $PWD/$T/roll.sock}
listeners: [{name: main, address: "127.0.0.1:$ROLL_SCIMITAR"}]
admin: {address: "127.0.0.1:$ROLL_ADMIN"}
upstreams:
  scim:
    selection: consistent
    servers: [$(for p in "${ROLL[@]}"; do printf '"127.0.0.1:%s", ' "$p"; done | sed 's/, $//')]
    health_check: {path: /v2/ServiceProviderConfig, interval: 2s, timeout: 1s, rise: 2, fall: 2}
    passive: {max_fails: 3, eject_for: 10s}
    timeouts: {connect: 10s, read: 55s}
    retries: 2
    max_inflight: 64
    queue: 512
    queue_timeout: 5s
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
}

# The restart schedule, identical for both proxies; writes MARKS, then STOP for the load. Also
# the CPU time the proxy (nginx: with its worker) and the replicas (killed ones up to their
# kill, new ones from their start, start-up included) used inside the window:
# `cpu TOTAL_TICKS HZ PROXY_TICKS`.
roll() {
  local p q cpu=0 pcpu
  declare -A t0=()
  sleep "$ROLL_WARMUP"
  t0[$proxy_pid]=$(ticks "$proxy_pid")
  for q in "${ROLL[@]}"; do t0[${rp[$q]}]=$(ticks "${rp[$q]}"); done
  for p in "${ROLL[@]}"; do
    if [ "$ROLL_CONTROL" = 1 ]; then
      echo "kill $p $(date +%s%3N)" >>"$MARKS"
      sleep 4 # about what a kill, ROLL_DOWN and a start take here
    else
      cpu=$((cpu + $(ticks "${rp[$p]}") - ${t0[${rp[$p]}]:-0}))
      echo "kill $p $(date +%s%3N)" >>"$MARKS"
      kill -TERM "${rp[$p]}"
      wait "${rp[$p]}" 2>/dev/null || true
      sleep "$ROLL_DOWN"
      start_roll_replica "$p"
      wait_port "$p" 300
    fi
    echo "up $p $(date +%s%3N)" >>"$MARKS"
    sleep "$ROLL_GAP"
  done
  echo "end $(date +%s%3N)" >>"$MARKS"
  for q in "${ROLL[@]}"; do cpu=$((cpu + $(ticks "${rp[$q]}") - ${t0[${rp[$q]}]:-0})); done
  pcpu=$(($(ticks "$proxy_pid") - ${t0[$proxy_pid]}))
  echo "cpu $((cpu + pcpu)) $(getconf CLK_TCK) $pcpu" >>"$MARKS"
  sleep "$ROLL_TAIL"
  echo "stop $(date +%s%3N)" >>"$MARKS"
  touch "$STOP"
}

# What the proxy itself saw: scimitar's /status.json pool counters, nginx's error log.
proxy_evidence() {
  if [ "$1" = scimitar ]; then
    curl -s "http://127.0.0.1:$ROLL_ADMIN/status.json" >"$T/roll-status.json" || echo '{}' >"$T/roll-status.json"
    python3 - "$T/roll-status.json" <<'PY'
import json, sys
try:
    s = json.load(open(sys.argv[1]))
except ValueError:
    s = {}
keep = ("address", "healthy", "ejections", "picks", "failures", "connect_failures", "retries")
out = {}
for pool in s.get("pools", s.get("upstreams", [])) if isinstance(s, dict) else []:
    if isinstance(pool, dict):
        out = {k: v for k, v in pool.items() if not isinstance(v, (list, dict)) and k not in ("name",)}
        out["servers"] = [{k: v for k, v in srv.items() if k in keep} for srv in pool.get("servers", [])]
print(json.dumps(out))
PY
  else
    local err=$T/roll-nginx.err
    printf '{"connect_refused":%s,"upstream_reset":%s,"upstream_closed":%s,"no_live_upstreams":%s}\n' \
      "$(grep -c 'connect() failed (111' "$err" || true)" "$(grep -c 'reset by peer' "$err" || true)" \
      "$(grep -c 'prematurely closed' "$err" || true)" "$(grep -c 'no live upstreams' "$err" || true)"
  fi
}

rolling() {
  write_replica_launcher
  write_roll_configs
  local i target order port cpid o1 o2 ev win
  for i in $(seq 1 "$ROLL_RUNS"); do
    order="nginx scimitar"
    [ $((i % 2)) = 0 ] && order="scimitar nginx"
    for target in $order; do
      : >"$CREATES"
      : >"$MARKS"
      rm -f "$STOP"
      for p in "${ROLL[@]}"; do start_roll_replica "$p"; done
      for p in "${ROLL[@]}"; do wait_port "$p"; done
      if [ "$target" = nginx ]; then
        port=$ROLL_NGINX
        : >"$T/roll-nginx.err"
        $SERVE nginx -c "$PWD/$T/roll-nginx.conf" -e "$PWD/$T/roll-nginx.err" & proxy_pid=$!
      else
        port=$ROLL_SCIMITAR
        RUST_LOG=warn $SERVE target/release/scimitar -c "$T/roll-scimitar.yaml" 2>"$T/roll-scimitar-$i.log" & proxy_pid=$!
      fi
      wait_port "$port"
      [ "$target" = scimitar ] && wait_scimitar_healthy "$ROLL_ADMIN"
      o1=$(listen_overflows)
      # Time bound: the schedule (~ WARMUP + 3 × (DOWN + start-up + GAP) + TAIL) then STOP; the
      # load stops by itself after 10 minutes whatever happens.
      $LOAD target/release/examples/scim_sync "http://127.0.0.1:$port/v2" "$ROLL_TENANTS" "$ROLL_USERS" \
        "$DISCOVERY_EVERY" --stop-file "$STOP" --duration 600 --trace "$T/roll-trace.csv" --creates "$CREATES" \
        >"$T/roll-result.json" &
      cpid=$!
      roll
      wait "$cpid"
      o2=$(listen_overflows)
      ev=$(proxy_evidence "$target")
      stop_all "$proxy_pid"
      proxy_pid=
      stop_roll_replicas
      win=$(python3 benches/goodput_summary.py window "$T/roll-result.json" "$T/roll-trace.csv" "$MARKS" "$CREATES")
      cp "$T/roll-trace.csv" "$T/roll-$target-$i.trace.csv"
      cp "$MARKS" "$T/roll-$target-$i.marks"
      cp "$CREATES" "$T/roll-$target-$i.creates.log"
      echo "{\"scenario\":\"rolling\",\"control\":$ROLL_CONTROL,\"replica_ms\":$ROLL_REPLICA_MS,\"target\":\"$target\",\"run\":$i,\"overflows\":$((o2 - o1)),\"proxy\":$ev,\"window\":$win,\"result\":$(cat "$T/roll-result.json")}" |
        tee -a "$OUT/goodput.jsonl"
    done
  done
}

for s in $GOODPUT_SCENARIOS; do
  case $s in
    steady) steady ;;
    rolling) rolling ;;
    *) echo "unknown scenario $s (steady, rolling)" >&2; exit 2 ;;
  esac
done

python3 benches/goodput_summary.py report "$OUT/goodput.jsonl" >"$OUT/goodput.md"
cat "$OUT/goodput.md"
