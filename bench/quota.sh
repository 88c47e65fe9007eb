#!/usr/bin/env bash
# Pacing benchmark through AWS's quotas: moto behind the quota-faithful proxy (Secrets Manager's
# published rates per caller, region and kind; `ThrottlingException` over them), a full sync of
# BENCH_SECRETS secrets (default 3000) with default settings. Reports the achieved create rate,
# the throttled answers and the failed secrets. With BENCH_ACCOUNTS=K: K targets, one per
# assumed account (`arn:aws:iam::<id>:role/SecretSync`), each syncing the same BENCH_SECRETS
# secrets, run once with the default parallelism and once with `--parallel-targets 1`
# (BENCH_PARALLEL overrides the first), full sync then no-change re-sync, each into fresh moto
# state. BENCH_SHARDS=K adds the same full and no-change runs split into K `--shard i/K`
# processes at once (BENCH_ONLY_SHARDS=1: only those). Starts its OWN OpenBao, moto and proxy on free
# loopback ports and stops them on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${BENCH_SECRETS:-3000}"
scripts/venv.sh
cargo build --release --quiet --bin secretsync
cargo build --release --quiet -p secretsync-test-support --bin quota-proxy
WORK=$(mktemp -d -t secretsync-quota.XXXXXX)
PIDS=()
cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$rc" -ne 0 ]; then echo "[bench] logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
VPORT=$(free_port); APORT=$(free_port)
while [ "$APORT" = "$VPORT" ] || [ "$APORT" = "$((VPORT + 1))" ]; do APORT=$(free_port); done
.venv/bin/bao server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$VPORT" >"$WORK/bao.log" 2>&1 &
PIDS+=($!)
.venv/bin/moto_server -H 127.0.0.1 -p "$APORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$VPORT/v1/sys/health" >/dev/null 2>&1 && curl -sf "http://127.0.0.1:$APORT/moto-api/" >/dev/null 2>&1 && break
  sleep 0.1
done
target/release/quota-proxy "http://127.0.0.1:$APORT" >"$WORK/proxy.out" &
PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$WORK/proxy.out" ] && break; sleep 0.05; done
PROXY=$(head -1 "$WORK/proxy.out")
export VAULT_ADDR="http://127.0.0.1:$VPORT" VAULT_TOKEN=root
export AWS_ENDPOINT_URL="$PROXY" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
echo "[bench] seeding $N secrets" >&2
.venv/bin/python - "$N" <<'PY'
import json, os, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
n = int(sys.argv[1]); addr = os.environ["VAULT_ADDR"]
def put(i):
    req = urllib.request.Request(f"{addr}/v1/secret/data/q/app/s{i:05d}", method="POST",
        data=json.dumps({"data": {"n": i, "password": f"p{i}"}}).encode(), headers={"X-Vault-Token": "root"})
    urllib.request.urlopen(req).read()
with ThreadPoolExecutor(16) as ex: list(ex.map(put, range(n)))
PY
if [ -n "${BENCH_ACCOUNTS:-}" ]; then
  {
    echo "vault_sources:"
    echo "  - { mount: secret/q/app/, name: app, max_secrets: 100000 }"
    echo "targets:"
    for i in $(seq 1 "$BENCH_ACCOUNTS"); do
      acct=$(printf '2%011d' "$i")
      echo "  - { name: t$i, type: aws_secretsmanager, region: us-east-1, role_arn: \"arn:aws:iam::$acct:role/SecretSync\", secret_prefix: q/, imports: [app] }"
    done
  } >"$WORK/c.yaml"
  modes=("${BENCH_PARALLEL:-default}" 1)
  [ -n "${BENCH_ONLY_SHARDS:-}" ] && modes=()
  for mode in "${modes[@]}"; do
    curl -sf -X POST "http://127.0.0.1:$APORT/moto-api/reset" >/dev/null
    args=()
    [ "$mode" != default ] && args=(--parallel-targets "$mode")
    for run in full no-change; do
      START=$(date +%s.%N)
      target/release/secretsync --log-level warn pipeline --config "$WORK/c.yaml" --output json "${args[@]}" >"$WORK/run.json" || true
      END=$(date +%s.%N)
      curl -sf "$PROXY/__quota/stats" >"$WORK/stats.json"
      .venv/bin/python - "$WORK/run.json" "$WORK/stats.json" "$START" "$END" "$mode" "$run" <<'PY'
