"""Shared fixtures: the pack imported as a package, the shared data, a real ComfyUI server."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("POSELAB_SHARED", REPO.parent / "shared")).resolve()
POSE_DATA = SHARED / "data" / "poses"
SAMPLES = REPO / "assets" / "samples"


sys.path.insert(0, str(REPO / "scripts"))
import pack  # noqa: E402,F401  (the repo root as the package poselab, as ComfyUI imports it)


@pytest.fixture(scope="session")
def pose_data() -> Path:
    if not (POSE_DATA / "keypoints.json").is_file():
        pytest.fail(f"the shared pose data is missing: expected {POSE_DATA}/keypoints.json (set POSELAB_SHARED)")
    return POSE_DATA


@pytest.fixture(scope="session")
def pose_annotations(pose_data) -> list[dict]:
    return json.loads((pose_data / "keypoints.json").read_text())


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory):
    """A real ComfyUI 0.3.75 (CPU, loopback) with this pack linked into custom_nodes."""
    import comfy_host

    root = comfy_host.provision()
    base = tmp_path_factory.mktemp("comfy-base")
    server = comfy_host.ComfyServer(root, base)
    # The bundled sample photos are in every server's input folder (workflows reference them).
    for sample in SAMPLES.glob("*.png"):
        server.upload_image(sample)
    server.start()
    yield server
    server.stop()
