# Shared by benches/macro.sh and benches/goodput.sh (sourced, not run).

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

wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

# Load generator on core 0; proxies and upstreams on core 1 (when there are two cores).
if [ "$(nproc)" -ge 2 ]; then LOAD="taskset -c 0"; SERVE="taskset -c 1"; else LOAD=""; SERVE=""; fi
