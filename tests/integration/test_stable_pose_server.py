"""Stable-Pose through a real ComfyUI server: a tiny adapter in the released key format drives a
tiny SD1.5 checkpoint (both generated at test time), through our node and through core Apply
ControlNet; the trainer learns to use the pose."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import comfy_host  # noqa: E402  (tests/conftest.py puts scripts/ on sys.path)
import tiny_checkpoints  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SIZE = 128
STEPS_SAMPLES = (40, 16)  # optimiser steps, procedural samples (64x64)
LR = 1e-3
TRAIN_SIZE = 64
TINY = dict(
    channel_mult=(1,), num_res_blocks=(1,), transformer_depth=(1,), middle_depth=-1
)  # the tiny UNet's layout


def saved(server, entry: dict, node: str) -> np.ndarray:
    item = entry["outputs"][node]["images"][0]
    path = server.base_dir / item.get("type", "output") / item["subfolder"] / item["filename"]
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)


@pytest.fixture(scope="module")
def tiny_sd15(comfy_server):
    return tiny_checkpoints.ensure_checkpoint(
        comfy_server.base_dir / "models" / "checkpoints", "sd15", seed=0
    )


@pytest.fixture(scope="module")
def tiny_adapter(comfy_server):
    """A seeded random adapter for the tiny UNet, saved the way released checkpoints name keys."""
    import torch
    from safetensors.torch import save_file

    from poselab.models.stable_pose.adapter import StablePoseAdapter, StablePoseConfig

    torch.manual_seed(0)
    model = StablePoseAdapter(StablePoseConfig(**TINY))
    with torch.no_grad():  # open the zero convs so the adapter has an effect
        for name, p in model.named_parameters():
            if (
                "zero_convs" in name
                or "middle_block_out" in name
                or name.endswith("out_layers.3.weight")
            ):
                p.normal_(0, 0.1)
        # the pose features enter through six random convs: a strong gate on them makes the
        # skeleton's effect on the image large enough to tell a used pose from an ignored one
        model.feature_extractor.zero_convs[0].weight.normal_(0, 2.0)
    folder = comfy_server.base_dir / "models" / "stable_pose"
    folder.mkdir(parents=True, exist_ok=True)
    sd = {f"stable_pose_adapter.{k}": v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(folder / "tiny_stable_pose.safetensors"))
    return "tiny_stable_pose.safetensors"


def graph(ckpt: str, adapter: str) -> dict:
    def sampler(pos, neg):
        return {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": pos,
                "negative": neg,
                "latent_image": ["5", 0],
                "seed": 3,
                "steps": 2,
                "cfg": 3.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        }

    def save(samples, name):
        return [
            {"class_type": "VAEDecode", "inputs": {"samples": samples, "vae": ["1", 2]}},
            {"class_type": "SaveImage", "inputs": {"filename_prefix": f"poselab_test/sp_{name}"}},
        ]

    p = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {
            "class_type": "CLIPTextEncode",
            "inputs": {"clip": ["1", 1], "text": "a person raising both arms"},
        },
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "low quality"}},
        "4": {"class_type": "PoseLabLoadStablePose", "inputs": {"adapter_name": adapter}},
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1},
        },
        "6": {
            "class_type": "PoseLabPoseFromLibrary",
            "inputs": {"text": "arms raised", "width": SIZE, "height": SIZE, "fit": "none"},
        },
        "7": {
            "class_type": "PoseLabPoseFromLibrary",
            "inputs": {"text": "t-pose", "width": SIZE, "height": SIZE, "fit": "none"},
        },
    }

    def apply(pose):
        return {
            "class_type": "PoseLabApplyStablePose",
            "inputs": {  # noqa: E731
                "positive": ["2", 0],
                "negative": ["3", 0],
                "control_net": ["4", 0],
                "pose": pose,
                "width": SIZE,
                "height": SIZE,
                "strength": 1.0,
                "start_percent": 0.0,
                "end_percent": 1.0,
            },
        }

    p["10"] = apply(["6", 0])  # ours, arms raised
    p["11"] = apply(["7", 0])  # ours, another pose
    p["13"] = apply(["6", 0])  # ours again, through its own nodes: sampling must repeat exactly
    p["12"] = {
        "class_type": "ControlNetApplyAdvanced",
        "inputs": {  # core, on our skeleton image
            "positive": ["2", 0],
            "negative": ["3", 0],
            "control_net": ["4", 0],
            "image": ["10", 2],
            "strength": 1.0,
            "start_percent": 0.0,
            "end_percent": 1.0,
        },
    }
    for tag, (pos, neg) in {
        "ours": (["10", 0], ["10", 1]),
        "other": (["11", 0], ["11", 1]),
        "core": (["12", 0], ["12", 1]),
        "plain": (["2", 0], ["3", 0]),
        "again": (["13", 0], ["13", 1]),
    }.items():
        k = f"s_{tag}"
        p[k] = sampler(pos, neg)
        dec, sv = save([k, 0], tag)
        p[f"d_{tag}"] = dec
        sv["inputs"]["images"] = [f"d_{tag}", 0]
        p[f"o_{tag}"] = sv
        p[f"l_{tag}"] = {
            "class_type": "SaveLatent",
            "inputs": {"samples": [k, 0], "filename_prefix": f"poselab_test/sp_{tag}"},
        }
    return p


def saved_latent(server, entry: dict, node: str) -> np.ndarray:
    from safetensors.numpy import load_file

    item = entry["outputs"][node]["latents"][0]
    path = server.base_dir / item.get("type", "output") / item["subfolder"] / item["filename"]
    return load_file(str(path))["latent_tensor"].astype(np.float32)


def test_adapter_steers_sampling_and_core_apply_controlnet_agrees(
    comfy_server, tiny_sd15, tiny_adapter
):
    info = comfy_server.object_info()
    assert (
        tiny_adapter
        in info["PoseLabLoadStablePose"]["input"]["required"]["adapter_name"][1]["options"]
    )
    entry = comfy_server.run_ok(graph(tiny_sd15, tiny_adapter))
    ours, core, other, plain = (
        saved(comfy_server, entry, f"o_{t}") for t in ("ours", "core", "other", "plain")
    )
    assert ours.shape == (SIZE, SIZE, 3)
    # The same ControlNet object through core Apply ControlNet gives the same image.
    assert np.abs(ours - core).max() <= 1.0
    # The adapter changes the result, and so does the pose it is given; an ignored pose would give
    # exactly the same latent. Measured on the sampled latents: the tiny model's random VAE decoder
    # saturates most pixels, which hides differences in the decoded images.
    lat = {
        t: saved_latent(comfy_server, entry, f"l_{t}") for t in ("ours", "other", "plain", "again")
    }
    adapter_effect = np.abs(lat["ours"] - lat["plain"]).mean()
    pose_effect = np.abs(lat["ours"] - lat["other"]).mean()
    assert np.array_equal(
        lat["ours"], lat["again"]
    )  # so any difference below comes from the inputs
    assert np.abs(ours - plain).mean() > 1.0
    # measured: adapter 54 (latent std 100: the tiny random UNet's), pose 1.4, i.e. 2.6 % of the
    # adapter's effect; in a random adapter the skeleton passes through six untrained convs (that a
    # trained adapter reads the pose is asserted on a toy problem in tests/unit/test_stable_pose_train.py)
    assert adapter_effect > 0.05 * lat["plain"].std()
    assert pose_effect > 0.01 * adapter_effect


def apply_graph(loader: dict, ckpt: str) -> dict:
    """Apply Stable-Pose on whatever ``loader`` gives as its control net."""
    return {
        "1": loader,
        "2": {
            "class_type": "PoseLabApplyStablePose",
            "inputs": {
                "positive": ["3", 0],
                "negative": ["3", 0],
                "control_net": ["1", 0],
                "pose": ["4", 0],
                "width": 64,
                "height": 64,
                "strength": 1.0,
                "start_percent": 0.0,
                "end_percent": 1.0,
            },
        },
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["5", 1], "text": "x"}},
        "4": {
            "class_type": "PoseLabPoseFromLibrary",
            "inputs": {"text": "arms raised", "width": 64, "height": 64, "fit": "none"},
        },
        "5": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["2", 2]}},
    }


def test_clear_errors(comfy_server, tiny_sd15, tiny_adapter):
    cn_folder = comfy_server.base_dir / "models" / "controlnet"
    cn = tiny_checkpoints.ensure_checkpoint(cn_folder, "controlnet")
    wrong = comfy_server.base_dir / "models" / "stable_pose" / "actually_a_controlnet.safetensors"
    shutil.copyfile(cn_folder / cn, wrong)
    loader = {"class_type": "PoseLabLoadStablePose", "inputs": {"adapter_name": wrong.name}}
    err = comfy_host.execution_error(comfy_server.run(apply_graph(loader, tiny_sd15), timeout=300))
    assert err is not None and "not a usable Stable-Pose adapter" in err, err
    # A core ControlNet given to our apply node: says what to do instead.
    loader = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": cn}}
    err = comfy_host.execution_error(comfy_server.run(apply_graph(loader, tiny_sd15), timeout=300))
    assert err is not None and "not a Stable-Pose adapter" in err, err


def test_train_workflow_lowers_heldout_loss_and_writes_checkpoints(comfy_server, tiny_sd15):
    """The shipped training workflow, shrunk: the adapter is made from the checkpoint's encoder,
    trained on procedural people, written to models/stable_pose/, then used to sample."""
    prompt = json.loads((REPO / "workflows" / "api" / "train_stable_pose.json").read_text())
    prompt["1"]["inputs"]["ckpt_name"] = tiny_sd15
    prompt["2"]["inputs"].update(
        synthetic_samples=STEPS_SAMPLES[1],
        resolution=TRAIN_SIZE,
        steps=STEPS_SAMPLES[0],
        batch_size=4,
        learning_rate=LR,
        holdout=0.25,
        save_every=STEPS_SAMPLES[0] // 2,
        adapter_name="test_stable_pose",
    )
    for node in ("3", "6", "7"):
        prompt[node]["inputs"].update(width=TRAIN_SIZE, height=TRAIN_SIZE)
    prompt["8"]["inputs"]["steps"] = 2
    folder = comfy_server.base_dir / "models" / "stable_pose"
    before = set(folder.glob("test_stable_pose*")) if folder.is_dir() else set()
    entry = comfy_server.run_ok(prompt)
    report = json.loads(entry["outputs"]["2"]["text"][0])
    print("stable-pose training report", {k: v for k, v in report.items() if k != "losses"})
    written = set(folder.glob("test_stable_pose*")) - before
    assert {p.name for p in written} == {report["adapter_file"], *report["checkpoints"]} and len(
        written
    ) == 2
    # Held-out samples: the trained adapter predicts the noise better than the bare UNet (the
    # untrained adapter is a no-op). With a random tiny UNet most of that is the adapter fixing the
    # UNet; that it reads the pose is asserted on a toy problem in tests/unit/test_stable_pose_train.py.
    assert report["eval_loss_after"] < 0.9 * report["eval_loss_before"], report
    assert len(report["losses"]) == STEPS_SAMPLES[0] and report["heldout_samples"] == 4
    assert saved(comfy_server, entry, "10").shape == (TRAIN_SIZE, TRAIN_SIZE, 3)


def test_train_cli_continues_an_adapter_without_overwriting(
    comfy_server, tiny_sd15, tiny_adapter, tmp_path
):
    import subprocess

    from safetensors.torch import load_file

    taken = tmp_path / "cli_sp.safetensors"
    taken.write_bytes(b"a user's file")
    init = comfy_server.base_dir / "models" / "stable_pose" / tiny_adapter
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "train_stable_pose.py"),
            "--ckpt",
            str(comfy_server.base_dir / "models" / "checkpoints" / tiny_sd15),
            "--init",
            str(init),
            "--synthetic",
            "4",
            "--resolution",
            "64",
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--lr",
            "1e-3",
            "--out",
            str(taken),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (
        report["adapter"] == str(tmp_path / "cli_sp_1.safetensors")
        and taken.read_bytes() == b"a user's file"
    )
    assert report["train_samples"] == 3 and report["heldout_samples"] == 1
    start = {k.removeprefix("stable_pose_adapter."): v for k, v in load_file(str(init)).items()}
    trained = load_file(report["adapter"])
    assert trained.keys() == start.keys()  # continued, with the released key layout read back
    assert any(not np.allclose(trained[k].numpy(), start[k].float().numpy()) for k in trained)


def test_trains_on_your_photo_and_its_extracted_pose(comfy_server, tiny_sd15):
    """Images + poses connected: one real photo (the bundled sample), its MediaPipe pose, a caption."""
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": tiny_sd15}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "cameraman.png"}},
        "3": {
            "class_type": "PoseLabExtractPose",
            "inputs": {"image": ["2", 0], "backend": "mediapipe"},
        },
        "4": {
            "class_type": "PoseLabTrainStablePose",
            "inputs": {
                "model": ["1", 0],
                "clip": ["1", 1],
                "vae": ["1", 2],
                "start_from": "new (from the model's encoder)",
                "synthetic_samples": 2,
                "resolution": 64,
                "steps": 2,
                "batch_size": 1,
                "learning_rate": 1e-3,
                "alpha": 5.0,
                "text_dropout": 0.5,
                "holdout": 0.25,
                "save_every": 0,
                "seed": 0,
                "adapter_name": "test_own_photo",
                "images": ["2", 0],
                "poses": ["3", 0],
                "captions": "a man with a camera",
            },
        },
    }
    entry = comfy_server.run_ok(prompt)
    report = json.loads(entry["outputs"]["4"]["text"][0], parse_constant=_not_json)
    # one photo: nothing to hold out, so the before/after loss is on the training sample itself,
    # and there is no other sample's pose to try (null, not NaN: the report is strict JSON)
    assert report["train_samples"] == 1 and report["heldout_samples"] == 0
    assert report["eval_loss_wrong_pose"] is None
    assert (comfy_server.base_dir / "models" / "stable_pose" / report["adapter_file"]).is_file()
    # poses and images that do not pair up: a clear error
    prompt["5"] = {"class_type": "ImageBatch", "inputs": {"image1": ["2", 0], "image2": ["2", 0]}}
    prompt["6"] = {"class_type": "ImageBatch", "inputs": {"image1": ["5", 0], "image2": ["2", 0]}}
    prompt["7"] = {
        "class_type": "PoseLabExtractPose",
        "inputs": {"image": ["5", 0], "backend": "mediapipe"},
    }
    prompt["4"]["inputs"].update(images=["6", 0], poses=["7", 0])
    err = comfy_host.execution_error(comfy_server.run(prompt, timeout=300))
    assert err is not None and "batch sizes do not match" in err, err


def _not_json(constant: str):
    raise AssertionError(f"the report holds {constant}, which is not JSON")


def test_seeded_training_repeats_exactly_and_keeps_the_last_checkpoints(comfy_server, tiny_sd15):
    from safetensors.torch import load_file

    def train(name: str, seed: int) -> dict:
        prompt = {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": tiny_sd15}},
            "2": {
                "class_type": "PoseLabTrainStablePose",
                "inputs": {
                    "model": ["1", 0],
                    "clip": ["1", 1],
                    "vae": ["1", 2],
                    "start_from": "new (from the model's encoder)",
                    "synthetic_samples": 4,
                    "resolution": 64,
                    "steps": 4,
                    "batch_size": 2,
                    "learning_rate": 1e-3,
                    "alpha": 5.0,
                    "text_dropout": 0.5,
                    "holdout": 0.25,
                    "save_every": 1,
                    "keep_checkpoints": 1,
                    "seed": seed,
                    "adapter_name": name,
                },
            },
        }
        entry = comfy_server.run_ok(prompt)
        return json.loads(entry["outputs"]["2"]["text"][0], parse_constant=_not_json)

    folder = comfy_server.base_dir / "models" / "stable_pose"
    a, b, c = train("seeded_a", 7), train("seeded_b", 7), train("seeded_c", 8)
    assert a["losses"] == b["losses"] and a["losses"] != c["losses"]
    wa, wb = load_file(str(folder / a["adapter_file"])), load_file(str(folder / b["adapter_file"]))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # steps 1-3 each wrote a checkpoint; keep_checkpoints=1 leaves the newest, plus the final adapter
    assert a["checkpoints"] == ["seeded_a_step000003.safetensors", "seeded_a.safetensors"], a[
        "checkpoints"
    ]
    assert sorted(p.name for p in folder.glob("seeded_a*")) == sorted(a["checkpoints"])
