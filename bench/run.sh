#!/usr/bin/env bash
# SecretSync benchmark entry point.
#
#   bench/run.sh                       # BENCH_SIZES="1000 10000" by default
#   BENCH_SIZES="500" BENCH_REPEAT=1 bench/run.sh
#
# Ensures the venv (scripts/venv.sh), builds the release binary, starts its OWN fresh OpenBao
# (dev mode) and moto on free loopback ports (never the ones in .servers/), runs bench/bench.py,
# and stops both servers on exit. Report: stdout and bench/results/latest.md.
# Env: BENCH_SIZES, BENCH_REPEAT (default 3: merge-only and secretsync re-sync runs),
# BENCH_BASELINE_REPEAT (default BENCH_REPEAT: baseline re-sync runs), BENCH_TUNED_WPS (default
# 1000; 0 skips the supplementary full sync with raised writes_per_second), BENCH_METRICS
# (default 1; 0 skips the re-syncs with metrics served, interleaved with the plain ones), BENCH_KEEP_LOGS=1
# keeps the server logs and per-run logs (they are also kept when the run fails), BENCH_OUT
# (default bench/results/latest.md; raw numbers go next to it as .json).
# BENCH_DRIVER=memory runs bench/memory.py instead (peak memory at BENCH_SECRETS, default
# 100,000, into BENCH_TARGETS targets, default 2; report in bench/results/memory.md), on
# bench/moto_fast.py (moto with linear Secrets Manager lookups and listings).
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_SIZES="${BENCH_SIZES:-1000 10000}"

scripts/venv.sh
echo "[bench] building the release binary (first build takes ~5 min on 2 cores)" >&2
cargo build --release --quiet --bin secretsync

WORK=$(mktemp -d -t secretsync-bench.XXXXXX)
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "${BENCH_KEEP_LOGS:-0}" = "1" ] || [ "$rc" -ne 0 ]; then
    echo "[bench] logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# OpenBao's dev server also binds VPORT+1 (its cluster listener): keep moto off both.
VPORT=$(free_port); APORT=$(free_port)
while [ "$APORT" = "$VPORT" ] || [ "$APORT" = "$((VPORT + 1))" ]; do APORT=$(free_port); done
TOKEN=root

.venv/bin/bao server -dev -dev-root-token-id="$TOKEN" -dev-listen-address="127.0.0.1:$VPORT" \
  >"$WORK/bao.log" 2>&1 &
PIDS+=($!)
if [ "${BENCH_DRIVER:-bench}" = memory ]; then
  # moto as shipped scans the whole region on every lookup and listing page: hours at 100,000
  # secrets. bench/moto_fast.py is moto with those two costs made linear (same answers).
  .venv/bin/python bench/moto_fast.py -H 127.0.0.1 -p "$APORT" >"$WORK/moto.log" 2>&1 &
else
  .venv/bin/moto_server -H 127.0.0.1 -p "$APORT" >"$WORK/moto.log" 2>&1 &
fi
PIDS+=($!)

ready=0
for _ in $(seq 1 300); do
  if curl -sf "http://127.0.0.1:$VPORT/v1/sys/health" >/dev/null 2>&1 \
     && curl -sf "http://127.0.0.1:$APORT/moto-api/" >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.1
done
for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || ready=0; done  # answered, but is it ours?
if [ "$ready" != 1 ]; then
  echo "[bench] local servers did not start; see $WORK/bao.log and $WORK/moto.log" >&2
  exit 1
fi
echo "[bench] OpenBao on 127.0.0.1:$VPORT, moto on 127.0.0.1:$APORT" >&2

export VAULT_ADDR="http://127.0.0.1:$VPORT" VAULT_TOKEN="$TOKEN"
export AWS_ENDPOINT_URL="http://127.0.0.1:$APORT" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
# Keep the measured tools away from any real AWS profile/config on this machine.
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN VAULT_NAMESPACE VAULT_ROLE_ID VAULT_SECRET_ID || true

# For the driver's CPU accounting and moto error count.
export BENCH_BAO_PID="${PIDS[0]}" BENCH_MOTO_PID="${PIDS[1]}" BENCH_MOTO_LOG="$WORK/moto.log"

if [ "${BENCH_DRIVER:-bench}" = memory ]; then
  .venv/bin/python bench/memory.py
else
  .venv/bin/python bench/bench.py --logdir "$WORK/runs"
fi
