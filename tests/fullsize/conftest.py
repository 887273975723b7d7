"""The full-size tier: real SD1.5-family architectures (random weights) through a server of its own.

Every test module here is marked ``fullsize`` (pyproject.toml deselects it from a plain ``pytest``;
``pytest -m fullsize tests/fullsize`` runs it); the model files are built
once into ``$POSELAB_CACHE/fullsize-models-*`` (tests/fullsize/fullsize_models.py) and linked into
this server's models folders. The server is separate from the suite's ``comfy_server`` so the
several GB it holds end with the tier, and models are unloaded between tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fullsize_models  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def fullsize_paths() -> dict:
    return fullsize_models.ensure_models()


@pytest.fixture(scope="session")
def fullsize_server(tmp_path_factory, fullsize_paths):
    import comfy_host

    server = comfy_host.ComfyServer(comfy_host.provision(), tmp_path_factory.mktemp("comfy-fullsize"))
    server.names = fullsize_models.link_into(server.base_dir / "models", fullsize_paths)
    for sample in (REPO / "assets" / "samples").glob("*.png"):
        server.upload_image(sample)
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _unload_models_after(request):
    """Full-size models are GBs each: let the next test start from an empty model cache."""
    yield
    if "fullsize_server" in request.fixturenames:
        request.getfixturevalue("fullsize_server").post_json("/free", {"unload_models": True, "free_memory": True})
