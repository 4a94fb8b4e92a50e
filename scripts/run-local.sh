#!/usr/bin/env bash
# `make run`: two scim2-server replicas on 127.0.0.1:8001/8002 and scimitar in front of them
# with conf/scimitar.yaml (proxy on :8080, admin on :9090). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SCIMITAR_VENV:-.venv}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
for port in 8001 8002; do
  "$VENV/bin/scim2-server" --hostname 127.0.0.1 --port "$port" >"/tmp/scim2-server-$port.log" 2>&1 &
  pids+=($!)
done
for port in 8001 8002; do
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
done
./target/release/scimitar -t -c conf/scimitar.yaml
echo "scimitar on http://127.0.0.1:8080/v2 (admin: http://127.0.0.1:9090/status); Ctrl-C to stop"
./target/release/scimitar -c conf/scimitar.yaml &
pids+=($!)
wait "${pids[-1]}"
