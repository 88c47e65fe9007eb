"""What each destination of examples/all-targets.yaml holds (used by scripts/demo.sh): read with
each service's own API — boto3 for AWS, the REST APIs of GCP Secret Manager and Azure Key Vault
(the contract fakes), the webhook receiver's log and the plugin's directory — with secret-looking
keys masked."""

import base64
import json
import os
import ssl
import urllib.parse
import urllib.request

import boto3

SECRET_KEYS = {"password", "api_key", "database_url"}


def masked(value):
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return "<set>"
    if not isinstance(value, dict):
        return value
    return {k: ("<set>" if k.lower() in SECRET_KEYS else masked(v) if isinstance(v, dict) else v) for k, v in value.items()}


def show(name, value, extra=""):
    print(f"    {name}  {json.dumps(masked(value), sort_keys=True)}{extra}")


ctx = ssl.create_default_context(cafile=os.environ["DEMO_CA_CERT"])


def get(url, token):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, context=ctx) as r:
        return json.load(r)


aws = dict(region_name="us-east-1", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
print("  AWS Secrets Manager (aws):")
sm = boto3.client("secretsmanager", **aws)
for s in sorted(sm.list_secrets(Filters=[{"Key": "name", "Values": ["clouds/"]}])["SecretList"], key=lambda s: s["Name"]):
    show(s["Name"], sm.get_secret_value(SecretId=s["Name"])["SecretString"])
print("  AWS Parameter Store (params):")
ssm = boto3.client("ssm", **aws)
for p in sorted(ssm.get_parameters_by_path(Path="/clouds/", Recursive=True, WithDecryption=True)["Parameters"], key=lambda p: p["Name"]):
    show(p["Name"], p["Value"], f"  ({p['Type']})")

print("  GCP Secret Manager (gcp, project clouds-demo):")
gcp, gtok = os.environ["DEMO_GCP_ENDPOINT"].rstrip("/"), os.environ["DEMO_GCP_TOKEN"]
for s in get(f"{gcp}/v1/projects/clouds-demo/secrets", gtok).get("secrets", []):
    sid = s["name"].rsplit("/", 1)[1]
    if s.get("labels", {}).get("secretsync-role") or "fingerprint" in sid:
        continue
    v = get(f"{gcp}/v1/{s['name']}/versions/latest:access", gtok)
    show(sid, base64.b64decode(v["payload"]["data"]).decode(), f"  (labels: {', '.join(sorted(s.get('labels', {})))})")

print("  Azure Key Vault (azure):")
az, atok = os.environ["DEMO_AZURE_VAULT_URL"].rstrip("/"), os.environ["DEMO_AZURE_TOKEN"]
for s in get(f"{az}/secrets?api-version=7.5", atok).get("value", []):
    name = s["id"].rstrip("/").rsplit("/", 1)[1]
    if "fingerprint" in name:
        continue
    v = get(f"{az}/secrets/{name}?api-version=7.5", atok)
    show(name, v["value"], f"  (content type {v.get('contentType')}, {len(v.get('tags', {}))} tags)")

print("  webhook receiver (hook):")
for line in open(".servers-demo/receiver.jsonl"):
    body = json.loads(json.loads(line)["body"])
    show(body["name"], body.get("value", {}), f"  (version {body.get('version')})")

print("  example plugin's directory (custom, name_template {target}/{path}, transformed):")
root = ".servers-demo/plugin-store"
for f in sorted(os.listdir(root)):
    p = os.path.join(root, f)
    if not f.endswith(".json") or not os.path.isfile(p):
        continue
    name = urllib.parse.unquote(f[: -len(".json")])
    if name.startswith(".secretsync"):
        continue
    show(name, json.load(open(p))["value"], f"  (file mode {oct(os.stat(p).st_mode & 0o777)})")
