#!/usr/bin/env bash
# Starts two local OpenBao servers (dev mode: the source Vault, and a second one that
# `vault_kv2` targets sync into), moto, a Prometheus Pushgateway, an OTLP/HTTP trace receiver
# (scripts/otlp_receiver.py) and the contract fakes of Azure Key Vault and GCP Secret Manager
# (crates/test-support/fakes/, HTTPS with a throw-away test CA) on free loopback ports, waits
# until all of them answer, and writes their addresses to $SERVERS_DIR/env (default
# .servers/env; source it). `servers.sh stop` stops them.
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
scripts/deps.sh
scripts/venv.sh
mkdir -p "$DIR"
stop
# A throw-away CA and a loopback server certificate for the contract fakes that speak HTTPS.
.venv/bin/python crates/test-support/fakes/test_ca.py "$DIR/tls"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A port that is none of the ports already taken (arguments).
port_besides() {
  local p taken
  while :; do
    p=$(free_port); taken=
    for t in "$@"; do [ "$p" = "$t" ] && taken=1; done
    [ -z "$taken" ] && { echo "$p"; return; }
  done
}
# An OpenBao dev server also listens on its port + 1 (cluster port): keep everything else off
# both, for each of the two servers.
VPORT=$(free_port)
V2PORT=$(port_besides "$VPORT" $((VPORT + 1)) $((VPORT - 1)))
APORT=$(port_besides "$VPORT" $((VPORT + 1)) "$V2PORT" $((V2PORT + 1)))
PPORT=$(port_besides "$VPORT" $((VPORT + 1)) "$V2PORT" $((V2PORT + 1)) "$APORT")
OPORT=$(port_besides "$VPORT" $((VPORT + 1)) "$V2PORT" $((V2PORT + 1)) "$APORT" "$PPORT")
KVPORT=$(port_besides "$VPORT" $((VPORT + 1)) "$V2PORT" $((V2PORT + 1)) "$APORT" "$PPORT" "$OPORT")
# The bearer token the Key Vault fake accepts (any other is refused with 401).
AZTOKEN=azure-test-token
GPORT=$(port_besides "$VPORT" $((VPORT + 1)) "$V2PORT" $((V2PORT + 1)) "$APORT" "$PPORT" "$OPORT" "$KVPORT")
GFPORT=$(port_besides "$VPORT" $((VPORT + 1)) "$V2PORT" $((V2PORT + 1)) "$APORT" "$PPORT" "$OPORT" "$KVPORT" "$GPORT")
# The Secret Manager fake's only accepted bearer token.
GTOKEN=ya29.secretsync-test-token
# Google's client libraries cannot take a CA; they trust SSL_CERT_FILE instead of the system
# roots. This bundle is the system roots plus the test CA, so exporting it adds trust only.
cat /etc/ssl/certs/ca-certificates.crt "$DIR/tls/ca.pem" > "$DIR/tls/bundle.pem" 2>/dev/null \
  || cp "$DIR/tls/ca.pem" "$DIR/tls/bundle.pem"
TOKEN=root
# Another root token on the second server: a test that mixes the two up fails.
TOKEN2=root2
# Each dev server writes its root token to $HOME/.vault-token: give each its own HOME, or the two
# race on that file and one of them exits.
mkdir -p "$DIR/bao-home" "$DIR/bao2-home"
HOME="$(cd "$DIR" && pwd)/bao-home" .venv/bin/bao server -dev -dev-root-token-id="$TOKEN" -dev-listen-address="127.0.0.1:$VPORT" \
  >"$DIR/bao.log" 2>&1 &
echo $! > "$DIR/bao.pid"
HOME="$(cd "$DIR" && pwd)/bao2-home" .venv/bin/bao server -dev -dev-root-token-id="$TOKEN2" -dev-listen-address="127.0.0.1:$V2PORT" \
  >"$DIR/bao2.log" 2>&1 &
