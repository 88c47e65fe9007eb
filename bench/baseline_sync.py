#!/usr/bin/env python3
"""Baseline: the Vault -> AWS Secrets Manager sync a careful user writes by hand.

Walks a Vault KV v2 folder with hvac (recursive LIST, one read per secret), and for each secret
reads the current value from AWS with boto3 `get_secret_value`; it creates the secret when it
does not exist, writes a new version only when the value differs, and leaves it alone otherwise.
Names are `<prefix><path relative to the folder>`, values are canonical JSON
(`json.dumps(sort_keys=True, separators=(',', ':'))`), as SecretSync writes them.

Sequential on purpose: that is what such a script usually is. Prints one JSON document with
what it did and how many requests it sent (every HTTP attempt, retries included).

Environment: VAULT_ADDR, VAULT_TOKEN, AWS_ENDPOINT_URL (optional), AWS credentials, AWS_REGION.
"""

import argparse
import json
import os
import sys
import time

import boto3
import hvac
from botocore.exceptions import ClientError


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mount", required=True, help="KV v2 mount, e.g. secret")
    ap.add_argument("--path", default="", help="folder below the mount, e.g. app/ (may be empty)")
    ap.add_argument("--prefix", required=True, help="AWS secret name prefix, e.g. prod/")
    ap.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    args = ap.parse_args()

    started = time.perf_counter()
    vault = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
    vault_requests = [0]

    def count_vault(response, *a, **kw):
        vault_requests[0] += 1
        return response

    vault.adapter.session.hooks["response"].append(count_vault)

    sm = boto3.client(
        "secretsmanager",
        region_name=args.region,
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
    )
    aws_calls = [0]

    def count_aws(**kw):
        aws_calls[0] += 1

    # before-send fires once per HTTP attempt (retries included), like SecretSync's counter.
    sm.meta.events.register("before-send.secrets-manager", count_aws)

    kv = vault.secrets.kv.v2
    base = args.path.strip("/")
    stats = {"created": 0, "updated": 0, "unchanged": 0, "deleted_at_source": 0}

    def sync_one(rel: str) -> None:
        full = f"{base}/{rel}" if base else rel
        try:
            resp = kv.read_secret_version(
                path=full, mount_point=args.mount, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            # Soft-deleted / destroyed latest version, or vanished after listing.
            stats["deleted_at_source"] += 1
            return
        value = json.dumps(resp["data"]["data"], sort_keys=True, separators=(",", ":"))
        name = args.prefix + rel
        try:
            current = sm.get_secret_value(SecretId=name).get("SecretString")
        except ClientError as e:
            if e.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            sm.create_secret(Name=name, SecretString=value)
            stats["created"] += 1
            return
        if current == value:
            stats["unchanged"] += 1
        else:
            sm.put_secret_value(SecretId=name, SecretString=value)
            stats["updated"] += 1

    def walk(rel_dir: str) -> None:
        full = f"{base}/{rel_dir}" if base else rel_dir
        try:
            keys = kv.list_secrets(path=full, mount_point=args.mount)["data"]["keys"]
        except hvac.exceptions.InvalidPath:
            return  # empty / missing folder
        for key in sorted(keys):
            if key.endswith("/"):
                walk(rel_dir + key)
            else:
                sync_one(rel_dir + key)

    walk("")
    out = dict(stats)
    out.update(
        aws_calls=aws_calls[0],
        vault_requests=vault_requests[0],
        seconds=round(time.perf_counter() - started, 3),
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
