#!/usr/bin/env bash
# One entry point for a fresh machine:
#   scripts/run.sh demo [args]   set up, then run the default repose workflow through a real ComfyUI
#   scripts/run.sh test [args]   set up, then run the test suite and the full-size tier (args: pytest's, suite only)
#   scripts/run.sh bench NAME    set up, then run bench/NAME.py
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmd="${1:-}"; shift || true
py="$("$here/scripts/setup_env.sh" | tail -n 1)"
cd "$here"
case "$cmd" in
  demo)  exec "$py" scripts/run_default.py "$@" ;;
  test)
    # The browser tests drive Debian's chromium (no browser download); install it if missing.
    if ! command -v chromium >/dev/null 2>&1; then
      if [ "$(id -u)" = 0 ]; then
        echo "[poselab] installing Debian's chromium for the browser tests ..." >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null && apt-get clean
      else
        echo "[poselab] the browser tests need chromium: sudo apt-get install chromium" >&2
      fi
    fi
    if [ $# -gt 0 ]; then exec "$py" -m pytest "$@"; fi
    # The suite, then the full-size tier as its own step (real SD1.5-family architectures with
    # random weights, ~12 GB of RAM; pyproject.toml deselects it from the first run).
    # POSELAB_FULLSIZE=0 skips the tier on a machine without the memory.
    "$py" -m pytest
    if [ "${POSELAB_FULLSIZE:-1}" = 0 ]; then
      echo "[poselab] POSELAB_FULLSIZE=0: the full-size tier (tests/fullsize) was not run" >&2; exit 0
    fi
    exec "$py" -m pytest -m fullsize tests/fullsize ;;
  bench) name="$1"; shift; exec "$py" "bench/$name.py" "$@" ;;
  *) echo "usage: scripts/run.sh demo|test|bench NAME [args]" >&2; exit 2 ;;
esac
