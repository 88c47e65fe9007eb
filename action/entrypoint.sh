#!/usr/bin/env bash
# GitHub Action entrypoint: maps INPUT_* variables to secretsync flags. The binary writes the
# step outputs to $GITHUB_OUTPUT and the plan table to $GITHUB_STEP_SUMMARY (github format).
# SECRETSYNC_BIN overrides the binary (used by the tests). Bash, not sh: dash drops the
# hyphenated INPUT_* variables (e.g. INPUT_DRY-RUN) from the environment.
set -eu
BIN="${SECRETSYNC_BIN:-/usr/local/bin/secretsync}"

input() {
  # GitHub passes `with:` inputs as INPUT_<NAME> with the name upper-cased; hyphens are kept.
  name=$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]')
  env | sed -n "s/^INPUT_${name}=//p" | head -n 1
}
input_or() { v=$(input "$1"); if [ -n "$v" ]; then printf '%s' "$v"; else printf '%s' "$2"; fi; }
is_true() { [ "$1" = "true" ] || [ "$1" = "TRUE" ] || [ "$1" = "True" ] || [ "$1" = "1" ]; }

config=$(input config)
[ -n "$config" ] || { echo "::error title=secretsync::the 'config' input is required"; exit 2; }
set -- --log-level "$(input_or log-level info)" --log-format "$(input_or log-format text)" \
  pipeline --config "$config" --output "$(input_or output-format github)"
targets=$(input targets)
[ -z "$targets" ] || set -- "$@" --targets "$targets"
is_true "$(input dry-run)" && set -- "$@" --dry-run
is_true "$(input merge-only)" && set -- "$@" --merge-only
is_true "$(input sync-only)" && set -- "$@" --sync-only
is_true "$(input_or diff true)" && set -- "$@" --diff
is_true "$(input exit-code)" && set -- "$@" --exit-code
exec "$BIN" "$@"
