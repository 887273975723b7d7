#!/usr/bin/env bash
# Create (or reuse) the pinned Python environment and the ComfyUI host. Safe to re-run:
# the venv is rebuilt only when ci/lock.txt changes. Prints the venv's python path on the last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${POSELAB_VENV:-$here/.venv}"
stamp_want="$(sha256sum < "$here/ci/lock.txt" | cut -c1-16)"
stamp_file="$venv/.poselab-stamp"
# Measured size of the finished venv (5.7 GB; torch's CUDA wheels are most of it).
need_mb=6000
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp_want" ]; then
  echo "[poselab] installing the pinned environment into $venv (a few minutes the first time) ..." >&2
  mkdir -p "$(dirname "$venv")"
  free_mb="$(df -Pm "$(dirname "$venv")" | awk 'NR==2 {print $4}')"
  if [ "${free_mb:-0}" -lt "$need_mb" ]; then
    echo "[poselab] warning: $free_mb MB free under $(dirname "$venv"); the environment needs about $need_mb MB" \
         "(set POSELAB_VENV to a folder on a larger disk)" >&2
  fi
  python3 -m venv "$venv"
  # --no-deps: ci/lock.txt is the whole environment, already resolved. No wheel cache: it would
  # only keep a second copy of every download on disk. --no-compile: byte-code for every module of
  # every package is 400 MB; Python writes it for the modules that are imported, when they are.
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir --no-deps --no-compile \
      -r "$here/ci/lock.txt" 2> >(grep -v "is ignored: it is neither" >&2)
  echo "$stamp_want" > "$stamp_file"
fi
"$venv/bin/python" "$here/scripts/comfy_host.py" provision >&2
echo "$venv/bin/python"
