#!/usr/bin/env bash
# Runs every test: starts local OpenBao and moto, exports their addresses, runs the whole
# cargo test suite (unit, property, snapshot, integration and end-to-end), stops the servers
# (on failure too).
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'scripts/servers.sh stop' EXIT
scripts/servers.sh start
# shellcheck disable=SC1091
source .servers/env
cargo test --workspace --all-targets "$@"
