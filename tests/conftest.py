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


def require_shared(path: Path) -> Path:
    """The evaluation data (real annotated photos, licences that forbid redistribution) is not in
    the repository: a clone alone skips the tests that need it; CI, which has it, must not."""
    if not path.exists():
        reason = f"needs the evaluation data {path} (not in the repository; set POSELAB_SHARED to its shared/ folder)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def pose_data() -> Path:
    require_shared(POSE_DATA / "keypoints.json")
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
