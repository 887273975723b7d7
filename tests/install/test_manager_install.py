"""The pack installed as ComfyUI-Manager installs it: a fresh environment with ComfyUI's own
requirements and the newest numpy, then the pack's requirements.txt with unpinned resolution
(scripts/manager_install.py). The main workflows must find people there, not only in the
pinned development venv, whose lock file hides what an unpinned resolution picks."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import comfy_host
import manager_install
import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "assets" / "samples"


@pytest.fixture(scope="module")
def manager_python() -> Path:
    root = comfy_host.provision()
    venv = comfy_host.cache_dir() / "manager-venv"
    yield manager_install.build(venv, root)
    # 1.6 GB beside the 5.7 GB development venv: kept for the next run only where disk is plentiful.
    if shutil.disk_usage(venv).free < 20e9:
        shutil.rmtree(venv, ignore_errors=True)


@pytest.fixture(scope="module")
def manager_server(manager_python, tmp_path_factory):
    server = comfy_host.ComfyServer(
        comfy_host.provision(), tmp_path_factory.mktemp("manager-base"), python=manager_python
    )
    for sample in SAMPLES.glob("*.png"):
        server.upload_image(sample)
    server.start()
    yield server
    server.stop()


def _versions(python: Path) -> dict:
    code = (
        "import json, importlib.metadata as m\n"
        "out = {}\n"
        "for name in ('numpy', 'torch', 'mediapipe', 'opencv-python-headless'):\n"
        "    try: out[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: out[name] = None\n"
        "print(json.dumps(out))"
    )
    return json.loads(
        subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout
    )


def _people(entry: dict, node_id: str) -> list[int]:
    """People per image that node ``node_id`` (Extract Pose) reported in its UI output."""
    frames = [json.loads(s) for s in entry["outputs"][node_id]["openpose_json"]]
    return [len(f[0]["people"] if isinstance(f, list) else f["people"]) for f in frames]


def test_the_environment_is_a_fresh_unpinned_one(manager_python):
    versions = _versions(manager_python)
    # The newest numpy is 2.x; the development lock pins 1.26. If this fails, the test no longer
    # shows what a user with a current ComfyUI gets.
    assert versions["numpy"] and int(versions["numpy"].split(".")[0]) >= 2, versions
    # the pose models run without the mediapipe package (removed upstream, no Python 3.13 wheels)
    assert versions["mediapipe"] is None, versions


def test_extract_pose_finds_the_person(manager_server):
    prompt = json.loads((REPO / "workflows" / "api" / "extract_pose.json").read_text())
    prompt["1"]["inputs"]["image"] = "cameraman.png"
    entry = manager_server.run_ok(prompt, timeout=300)
    assert _people(entry, "2") == [1]


def test_repose_to_named_pose_runs(manager_server):
    prompt = json.loads((REPO / "workflows" / "api" / "repose_to_named_pose.json").read_text())
    entry = manager_server.run_ok(prompt, timeout=300)
    assert _people(entry, "2") == [1]
    saved = entry["outputs"]["5"]["images"]
    assert (
        saved
        and (
            manager_server.base_dir / "output" / saved[0]["subfolder"] / saved[0]["filename"]
        ).is_file()
    )