echo $! > "$DIR/bao2.pid"
.venv/bin/moto_server -H 127.0.0.1 -p "$APORT" >"$DIR/moto.log" 2>&1 &
echo $! > "$DIR/moto.pid"
prometheus-pushgateway --web.listen-address="127.0.0.1:$PPORT" >"$DIR/pushgateway.log" 2>&1 &
echo $! > "$DIR/pushgateway.pid"
.venv/bin/python scripts/otlp_receiver.py "$OPORT" >"$DIR/otlp.log" 2>&1 &
echo $! > "$DIR/otlp.pid"
.venv/bin/python crates/test-support/fakes/azure_keyvault.py --port "$KVPORT" \
  --cert "$DIR/tls/server.pem" --key "$DIR/tls/server-key.pem" --token "$AZTOKEN" \
  >"$DIR/azure.log" 2>&1 &
echo $! > "$DIR/azure.pid"
.venv/bin/python crates/test-support/fakes/gcp_secretmanager.py "$GPORT" "$DIR/tls" "$GTOKEN" "$GFPORT" >"$DIR/gcp.log" 2>&1 &
echo $! > "$DIR/gcp.pid"
for _ in $(seq 1 200); do
  if curl -sf "http://127.0.0.1:$VPORT/v1/sys/health" >/dev/null 2>&1 \
     && curl -sf "http://127.0.0.1:$V2PORT/v1/sys/health" >/dev/null 2>&1 \
     && curl -sf "http://127.0.0.1:$APORT/moto-api/" >/dev/null 2>&1 \
     && curl -sf "http://127.0.0.1:$PPORT/-/ready" >/dev/null 2>&1 \
     && curl -sf "http://127.0.0.1:$OPORT/health" >/dev/null 2>&1 \
     && curl -s --cacert "$DIR/tls/ca.pem" -o /dev/null -w '%{http_code}' "https://127.0.0.1:$KVPORT/secrets?api-version=7.5" 2>/dev/null | grep -q 401 \
     && curl -sf --cacert "$DIR/tls/ca.pem" -H "Authorization: Bearer $GTOKEN" "https://127.0.0.1:$GPORT/v1/projects/health/secrets" >/dev/null 2>&1; then
    cat > "$DIR/env" <<ENV
export SECRETSYNC_TEST_VAULT_ADDR=http://127.0.0.1:$VPORT
export SECRETSYNC_TEST_VAULT_TOKEN=$TOKEN
export SECRETSYNC_TEST_VAULT2_ADDR=http://127.0.0.1:$V2PORT
export SECRETSYNC_TEST_VAULT2_TOKEN=$TOKEN2
export SECRETSYNC_TEST_AWS_ENDPOINT=http://127.0.0.1:$APORT
export SECRETSYNC_TEST_PUSHGATEWAY=http://127.0.0.1:$PPORT
export SECRETSYNC_TEST_OTLP_ENDPOINT=http://127.0.0.1:$OPORT
export SECRETSYNC_TEST_CA_CERT=$(cd "$DIR" && pwd)/tls/ca.pem
export SECRETSYNC_TEST_AZURE_VAULT_URL=https://127.0.0.1:$KVPORT
export SECRETSYNC_TEST_AZURE_TOKEN=$AZTOKEN
export SECRETSYNC_TEST_GCP_ENDPOINT=https://127.0.0.1:$GPORT
export SECRETSYNC_TEST_GCP_TOKEN=$GTOKEN
export SECRETSYNC_TEST_GCP_FAILING_ENDPOINT=https://127.0.0.1:$GFPORT
export SSL_CERT_FILE=$(cd "$DIR" && pwd)/tls/bundle.pem
ENV
    echo "OpenBao on 127.0.0.1:$VPORT, second OpenBao on 127.0.0.1:$V2PORT, moto on 127.0.0.1:$APORT, Pushgateway on 127.0.0.1:$PPORT, OTLP receiver on 127.0.0.1:$OPORT, Key Vault fake on https://127.0.0.1:$KVPORT, Secret Manager fake on https://127.0.0.1:$GPORT" >&2
    exit 0
  fi
  sleep 0.1
done
echo "local servers did not start; see the logs in $DIR/ (bao, bao2, moto, pushgateway, otlp, azure, gcp)" >&2
stop
exit 1
