#!/usr/bin/env bash
# Create (or reuse) the pinned Python environment and the ComfyUI host. Safe to re-run:
# the venv is rebuilt only when ci/requirements-dev.txt or ci/constraints.txt change.
# Prints the venv's python path on the last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${POSELAB_VENV:-$here/.venv}"
stamp_want="$(cat "$here/ci/requirements-dev.txt" "$here/ci/constraints.txt" | sha256sum | cut -c1-16)"
stamp_file="$venv/.poselab-stamp"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp_want" ]; then
  echo "[poselab] installing the pinned environment into $venv (a few minutes the first time) ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
      -r "$here/ci/requirements-dev.txt" -c "$here/ci/constraints.txt" 2> >(grep -v "is ignored: it is neither" >&2)
  # facenet-pytorch pins torch<2.3 in its metadata but runs on current torch (embedded MTCNN).
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps facenet-pytorch==2.6.0 \
      2> >(grep -v "is ignored: it is neither" >&2)
  echo "$stamp_want" > "$stamp_file"
fi
"$venv/bin/python" "$here/scripts/comfy_host.py" provision >&2
echo "$venv/bin/python"