import json, sys
run = json.load(open(sys.argv[1])); stats = json.load(open(sys.argv[2]))
wall = float(sys.argv[4]) - float(sys.argv[3])
ts = run["targets"]
created = sum((t["result"]["created"] or 0) for t in ts); failed = sum(1 for t in ts if t["failed"])
print(f"| {len(ts)} targets | parallel {sys.argv[5]} | {sys.argv[6]} | wall {wall:.1f} s | created {created} | "
      f"failed targets {failed} | AWS calls {run['aws_calls']} | creates throttled so far {stats['throttled']['create']} |")
PY
    done
  done
  # BENCH_SHARDS=K: the same targets split by `--shard i/K`, K processes at once (default
  # parallelism each), as K machines (or an Indexed Job's K pods) would run them.
  if [ -n "${BENCH_SHARDS:-}" ]; then
    curl -sf -X POST "http://127.0.0.1:$APORT/moto-api/reset" >/dev/null
    for run in full no-change; do
      START=$(date +%s.%N)
      pids=()
      for i in $(seq 0 $((BENCH_SHARDS - 1))); do
        target/release/secretsync --log-level warn pipeline --config "$WORK/c.yaml" --output json \
          --shard "$i/$BENCH_SHARDS" >"$WORK/shard$i.json" 2>"$WORK/shard$i.err" &
        pids+=($!)
      done
      for p in "${pids[@]}"; do wait "$p" || true; done
      END=$(date +%s.%N)
      curl -sf "$PROXY/__quota/stats" >"$WORK/stats.json"
      .venv/bin/python - "$WORK" "$BENCH_SHARDS" "$START" "$END" "$run" <<'PY'
import json, sys
work, k = sys.argv[1], int(sys.argv[2])
wall = float(sys.argv[4]) - float(sys.argv[3])
runs = [json.load(open(f"{work}/shard{i}.json")) for i in range(k)]
ts = [t for r in runs for t in r["targets"]]
created = sum((t["result"]["created"] or 0) for t in ts); failed = sum(1 for t in ts if t["failed"])
stats = json.load(open(f"{work}/stats.json"))
print(f"| {len(ts)} targets | {k} shards at once ({', '.join(str(len(r['targets'])) for r in runs)} targets) | "
      f"{sys.argv[5]} | wall {wall:.1f} s | created {created} | failed targets {failed} | "
      f"AWS calls {sum(r['aws_calls'] for r in runs)} | creates throttled so far {stats['throttled']['create']} |")
PY
    done
  fi
  exit 0
fi
cat > "$WORK/c.yaml" <<YAML
vault_sources:
  - { mount: secret/q/app/, name: app, max_secrets: 100000 }
targets:
  - { name: t, type: aws_secretsmanager, region: us-east-1, secret_prefix: q/, imports: [app] }
YAML
START=$(date +%s.%N)
target/release/secretsync --log-level warn pipeline --config "$WORK/c.yaml" --output json >"$WORK/run.json"
END=$(date +%s.%N)
curl -sf "$PROXY/__quota/stats" >"$WORK/stats.json"
.venv/bin/python - "$WORK/run.json" "$WORK/stats.json" "$START" "$END" "$N" <<'PY'
import json, sys
run = json.load(open(sys.argv[1])); stats = json.load(open(sys.argv[2]))
wall = float(sys.argv[4]) - float(sys.argv[3]); n = int(sys.argv[5])
t = run["targets"][0]; r = t["result"]
phase = t["result"]["duration_ms"] / 1000
print(f"| {n:,} secrets | wall {wall:.1f} s | target phase {phase:.1f} s | created {r['created']} | "
      f"failed: {t['failed']} | creates passed {stats['passed']['create']} | creates throttled {stats['throttled']['create']} | "
      f"{r['created'] / phase:.1f} creates/s over the target phase |")
PY
