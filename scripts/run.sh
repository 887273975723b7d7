#!/usr/bin/env bash
# One entry point for a fresh machine:
#   scripts/run.sh demo [args]   set up, then run the default repose workflow through a real ComfyUI
#   scripts/run.sh test [args]   set up, then run the test suite
#   scripts/run.sh bench NAME    set up, then run bench/NAME.py
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmd="${1:-}"; shift || true
py="$("$here/scripts/setup_env.sh" | tail -n 1)"
cd "$here"
case "$cmd" in
  demo)  exec "$py" scripts/run_default.py "$@" ;;
  test)  exec "$py" -m pytest "$@" ;;
  bench) name="$1"; shift; exec "$py" "bench/$name.py" "$@" ;;
  *) echo "usage: scripts/run.sh demo|test|bench NAME [args]" >&2; exit 2 ;;
esac
