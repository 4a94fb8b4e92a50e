# Shared by the scripts in benches/ (sourced, not run).

# Background jobs of a script ignore SIGINT, so: SIGTERM (the proxies here have no grace period),
# then SIGKILL for whatever is still up after 3 s, so a script never hangs on a child.
stop_all() {
  local p
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 30); do
    local alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  for p in "$@"; do kill -9 "$p" 2>/dev/null || true; done
}

# `wait_port PORT [TRIES]`: up to TRIES × 0.1 s (default 10 s; valgrind start-up on a busy machine needs more).
wait_port() { for _ in $(seq 1 "${2:-100}"); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

# Load generator on core 0; proxies and upstreams on core 1 (when there are two cores).
if [ "$(nproc)" -ge 2 ]; then LOAD="taskset -c 0"; SERVE="taskset -c 1"; else LOAD=""; SERVE=""; fi

# The three upstreams of the macro and instruction benchmarks: one nginx, one worker, three
# ports, every request answered with the same 1 KB SCIM User. Needs T (scratch dir) and pids.
UP=(18081 18082 18083)
start_upstreams() {
  USER_JSON=$(python3 - <<'PY'
import json
u = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "2819c223-7f76-453a-919d-413861904646",
     "externalId": "bjensen", "userName": "bjensen@example.com",
     "name": {"formatted": "Ms. Barbara J Jensen III", "familyName": "Jensen", "givenName": "Barbara"},
     "displayName": "Babs Jensen", "active": True,
     "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}],
     "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z",
              "version": "W/\"3694e05e9dff590\"", "location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646"}}
s = json.dumps(u)
s = s[:-1] + ', "title": "' + "x" * (1024 - len(s) - 13) + '"}'
print(s)
PY
)
  printf '%s' "$USER_JSON" >"$T/user.json"
  cat >"$T/upstreams.conf" <<NGX
worker_processes 1;
daemon off;
pid $PWD/$T/upstreams.pid;
error_log $PWD/$T/upstreams.err warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_buffer_size 64k;
  server { listen 127.0.0.1:${UP[0]} reuseport; location / { default_type application/scim+json; return 200 '$USER_JSON'; } }
  server { listen 127.0.0.1:${UP[1]} reuseport; location / { default_type application/scim+json; return 200 '$USER_JSON'; } }
  server { listen 127.0.0.1:${UP[2]} reuseport; location / { default_type application/scim+json; return 200 '$USER_JSON'; } }
}
NGX
  $SERVE nginx -c "$PWD/$T/upstreams.conf" -e "$PWD/$T/upstreams.err" &
  pids+=($!)
  for p in "${UP[@]}"; do wait_port "$p"; done
}

# A scimitar config in front of UP: `scimitar_conf PORT ADMIN on|off` (see benches/README.md);
# "on" also writes the JSON access log to a file in $T (metrics are always on, never scraped).
servers_yaml() { for p in "${UP[@]}"; do echo "      - 127.0.0.1:$p"; done; }
scimitar_conf() { # $1 port, $2 admin, $3 on|off
  cat <<Y
server: {threads: 1, pid_file: $PWD/$T/s$1.pid, upgrade_sock: $PWD/$T/s$1.sock, upstream_keepalive_pool_size: 4096, grace_period_seconds: 0, graceful_shutdown_timeout_seconds: 1}
listeners: [{name: main, address: "127.0.0.1:$1"}]
admin: {address: "127.0.0.1:$2"}
upstreams:
  u:
    selection: $([ "$3" = on ] && echo consistent || echo round_robin)
    servers:
$(servers_yaml)
    keepalive: 1024
    passive: {max_fails: 0}
$([ "$3" = on ] && printf '    health_check: {path: /health, interval: 5s}\n    max_inflight: 100000\n    queue: 0\n')
routes:
  - base_path: /scim/v2
    upstream: u
$([ "$3" = on ] && printf '    affinity: {key: [token, tenant, client_ip], pin_after_write: 30s}\n    rate_limits: [ceiling]\nrate_limits:\n  policies:\n    ceiling: {key: [token, client_ip], rate: 1000000/s, burst: 1000000}\n')
$([ "$3" = on ] && printf 'access_log: {path: %s}\n' "$PWD/$T/access-$1.log")
Y
}

