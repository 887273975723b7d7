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


def need_shared(path: Path) -> Path:
    """Evaluation data lives beside the repository (../shared), never in it: a test that needs it
    skips with one line when it is absent, and fails when CI (which has it) is set."""
    if not path.exists():
        message = f"needs the shared evaluation data: {path} is missing (set POSELAB_SHARED)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def pose_data() -> Path:
    return need_shared(POSE_DATA / "keypoints.json").parent


@pytest.fixture(scope="session")
def photo_data() -> Path:
    """The second annotated set: ``photos/`` + ``keypoints.json`` at the top of shared/data."""
    return need_shared(SHARED / "data" / "keypoints.json").parent


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
