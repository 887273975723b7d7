"""Every SD1.5-family diffusion workflow of the pack on full-size architectures (random weights),
shrunk to 64 px and 1-2 steps, through ``POST /prompt``; the three trainers' files map every module.

What tiny models cannot show: the real block layout (the OnePoseTrans layout block
``output_blocks.4.1``, SD1.5's attention-free last level), the 8-channel IP2P input, an
OpenPose-shaped ControlNet and a Stable-Pose adapter of the real size on the real UNet.

The model files are built once into ``$POSELAB_CACHE/fullsize-models-*`` (fullsize_models.py) and
linked into a server of this tier's own, separate from the suite's ``comfy_server``, so the GBs it
holds end with the tier; models are unloaded between tests. (No conftest.py here: some tests
import the suite's ``conftest`` module by name.)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import comfy_host
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import core_prompts  # noqa: E402
import fullsize_models  # noqa: E402

pytestmark = pytest.mark.fullsize
REPO = Path(__file__).resolve().parents[2]
SIZE = 64
# SD1.5's attention projections: 16 transformers (6 down, 1 middle, 9 up) x 2 attentions x 4
SD15_ATTENTION_MODULES = 128


@pytest.fixture(scope="module")
def fullsize_server(tmp_path_factory):
    server = comfy_host.ComfyServer(
        comfy_host.provision(), tmp_path_factory.mktemp("comfy-fullsize")
    )
    server.names = fullsize_models.link_into(
        server.base_dir / "models", fullsize_models.ensure_models()
    )
    for sample in (REPO / "assets" / "samples").glob("*.png"):
        server.upload_image(sample)
    server.start()
    yield server
    with open(f"/proc/{server.process.pid}/status") as f:  # what the tier needs (machines for CI)
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(f"\nfull-size tier server: peak RSS {peak / 2**20:.2f} GiB")
    server.stop()


@pytest.fixture(autouse=True)
def _unload_models_after(fullsize_server):
    """Full-size models are GBs each: the next test starts from an empty model cache."""
    yield
    fullsize_server.post_json("/free", {"unload_models": True, "free_memory": True})


def workflow(name: str) -> dict:
    return json.loads((REPO / "workflows" / "api" / f"{name}.json").read_text())


def output_image(server, entry: dict, node: str) -> np.ndarray:
    item = entry["outputs"][node]["images"][0]
    path = server.base_dir / item.get("type", "output") / item["subfolder"] / item["filename"]
    return np.asarray(Image.open(path).convert("RGB"), np.float32)


def check_image(image: np.ndarray, size: int = SIZE) -> None:
    assert image.shape == (size, size, 3), image.shape
    assert np.isfinite(image).all() and image.std() > 0.5, (
        "a blank image: the decoded latent was constant or NaN"
    )


def report(entry: dict, node: str) -> dict:
    def refuse(token):
        raise ValueError(f"non-standard JSON constant {token} in the report")

    return json.loads(entry["outputs"][node]["text"][0], parse_constant=refuse)


def checkpoint_keys(server, folder: str, name: str) -> dict[str, tuple]:
    from safetensors import safe_open

    with safe_open(str(server.base_dir / "models" / folder / name), "pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def check_lora_maps_every_module(server, lora_file: str, ckpt: str) -> set[str]:
    """Each LoRA module names a Linear of the checkpoint's UNet with matching shapes, and core
    LoraLoader (through a real prompt) loads every key."""
    from safetensors.torch import load_file

    lora = load_file(str(server.base_dir / "models" / "loras" / lora_file))
    unet = checkpoint_keys(server, "checkpoints", ckpt)
    modules = {re.sub(r"\.(lora_up\.weight|lora_down\.weight|alpha)$", "", k) for k in lora}
    assert len(modules) == SD15_ATTENTION_MODULES, len(modules)
    for m in modules:
        weight = unet.get("model." + m + ".weight")
        assert weight is not None, f"LoRA module {m} is not a layer of the checkpoint"
        up, down = lora[m + ".lora_up.weight"], lora[m + ".lora_down.weight"]
        assert (up.shape[0], down.shape[1]) == weight, (m, up.shape, down.shape, weight)
        assert all(torch_finite(t) for t in (up, down))
    before = len(server.log_tail(10**9))
    g = core_prompts.lora_sample_prompt(ckpt, lora_file, SIZE)
    if "ip2p" in ckpt:  # the 8-channel UNet samples with the source latent concatenated
        g["8"] = {
            "class_type": "EmptyImage",
            "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1, "color": 8421504},
        }
        g["9"] = {
            "class_type": "InstructPixToPixConditioning",
            "inputs": {
                "positive": ["3", 0],
                "negative": ["3", 0],
                "vae": ["1", 2],
                "pixels": ["8", 0],
            },
        }
        g["5"]["inputs"].update(positive=["9", 0], negative=["9", 1], latent_image=["9", 2])
    server.run_ok(g)
    log = server.log_tail(10**9)[before:]
    assert "lora key not loaded" not in log, log[-2000:]
    return modules


def torch_finite(t) -> bool:
    import torch

    return bool(torch.isfinite(t).all())


# ---------------------------------------------------------------------------- IP2P
def test_ip2p_edit_workflow_and_its_controlnet_pose_path(fullsize_server):
    s, names = fullsize_server, fullsize_server.names
    wf = workflow("ip2p_pose_edit")
    wf["1"]["inputs"]["ckpt_name"] = names["ip2p"]
    wf["3"]["inputs"].update(width=SIZE, height=SIZE)
    wf["4"]["inputs"]["steps"] = 2
    plain = output_image(s, s.run_ok(wf), "5")
    check_image(plain)
    # the same edit steered by the OpenPose ControlNet with a library pose
    wf["6"] = {
        "class_type": "ControlNetLoader",
        "inputs": {"control_net_name": names["controlnet"]},
    }
    wf["7"] = {
        "class_type": "PoseLabPoseFromLibrary",
        "inputs": {"text": "arms raised", "width": SIZE, "height": SIZE, "fit": "none"},
    }
    wf["4"]["inputs"].update(control_net=["6", 0], target_pose=["7", 0], control_strength=1.0)
    wf["5"]["inputs"]["filename_prefix"] = "poselab_test/ip2p_controlnet"
    steered = output_image(s, s.run_ok(wf), "5")
    check_image(steered)
    assert (
        np.abs(steered - plain).mean() > 0.5
    )  # the full-size ControlNet's residuals reached the UNet


def test_train_ip2p_lora_workflow_maps_every_module(fullsize_server):
    s, names = fullsize_server, fullsize_server.names
    wf = workflow("train_pose_edit_lora")
    wf["1"]["inputs"]["ckpt_name"] = names["ip2p"]
    wf["7"]["inputs"].update(
        count=4, size="test_64x64", dataset_name="fullsize_pairs", test_fraction=0.25
    )
    wf["2"]["inputs"].update(
        resolution=SIZE,
        steps=2,
        batch_size=1,
        grad_accum=1,
        save_every=1,
        keep_checkpoints=1,
        lora_name="fullsize_ip2p",
        gradient_checkpointing=True,
    )
    wf["4"]["inputs"].update(width=SIZE, height=SIZE)
    wf["5"]["inputs"]["steps"] = 2
    entry = s.run_ok(wf, timeout=1800)
    rep = report(entry, "2")
    assert len(rep["losses"]) == 2 and all(np.isfinite(rep["losses"]))
    assert rep["checkpoints"] == [
        "fullsize_ip2p_step000001.safetensors",
        "fullsize_ip2p.safetensors",
    ]
    check_image(output_image(s, entry, "6"))
    modules = check_lora_maps_every_module(s, rep["lora_file"], names["ip2p"])
    assert any(".input_blocks.1.1." in m for m in modules) and any(
        ".middle_block.1." in m for m in modules
    )


# ---------------------------------------------------------------------------- Stable-Pose
def test_stable_pose_generate_workflow_adapter_steers_the_full_unet(fullsize_server):
    s, names = fullsize_server, fullsize_server.names
    wf = workflow("stable_pose_generate")
    wf["1"]["inputs"]["ckpt_name"] = names["sd15"]
    wf["2"]["inputs"]["adapter_name"] = names["stable_pose"]
    for node in ("3", "6", "7"):
        wf[node]["inputs"].update(width=SIZE, height=SIZE)
    wf["8"]["inputs"]["steps"] = 2
    entry = s.run_ok(wf)
    steered = output_image(s, entry, "10")
    check_image(steered)
    assert output_image(s, entry, "11").std() > 1.0  # the pose hint image
    wf["6"]["inputs"]["strength"] = 0.0  # the same graph without the adapter
    wf["10"]["inputs"]["filename_prefix"] = "poselab_test/stable_pose_off"
    plain = output_image(s, s.run_ok(wf), "10")
    assert np.abs(steered - plain).mean() > 0.5


def test_train_stable_pose_workflow_saves_an_adapter_of_the_unets_layout(fullsize_server):
    s, names = fullsize_server, fullsize_server.names
    wf = workflow("train_stable_pose")
    wf["1"]["inputs"]["ckpt_name"] = names["sd15"]
    wf["2"]["inputs"].update(
        synthetic_samples=4,
        resolution=SIZE,
        steps=2,
        batch_size=1,
        holdout=0.25,
        save_every=1,
        keep_checkpoints=1,
        adapter_name="fullsize_stable_pose",
        gradient_checkpointing=True,
    )
    for node in ("3", "6", "7"):
        wf[node]["inputs"].update(width=SIZE, height=SIZE)
    wf["8"]["inputs"]["steps"] = 2
    entry = s.run_ok(wf, timeout=1800)
    rep = report(entry, "2")
    assert len(rep["losses"]) == 2 and all(np.isfinite(rep["losses"]))
    assert rep["checkpoints"] == [
        "fullsize_stable_pose_step000001.safetensors",
        "fullsize_stable_pose.safetensors",
    ]
    assert sorted(
        p.name for p in (s.base_dir / "models" / "stable_pose").glob("fullsize_stable_pose*")
    ) == ["fullsize_stable_pose.safetensors", "fullsize_stable_pose_step000001.safetensors"]
    check_image(output_image(s, entry, "10"))
    # every weight of a full-size adapter made from this UNet, no more, no fewer, same shapes
    trained = checkpoint_keys(s, "stable_pose", rep["adapter_file"])
    reference = checkpoint_keys(s, "stable_pose", names["stable_pose"])
    assert {k.removeprefix("stable_pose_adapter."): v for k, v in reference.items()} == trained
    assert (
        sum(int(np.prod(v)) for v in trained.values()) > 300e6
    )  # the adapter is the UNet's full encoder
    # and the file loads back through the pack's loader into a generation
    wf2 = workflow("stable_pose_generate")
    wf2["1"]["inputs"]["ckpt_name"] = names["sd15"]
    wf2["2"]["inputs"]["adapter_name"] = rep["adapter_file"]
    for node in ("3", "6", "7"):
        wf2[node]["inputs"].update(width=SIZE, height=SIZE)
    wf2["8"]["inputs"]["steps"] = 1
    del wf2["12"]
    check_image(output_image(s, s.run_ok(wf2), "10"))


# ---------------------------------------------------------------------------- inversion + prompt-to-prompt
def test_p2p_real_image_edit_workflow(fullsize_server):
    s, names = fullsize_server, fullsize_server.names
    wf = workflow("p2p_real_image_edit")
    wf["1"]["inputs"]["ckpt_name"] = names["sd15"]
    wf["3"]["inputs"].update(width=SIZE, height=SIZE)
    wf["4"]["inputs"]["steps"] = 2
    wf["5"]["inputs"]["inner_iterations"] = 1
    entry = s.run_ok(wf)
    edited, reconstruction = output_image(s, entry, "7"), output_image(s, entry, "8")
    check_image(edited)
    check_image(reconstruction)
    assert np.abs(edited - reconstruction).mean() > 0.1  # "standing" -> "waving" changed the image


# ---------------------------------------------------------------------------- OnePoseTrans, SD1.5 path
def test_onepose_repose_sd15_workflow_layout_block_vcm_and_controlnet(fullsize_server):
    s, names = fullsize_server, fullsize_server.names
    wf = workflow("onepose_repose")
    wf["3"]["inputs"]["ckpt_name"] = names["sd15"]
    wf["12"]["inputs"]["control_net_name"] = names["controlnet"]
    wf["24"]["inputs"]["clip_name"] = names["clip_vision"]
    for node in ("25", "26"):
        wf[node]["inputs"]["ipadapter_file"] = names["ipadapter"]
    for node in ("2", "7", "8", "14"):
        wf[node]["inputs"].update(width=SIZE, height=SIZE)
    wf["9"]["inputs"].update(
        steps=2,
        resolution=SIZE,
        views=2,
        batch_size=1,
        lora_name="fullsize_subject",
        gradient_checkpointing=True,
    )
    wf["15"]["inputs"]["steps"] = 2
    wf["22"]["inputs"]["steps"] = 2
    entry = s.run_ok(wf, timeout=1800)
    rep = report(entry, "9")
    assert len(rep["losses"]) == 2 and all(np.isfinite(rep["losses"]))
    modules = check_lora_maps_every_module(s, rep["lora_file"], names["sd15"])
    # OnePoseTrans's layout block (up_blocks.1.attentions.1) exists in real SD1.5 and is trained
    assert sum(".output_blocks.4.1." in m for m in modules) == 8
    info = report(entry, "25")
    assert info["ip_scales"] == {"output_blocks.3": 0.4, "output_blocks.4": 1.0, "other": 0.0}
    assert info["patched_layers"] == 2 and info["image_tokens"] == 4, info
    check_image(output_image(s, entry, "19"))
    # the block weights on the real UNet: the layout block alone and 0.2 elsewhere both act
    images = {}
    for tag, strengths in {"zero": (0.0, 0.0), "layout": (0.0, 1.0), "onepose": (0.2, 1.0)}.items():
        g = {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": names["sd15"]}},
            "2": {
                "class_type": "CLIPTextEncode",
                "inputs": {"clip": ["1", 1], "text": "A man with face"},
            },
            "3": {
                "class_type": "EmptyLatentImage",
                "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1},
            },
            "5": {
                "class_type": "PoseLabApplySubjectLoRA",
                "inputs": {
                    "model": ["1", 0],
                    "lora_name": rep["lora_file"],
                    "base_strength": strengths[0],
                    "layout_strength": strengths[1],
                },
            },
            "4": {
                "class_type": "KSampler",
                "inputs": {
                    "model": ["5", 0],
                    "positive": ["2", 0],
                    "negative": ["2", 0],
                    "latent_image": ["3", 0],
                    "seed": 1,
                    "steps": 1,
                    "cfg": 1.0,
                    "sampler_name": "euler",
                    "scheduler": "normal",
                    "denoise": 1.0,
                },
            },
            "6": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
            "7": {
                "class_type": "SaveImage",
                "inputs": {"images": ["6", 0], "filename_prefix": f"poselab_test/fs_{tag}"},
            },
        }
        images[tag] = output_image(s, s.run_ok(g), "7")
    assert np.abs(images["layout"] - images["zero"]).mean() > 0.01
    assert np.abs(images["onepose"] - images["layout"]).mean() > 0.01
