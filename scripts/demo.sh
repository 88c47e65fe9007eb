#!/usr/bin/env bash
# The main job, end to end, on local servers: starts OpenBao and moto, seeds an example Vault
# tree, validates the example config, shows the dry-run plan, applies it, shows what landed
# in AWS Secrets Manager, re-runs to show that nothing changes, then changes one secret and shows
# the masked diff before applying it, the metrics that run pushed to the Pushgateway, and the
# history in the merge store: a secret's versions, a rollback that stays pinned, unpin; then
# `explain` and governance: a policy denial, the Slack message it sends to a local receiver,
# a rotation distributed to AWS, and the audit log verified (and a tampered copy refused); then
# more clouds: one Vault tree into AWS (Secrets Manager, Parameter Store), GCP Secret Manager and
# Azure Key Vault (contract fakes), a webhook receiver and the example plugin in one run, a re-run
# that writes nothing, a template naming a missing key, and a kms_key_id change. Stops
# the servers at the end (DEMO_KEEP=1 leaves them running; their addresses are in
# .servers-demo/env).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
cargo build --quiet --bin secretsync
BIN=target/debug/secretsync
export SERVERS_DIR=.servers-demo
[ "${DEMO_KEEP:-0}" = 1 ] || trap 'scripts/servers.sh stop' EXIT
scripts/servers.sh start
# shellcheck disable=SC1091
source .servers-demo/env
export VAULT_ADDR=$SECRETSYNC_TEST_VAULT_ADDR VAULT_TOKEN=$SECRETSYNC_TEST_VAULT_TOKEN
export AWS_ENDPOINT_URL=$SECRETSYNC_TEST_AWS_ENDPOINT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1

# The merge store's bucket (it also keeps the history of every apply).
curl -sf -X PUT "$AWS_ENDPOINT_URL/secretsync-demo" >/dev/null

put() { curl -sf -H "X-Vault-Token: $VAULT_TOKEN" -X POST "$VAULT_ADDR/v1/secret/data/$1" -d "{\"data\": $2}" >/dev/null; }
echo "== seeding Vault (secret/demo/...)"
put demo/base/app/db         '{"host": "db.internal", "port": 5432, "user": "app", "password": "base-password", "options": {"ssl": true}}'
put demo/base/app/api        '{"url": "https://api.internal", "timeouts": {"connect": 5, "read": 30}}'
put demo/base/shared/logging '{"level": "info", "sinks": ["stdout"]}'
put demo/production/app/db   '{"host": "db.prod.internal", "password": "prod-password"}'
put demo/production/app/api  '{"api_key": "prod-api-key", "timeouts": {"read": 60}}'
put demo/production/shared/logging '{"sinks": ["cloudwatch"]}'

