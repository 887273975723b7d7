"""The editing stage through a real ComfyUI server, on tiny checkpoints built at test time."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tiny_checkpoints  # noqa: E402

import comfy_host  # noqa: E402  (tests/conftest.py puts scripts/ on sys.path)


@pytest.fixture(scope="session")
def tiny_ckpts(comfy_server):
    folder = comfy_server.base_dir / "models" / "checkpoints"
    return {kind: tiny_checkpoints.ensure_checkpoint(folder, kind, seed=0) for kind in ("sd15", "ip2p")}


def run_ok(server, prompt: dict) -> dict:
    entry = server.run(prompt, timeout=300)
    err = comfy_host.execution_error(entry)
    assert err is None, f"{err}\n{server.log_tail()}"
    return entry


def test_core_loader_detects_tiny_checkpoints(comfy_server, tiny_ckpts):
    info = comfy_server.object_info()
    listed = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    assert set(tiny_ckpts.values()) <= set(listed)
    for kind, name in tiny_ckpts.items():
        prompt = {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": name}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a person"}},
            "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "4": {"class_type": "KSampler", "inputs": {
                "model": ["1", 0], "positive": ["2", 0], "negative": ["2", 0], "latent_image": ["3", 0],
                "seed": 1, "steps": 1, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
            "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
            "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
        }
        if kind == "ip2p":  # the 8-channel UNet needs the source image latent concatenated
            prompt["7"] = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 8421504}}
            prompt["8"] = {"class_type": "InstructPixToPixConditioning", "inputs": {
                "positive": ["2", 0], "negative": ["2", 0], "vae": ["1", 2], "pixels": ["7", 0]}}
            prompt["4"]["inputs"].update(positive=["8", 0], negative=["8", 1], latent_image=["8", 2])
        run_ok(comfy_server, prompt)
    log = comfy_server.log_tail(200000)
    # ComfyUI names the detected model class when it loads a checkpoint
    assert "model_type EPS" in log
    assert "SD15_instructpix2pix" in log or "instructpix2pix" in log.lower()
