"""The OnePoseTrans-style repose workflow through a real ComfyUI server, shrunk to 64x64 on tiny
SD1.5 + OpenPose-ControlNet checkpoints built at test time: segmentation, background fill, pose,
the subject LoRA trained on the photo, pose-controlled generation and the composite."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tiny_checkpoints  # noqa: E402

import comfy_host  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SIZE = 64


def test_onepose_workflow_trains_a_subject_lora_and_composites(comfy_server):
    ckpt = tiny_checkpoints.ensure_checkpoint(comfy_server.base_dir / "models" / "checkpoints", "sd15")
    cn = tiny_checkpoints.ensure_checkpoint(comfy_server.base_dir / "models" / "controlnet", "controlnet")
    prompt = json.loads((REPO / "workflows" / "api" / "onepose_repose.json").read_text())
    prompt["3"]["inputs"]["ckpt_name"] = ckpt
    prompt["12"]["inputs"]["control_net_name"] = cn
    for node, keys in {"2": ("width", "height"), "7": ("width", "height"), "8": ("width", "height"),
                       "14": ("width", "height")}.items():
        prompt[node]["inputs"].update({k: SIZE for k in keys})
    prompt["9"]["inputs"].update(steps=12, resolution=SIZE, views=4, rank=8, lora_name="test_subject")
    prompt["15"]["inputs"]["steps"] = 2
    prompt["22"]["inputs"]["steps"] = 2
    loras = comfy_server.base_dir / "models" / "loras"
    before = set(loras.glob("test_subject*")) if loras.is_dir() else set()
    entry = comfy_server.run(prompt, timeout=600)
    err = comfy_host.execution_error(entry)
    assert err is None, f"{err}\n{comfy_server.log_tail()}"
    report = json.loads(entry["outputs"]["9"]["text"][0])
    print("subject LoRA report", {k: v for k, v in report.items() if k != "losses"})
    assert report["eval_loss_after"] < report["eval_loss_before"], report
    written = set(loras.glob("test_subject*")) - before
    assert [p.name for p in written] == [report["lora_file"]]
    from safetensors import safe_open

    with safe_open(str(next(iter(written))), "pt") as f:
        keys = list(f.keys())
        assert f.metadata()["poselab"] == "OnePoseTrans subject LoRA"
    assert any(k.endswith("attn2.to_k.lora_up.weight") for k in keys)  # cross-attention adapted too
    item = entry["outputs"]["19"]["images"][0]
    out = np.asarray(Image.open(comfy_server.base_dir / "output" / item["subfolder"] / item["filename"]))
    assert out.shape == (SIZE, SIZE, 3) and out.std() > 2.0

    # The saved LoRA through Apply Subject LoRA by Blocks: all strengths 0 is the base model
    # exactly; full strength changes the image.
    images = {}
    for tag, strengths in {"base": None, "zero": (0.0, 0.0), "full": (1.0, 1.0)}.items():
        g = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
             "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "A man with face"}},
             "3": {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}},
             "4": {"class_type": "KSampler", "inputs": {
                 "model": ["1", 0] if strengths is None else ["5", 0], "positive": ["2", 0], "negative": ["2", 0],
                 "latent_image": ["3", 0], "seed": 1, "steps": 2, "cfg": 1.0, "sampler_name": "euler",
                 "scheduler": "normal", "denoise": 1.0}},
             "6": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
             "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": f"poselab_test/subject_{tag}"}}}
        if strengths is not None:
            g["5"] = {"class_type": "PoseLabApplySubjectLoRA", "inputs": {
                "model": ["1", 0], "lora_name": report["lora_file"], "base_strength": strengths[0],
                "layout_strength": strengths[1]}}
        e = comfy_server.run(g, timeout=300)
        assert comfy_host.execution_error(e) is None, comfy_host.execution_error(e)
        it = e["outputs"]["7"]["images"][0]
        images[tag] = np.asarray(Image.open(comfy_server.base_dir / "output" / it["subfolder"] / it["filename"]), np.float32)
    assert np.array_equal(images["zero"], images["base"])
    assert np.abs(images["full"] - images["base"]).mean() > 0.5


def test_subject_lora_refuses_a_batch_and_an_empty_description(comfy_server):
    ckpt = tiny_checkpoints.ensure_checkpoint(comfy_server.base_dir / "models" / "checkpoints", "sd15")
    base = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 2, "color": 0}},
        "3": {"class_type": "PoseLabTrainSubjectLoRA", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "image": ["2", 0], "description": "A man with face",
            "steps": 1, "rank": 4, "learning_rate": 0.001, "batch_size": 1, "resolution": 64, "views": 1,
            "block_weights": "uniform", "strength": 1.0, "seed": 0, "lora_name": "x"}},
    }
    err = comfy_host.execution_error(comfy_server.run(base, timeout=300))
    assert err is not None and "trained on one photo" in err, err
    base["2"]["inputs"]["batch_size"] = 1
    base["3"]["inputs"]["description"] = "  "
    err = comfy_host.execution_error(comfy_server.run(base, timeout=300))
    assert err is not None and "description is empty" in err, err