# CPU ticks of a process and its children (nginx's work happens in its worker).
ticks() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" 2>/dev/null); do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}

# Connections the kernel dropped because a listener's accept queue was full (all listeners).
listen_overflows() {
  awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) n[i] = $i; h = 1 } else { for (i = 1; i <= NF; i++) if (n[i] == "ListenOverflows") print $i } }' /proc/net/netstat
}

# A CA and a leaf for CN/SAN bench.test, made fresh (no key is ever committed): `make_cert rsa|ec`
# → $T/<kind>.pem (leaf, then the CA: a leaf-then-chain file) and $T/<kind>.key.
make_cert() {
  local kind=$1 newkey
  case $kind in
    rsa) newkey=(-newkey rsa:2048) ;;
    ec) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
    *) echo "make_cert: rsa or ec" >&2; return 1 ;;
  esac
  openssl req -x509 "${newkey[@]}" -nodes -days 400 -subj "/CN=bench $kind CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
    -keyout "$T/$kind-ca.key" -out "$T/$kind-ca.pem" 2>/dev/null
  openssl req -new "${newkey[@]}" -nodes -subj /CN=bench.test -keyout "$T/$kind.key" -out "$T/$kind.csr" 2>/dev/null
  printf 'subjectAltName=DNS:bench.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$T/$kind.ext"
  openssl x509 -req -in "$T/$kind.csr" -CA "$T/$kind-ca.pem" -CAkey "$T/$kind-ca.key" -CAcreateserial \
    -days 400 -extfile "$T/$kind.ext" -out "$T/$kind-leaf.pem" 2>/dev/null
  cat "$T/$kind-leaf.pem" "$T/$kind-ca.pem" >"$T/$kind.pem"
}

# scimitar_conf's YAML with TLS listeners next to its plaintext one (file watching off):
# `scimitar_conf 18300 18305 off | add_tls_listeners 18300 rsa:18310 ec:18320` — each NAME:PORT
# uses the make_cert files of that name.
add_tls_listeners() {
  local plain=$1 conf old new spec
  shift
  conf=$(cat)
  old="listeners: [{name: main, address: \"127.0.0.1:$plain\"}]"
  new="listeners:
  - {name: main, address: \"127.0.0.1:$plain\"}"
  for spec in "$@"; do
    new+="
  - name: ${spec%%:*}
    address: \"127.0.0.1:${spec##*:}\"
    tls: {cert: $PWD/$T/${spec%%:*}.pem, key: $PWD/$T/${spec%%:*}.key, watch: 0s}"
  done
  [[ $conf == *"$old"* ]] || { echo "add_tls_listeners: no plaintext listener on $plain" >&2; return 1; }
  printf '%s\n' "${conf/"$old"/"$new"}"
}

# The head of an nginx proxy config shared by macro.sh and tls.sh: one worker, no access log,
# pooled keep-alive to the UP upstreams as `upstream u`, and an open `http {` block the caller
# finishes with its servers. Needs T (scratch dir) and UP; $1 names the pid and error files.
nginx_proxy_head() {
  cat <<NGX
worker_processes 1;
daemon off;
pid $PWD/$T/$1.pid;
error_log $PWD/$T/$1.err warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream u { $(for p in "${UP[@]}"; do printf 'server 127.0.0.1:%s; ' "$p"; done) keepalive 1024; keepalive_requests 1000000; }
NGX
}

# `wait_scimitar_healthy ADMIN_PORT [TRIES]`: until scimitar's /status.json shows every server of
# every pool healthy and not ejected — its health checks have seen upstreams that were just
# (re)started — up to TRIES × 0.2 s (default 15 s). Without it a run that starts right after
# its upstreams restarted can meet a pool the proxy still believes down (503 + Retry-After).
wait_scimitar_healthy() {
  local _
  for _ in $(seq 1 "${2:-75}"); do
    curl -s "http://127.0.0.1:$1/status.json" 2>/dev/null | python3 -c '
import json, sys
servers = [s for p in json.load(sys.stdin).get("pools", []) for s in p.get("servers", [])]
sys.exit(0 if servers and all(s.get("healthy") and not s.get("ejected_ms") for s in servers) else 1)' 2>/dev/null && return 0
    sleep 0.2
  done
  echo "scimitar (admin port $1): some servers still unhealthy" >&2
  return 1
}
