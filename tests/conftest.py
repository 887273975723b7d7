"""Shared fixtures: the pack imported as a package, the shared data, a real ComfyUI server."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("POSELAB_SHARED", REPO.parent / "shared")).resolve()
POSE_DATA = SHARED / "data" / "poses"
SAMPLES = REPO / "assets" / "samples"


def _import_pack_as(name: str = "poselab"):
    """Import the repo root as a package, as ComfyUI does, so relative imports inside it work."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_import_pack_as()
sys.path.insert(0, str(REPO / "scripts"))


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
