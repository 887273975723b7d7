"""CLIP Score / Directional CLIP through the real server, with the CLIP and CLIP_VISION objects
ComfyUI's own loaders return: the text CLIP-L of a tiny SD1.5 checkpoint and a ViT-L CLIP vision
file, both real-format with random weights built at test time."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import comfy_host  # noqa: E402
import tiny_checkpoints  # noqa: E402
import tiny_clip_vision  # noqa: E402


@pytest.fixture(scope="module")
def clip_models(comfy_server):
    models = comfy_server.base_dir / "models"
    ckpt = tiny_checkpoints.ensure_checkpoint(models / "checkpoints", "sd15", seed=0)
    vision = tiny_clip_vision.ensure_clip_vision(models / "clip_vision")
    return ckpt, vision


def _scores(entry: dict, node: str) -> tuple[float, float]:
    text = entry["outputs"][node]["text"][0]
    found = re.search(r"CLIP score (\S+) \| directional (\S+)", text)
    assert found, text
    as_float = lambda v: math.nan if v == "n/a" else float(v)  # noqa: E731  (the node prints NaN as n/a)
    return as_float(found.group(1)), as_float(found.group(2))


def test_clip_score_and_directional_clip_with_comfyui_loaded_models(comfy_server, clip_models):
    ckpt, vision = clip_models
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": vision}},
        "3": {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "cameraman.png"}},
        "5": {
            "class_type": "PoseLabClipScore",
            "inputs": {
                "clip": ["1", 1],
                "clip_vision": ["2", 0],
                "image": ["3", 0],
                "prompt": "an astronaut in an orange suit",
                "source_image": ["4", 0],
                "source_prompt": "a man filming with a camera",
            },
        },
        # Same image and prompt on both sides: no change in either space, so no direction.
        "6": {
            "class_type": "PoseLabClipScore",
            "inputs": {
                "clip": ["1", 1],
                "clip_vision": ["2", 0],
                "image": ["3", 0],
                "prompt": "an astronaut in an orange suit",
            },
        },
    }
    entry = comfy_server.run(prompt, timeout=600)
    assert comfy_host.execution_error(entry) is None, comfy_host.execution_error(entry)
    score, directional = _scores(entry, "5")
    assert 0.0 <= score <= 100.0
    assert -1.0 <= directional <= 1.0
    alone, no_direction = _scores(entry, "6")
    assert alone == pytest.approx(score, abs=1e-3), (
        "the score of an image must not depend on the source"
    )
    assert math.isnan(no_direction)
