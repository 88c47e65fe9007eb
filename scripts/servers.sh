#!/usr/bin/env bash
# Starts local OpenBao (dev mode) and moto on free loopback ports, waits until both answer,
# and writes their addresses to $SERVERS_DIR/env (default .servers/env; source it). `servers.sh stop` stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${SERVERS_DIR:-.servers}
stop() {
  for f in "$DIR"/*.pid; do
    [ -f "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
}
if [ "${1:-start}" = "stop" ]; then stop; exit 0; fi
scripts/venv.sh
mkdir -p "$DIR"
stop
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
VPORT=$(free_port); APORT=$(free_port)
# The OpenBao dev server also listens on its port + 1 (cluster port): keep moto off both.
while [ "$APORT" = "$VPORT" ] || [ "$APORT" = $((VPORT + 1)) ]; do APORT=$(free_port); done
TOKEN=root
.venv/bin/bao server -dev -dev-root-token-id="$TOKEN" -dev-listen-address="127.0.0.1:$VPORT" \
  >"$DIR/bao.log" 2>&1 &
echo $! > "$DIR/bao.pid"
.venv/bin/moto_server -H 127.0.0.1 -p "$APORT" >"$DIR/moto.log" 2>&1 &
echo $! > "$DIR/moto.pid"
for _ in $(seq 1 200); do
  if curl -sf "http://127.0.0.1:$VPORT/v1/sys/health" >/dev/null 2>&1 \
     && curl -sf "http://127.0.0.1:$APORT/moto-api/" >/dev/null 2>&1; then
    cat > "$DIR/env" <<ENV
export SECRETSYNC_TEST_VAULT_ADDR=http://127.0.0.1:$VPORT
export SECRETSYNC_TEST_VAULT_TOKEN=$TOKEN
export SECRETSYNC_TEST_AWS_ENDPOINT=http://127.0.0.1:$APORT
ENV
    echo "OpenBao on 127.0.0.1:$VPORT, moto on 127.0.0.1:$APORT" >&2
    exit 0
  fi
  sleep 0.1
done
echo "local servers did not start; see $DIR/bao.log and $DIR/moto.log" >&2
stop
exit 1
