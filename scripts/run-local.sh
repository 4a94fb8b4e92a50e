#!/usr/bin/env bash
# `make run`: two scim2-server replicas on 127.0.0.1:8001/8002 and scimitar in front of them
# with conf/scimitar.yaml (proxy on :8080, admin on :9090). Ctrl-C stops everything.
# `make run-tls` (this script with `tls`): the same pool behind conf/tls-edge.yaml — HTTPS on
# :8443 and mTLS on :8444 — with a local CA and certificates minted into .local/tls/.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SCIMITAR_VENV:-.venv}
CONF=conf/scimitar.yaml
if [ "${1:-}" = tls ]; then
  CONF=conf/tls-edge.yaml
  D=.local/tls
  # Minted once and again when within a day of expiry (-t refuses an expired certificate).
  if [ ! -s "$D/edge.key" ] || ! openssl x509 -checkend 86400 -noout -in "$D/edge.crt" >/dev/null 2>&1; then
    mkdir -p "$D"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
      -subj "/CN=scimitar local CA" -keyout "$D/ca.key" -out "$D/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
      -keyout "$D/edge.key" -out "$D/edge.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$D/ext"
    openssl x509 -req -in "$D/edge.csr" -CA "$D/ca.pem" -CAkey "$D/ca.key" -CAcreateserial \
      -days 30 -extfile "$D/ext" -out "$D/edge.pem" 2>/dev/null
    cat "$D/edge.pem" "$D/ca.pem" >"$D/edge.crt"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=local-idp" \
      -keyout "$D/client.key" -out "$D/client.csr" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >"$D/cext"
    openssl x509 -req -in "$D/client.csr" -CA "$D/ca.pem" -CAkey "$D/ca.key" -CAcreateserial \
      -days 30 -extfile "$D/cext" -out "$D/client.crt" 2>/dev/null
  fi
fi
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
./target/release/scimitar -t -c "$CONF"
if [ "$CONF" = conf/scimitar.yaml ]; then
  echo "scimitar on http://127.0.0.1:8080/v2 (status page: http://127.0.0.1:9090/); Ctrl-C to stop"
else
  echo "scimitar on https://localhost:8443/v2 (curl --cacert .local/tls/ca.pem) and mTLS on :8444"
  echo "  (add --cert .local/tls/client.crt --key .local/tls/client.key); status page: http://127.0.0.1:9091/"
fi
./target/release/scimitar -c "$CONF" &
pids+=($!)
wait "${pids[-1]}"