echo; echo "== secretsync validate"
$BIN validate --config examples/demo.yaml
echo; echo "== secretsync graph"
$BIN graph --config examples/demo.yaml
echo; echo "== secretsync pipeline --dry-run (the plan; nothing is written)"
$BIN --log-level warn pipeline --config examples/demo.yaml --dry-run
echo; echo "== secretsync pipeline (apply)"
$BIN --log-level warn pipeline --config examples/demo.yaml
echo; echo "== what landed in AWS Secrets Manager"
.venv/bin/python - <<'PY'
import boto3, json, os
for account_role, region in [(None, "us-east-1"), ("arn:aws:iam::222222222222:role/SecretSync", "us-west-2")]:
    kw = dict(region_name=region, endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    if account_role:
        c = boto3.client("sts", **kw).assume_role(RoleArn=account_role, RoleSessionName="demo")["Credentials"]
        kw.update(aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
    sm = boto3.client("secretsmanager", **kw)
    account = boto3.client("sts", **kw).get_caller_identity()["Account"]
    print(f"account {account}, {region}:")
    for s in sorted(sm.list_secrets()["SecretList"], key=lambda s: s["Name"]):
        tags = {t["Key"]: t["Value"] for t in s.get("Tags", [])}
        if tags.get("secretsync:role") == "fingerprint-key":
            print(f"  {s['Name']}  (SecretSync's HMAC key for the fingerprint tags of this account and region)")
            continue
        value = json.loads(sm.get_secret_value(SecretId=s["Name"])["SecretString"])
        masked = {k: ("<set>" if k in ("password", "api_key") else v) for k, v in value.items()}
        fp = tags.get("secretsync:fingerprint", "")[:12]
        print(f"  {s['Name']}  owner={tags.get('secretsync:owner')} fingerprint={fp}…  {json.dumps(masked, sort_keys=True)}")
PY
echo; echo "== re-run: nothing changes, no writes"
$BIN --log-level warn pipeline --config examples/demo.yaml
echo; echo "== change one secret in Vault, then review the masked diff before applying"
put demo/production/app/db '{"host": "db.prod.internal", "password": "rotated-password", "pool": {"max": 20}}'
$BIN --log-level warn pipeline --config examples/demo.yaml --dry-run --diff --exit-code || [ $? -eq 1 ]
echo; echo "== apply the change, pushing the run's metrics to the Pushgateway"
$BIN --log-level warn pipeline --config examples/demo.yaml --output compact \
  --metrics-push-url "$SECRETSYNC_TEST_PUSHGATEWAY"
echo; echo "== what the Pushgateway holds for it (job=\"secretsync\", config=\"demo\"; docs/metrics.md)"
curl -sf "$SECRETSYNC_TEST_PUSHGATEWAY/metrics" | grep '^secretsync_' | grep 'config="demo"' \
  | grep -E '^secretsync_(vault_requests_total|aws_requests_total|changes_total|secrets_synced_total|last_run_success)' \
  | sed -E 's/(config="demo"|instance=""|job="secretsync"),?//g; s/,\}/}/; s/\{\}//'

echo; echo "== history (kept in the merge store; docs/history.md): the versions of prod/app/db"
$BIN --log-level warn version list --config examples/demo.yaml --target production-us-east-1 --path app/db
echo; echo "== roll prod/app/db back to v1 (AWSCURRENT moves back; no new value is written)"
$BIN --log-level warn version rollback --config examples/demo.yaml --target production-us-east-1 \
  --path app/db --version 1 --output compact
echo; echo "== the next run leaves it pinned, and says so"
$BIN --log-level warn pipeline --config examples/demo.yaml --dry-run | grep -E '^Plan for|pinned'
echo; echo "== unpin it: the next run syncs Vault's value again"
$BIN --log-level warn version unpin --config examples/demo.yaml --target production-us-east-1 --path app/db
$BIN --log-level warn pipeline --config examples/demo.yaml --output compact

echo; echo "== explain: where each key of staging's app/db comes from (three levels of inheritance)"
$BIN --log-level warn explain --config examples/demo.yaml --target staging-us-west-2 --path app/db

echo; echo "== governance (examples/governance.yaml): policies, audit log, notifications, rotation"
# A local stand-in for Slack's incoming webhook: records every POST it receives.
rm -f .servers-demo/audit.jsonl .servers-demo/hook.jsonl .servers-demo/hook.port
.venv/bin/python - <<'PY' &
import http.server, json, os
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(".servers-demo/hook.jsonl", "a") as f:
            f.write(json.dumps({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body.decode()}) + "\n")
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
open(".servers-demo/hook.port", "w").write(str(server.server_port))
server.serve_forever()
PY
HOOK_PID=$!
trap 'kill $HOOK_PID 2>/dev/null || true; [ "${DEMO_KEEP:-0}" = 1 ] || scripts/servers.sh stop' EXIT
for _ in $(seq 50); do [ -s .servers-demo/hook.port ] && break; sleep 0.1; done
export DEMO_HOOK_URL="http://127.0.0.1:$(cat .servers-demo/hook.port)/services/T000/B000/demo"
export HOOK_SECRET=demo-hook-secret
put demo/ci/deploy '{"aws_access_key_id": "AKIADEMO", "aws_secret_access_key": "demo-secret-access-key"}'
$BIN --log-level warn validate --config examples/governance.yaml
echo; echo "== secretsync policy test: the sandbox may not hold an AWS access key"
$BIN --log-level warn policy test --config examples/governance.yaml || [ $? -eq 1 ]
echo; echo "== pipeline: production is synced, the sandbox is denied and gets nothing (exit 1)"
$BIN --log-level warn pipeline --config examples/governance.yaml || [ $? -eq 1 ]
echo; echo "== the Slack message the failed run sent (signature checked with HOOK_SECRET)"
.venv/bin/python - <<'PY'
import hashlib, hmac, json, os
for line in open(".servers-demo/hook.jsonl"):
    r = json.loads(line)
    sig = r["headers"].get("x-secretsync-signature", "")
    want = "sha256=" + hmac.new(os.environ["HOOK_SECRET"].encode(), r["body"].encode(), hashlib.sha256).hexdigest()
    print("signature", "valid" if hmac.compare_digest(sig, want) else "INVALID", "| delivery", r["headers"]["x-secretsync-delivery"])
    for b in json.loads(r["body"])["blocks"]:
        t = b.get("text", {}).get("text") or " ".join(e["text"] for e in b.get("elements", []))
        print("  " + t.replace("\n", "\n  "))
PY

echo; echo "== rotation: production's app/db password, in Vault (check-and-set), then distributed"
$BIN --log-level warn rotate --config examples/governance.yaml --dry-run --force
$BIN --log-level warn rotate --config examples/governance.yaml --force
$BIN --log-level warn pipeline --config examples/governance.yaml --targets production-eu-west-1 --output compact
.venv/bin/python - <<'PY'
import boto3, json, os
sm = boto3.client("secretsmanager", region_name="eu-west-1", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
v = json.loads(sm.get_secret_value(SecretId="gov/prod/app/db")["SecretString"])
print(f"gov/prod/app/db in AWS now has a {len(v['password'])}-character password (not the old 'rotated-password': {v['password'] != 'rotated-password'})")
PY

echo; echo "== the audit log: every run above, hash-chained (file and merge store)"
$BIN --log-level warn audit export --config examples/governance.yaml --format csv | cut -d, -f1-3,8-12
$BIN --log-level warn audit verify --config examples/governance.yaml
$BIN --log-level warn audit verify --config examples/governance.yaml --store
echo; echo "== change one byte of a copy of the log: verify names the event"
.venv/bin/python - <<'PY'
data = bytearray(open(".servers-demo/audit.jsonl", "rb").read())
i = data.index(b'"created":0')
data[i + 10] = ord("1")
open(".servers-demo/audit-tampered.jsonl", "wb").write(data)
PY
$BIN --log-level warn audit verify --config examples/governance.yaml --from .servers-demo/audit-tampered.jsonl || [ $? -eq 1 ]

echo; echo "== more clouds (examples/all-targets.yaml): one Vault tree into AWS Secrets Manager and"
echo "   Parameter Store, GCP Secret Manager and Azure Key Vault (contract fakes over HTTPS),"
echo "   a webhook receiver and the example plugin, in one run"
rm -rf .servers-demo/plugin-store .servers-demo/receiver.jsonl .servers-demo/receiver.port
mkdir -p .servers-demo/plugin-store
DEMO_RECORD=.servers-demo/receiver.jsonl DEMO_PORT_FILE=.servers-demo/receiver.port .venv/bin/python - <<'PY' &
import http.server, json, os
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(os.environ["DEMO_RECORD"], "a") as f:
            f.write(json.dumps({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body.decode()}) + "\n")
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
open(os.environ["DEMO_PORT_FILE"], "w").write(str(server.server_port))
server.serve_forever()
PY
RECEIVER_PID=$!
trap 'kill $HOOK_PID $RECEIVER_PID 2>/dev/null || true; [ "${DEMO_KEEP:-0}" = 1 ] || scripts/servers.sh stop' EXIT
for _ in $(seq 50); do [ -s .servers-demo/receiver.port ] && break; sleep 0.1; done
export DEMO_RECEIVER_URL="http://127.0.0.1:$(cat .servers-demo/receiver.port)/secrets"
export DEMO_CA_CERT=$SECRETSYNC_TEST_CA_CERT
export DEMO_GCP_ENDPOINT=$SECRETSYNC_TEST_GCP_ENDPOINT DEMO_GCP_TOKEN=$SECRETSYNC_TEST_GCP_TOKEN
export DEMO_AZURE_VAULT_URL=$SECRETSYNC_TEST_AZURE_VAULT_URL DEMO_AZURE_TOKEN=$SECRETSYNC_TEST_AZURE_TOKEN
export DEMO_SSM_KEY=alias/demo-key-one
$BIN --log-level warn validate --config examples/all-targets.yaml
echo; echo "== pipeline: every destination gets the tree"
$BIN --log-level warn pipeline --config examples/all-targets.yaml --output compact
echo; echo "== what each destination holds now (read with each service's own API, values masked)"
.venv/bin/python scripts/demo_clouds.py
echo; echo "== re-run: nothing is written anywhere"
$BIN --log-level warn pipeline --config examples/all-targets.yaml --output json > .servers-demo/rerun.json
.venv/bin/python - <<'PY'
import json
r = json.load(open(".servers-demo/rerun.json"))
for t in r["targets"]:
    print(f"  {t['target']:8} {t['summary']}  writes: {t['result']['created']} created, {t['result']['updated']} updated, {t['result']['deleted']} deleted")
print("  webhook receiver: still", sum(1 for _ in open(".servers-demo/receiver.jsonl")), "POSTs")
PY
echo; echo "== a template naming a key the secret lacks ({{ prot }} for {{ port }}): the plugin target fails, naming both"
sed 's/{{ port }}/{{ prot }}/' examples/all-targets.yaml > .servers-demo/all-targets-typo.yaml
$BIN --log-level warn pipeline --config .servers-demo/all-targets-typo.yaml --targets custom --dry-run || [ $? -eq 1 ]
echo; echo "== Parameter Store's kms_key_id changes: a re-encrypt plan (same values), then applied"
export DEMO_SSM_KEY=alias/demo-key-two
$BIN --log-level warn pipeline --config examples/all-targets.yaml --targets params --dry-run
$BIN --log-level warn pipeline --config examples/all-targets.yaml --targets params --output compact
$BIN --log-level warn pipeline --config examples/all-targets.yaml --targets params --dry-run | grep -E '^Plan for|unchanged|No changes'
