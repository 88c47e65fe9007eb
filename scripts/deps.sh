#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo need, when they are missing: curl, the
# Prometheus Pushgateway (metrics push tests) and promtool (from `prometheus`: checks the
# exposition format). Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail
need=()
command -v curl >/dev/null || need+=(curl)
command -v prometheus-pushgateway >/dev/null || need+=(prometheus-pushgateway)
command -v promtool >/dev/null || need+=(prometheus)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "installing ${need[*]} (apt)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}
