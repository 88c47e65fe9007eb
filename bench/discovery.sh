#!/usr/bin/env bash
# Discovery benchmark: an organization of BENCH_ACCOUNTS accounts (default 1000) in moto, tagged
# and spread over nested OUs; times `secretsync discover` cold (asking AWS Organizations) and
# cached, and records the Organizations calls it made. Starts its OWN moto on a free loopback
# port and stops it on exit. Report: stdout and bench/results/discovery.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_ACCOUNTS="${BENCH_ACCOUNTS:-1000}"

scripts/venv.sh
echo "[bench] building the release binary" >&2
cargo build --release --quiet --bin secretsync

WORK=$(mktemp -d -t secretsync-discovery.XXXXXX)
MOTO=""
cleanup() {
  local rc=$?
  [ -n "$MOTO" ] && kill "$MOTO" 2>/dev/null || true
  [ -n "$MOTO" ] && wait "$MOTO" 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then echo "[bench] logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

APORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$APORT" >"$WORK/moto.log" 2>&1 &
MOTO=$!
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$APORT/moto-api/" >/dev/null 2>&1 && break
  sleep 0.1
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$APORT" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export XDG_CACHE_HOME="$WORK/cache"
unset AWS_PROFILE AWS_SESSION_TOKEN || true
.venv/bin/python bench/discovery.py --work "$WORK"
