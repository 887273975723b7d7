"""Deformable-GAN nodes through a real ComfyUI server: the pose-transfer workflow on a real photo
with a tiny checkpoint generated here, and the training workflow (synthetic dataset -> trainer ->
checkpoint in models/posegan) followed by loading and transferring with what it wrote."""

from __future__ import annotations

import json
from pathlib import Path

import comfy_host
import cv2
import numpy as np
import pytest
from PIL import Image

from poselab.models.posegan import checkpoint, networks

REPO = Path(__file__).resolve().parents[2]
PHOTO = "051423444.jpg"  # MPII, one man in front of a truck
SIZE = (640, 360)


def output_image(server, entry: dict, node: str) -> np.ndarray:
    item = entry["outputs"][node]["images"][0]
    path = server.base_dir / item.get("type", "output") / item["subfolder"] / item["filename"]
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def tiny_model(comfy_server):
    """A seeded, untrained 128x64 generator at 1/16 width, in the real checkpoint format."""
    folder = comfy_server.base_dir / "models" / "posegan"
    folder.mkdir(parents=True, exist_ok=True)
    import torch

    torch.manual_seed(0)
    gen = networks.Generator(networks.PoseGANConfig(height=128, width=64, width_mult=0.0625))
    checkpoint.save_model(
        folder / "posegan_synthetic.safetensors", gen, step=0, info={"made_by": "test"}
    )
    return "posegan_synthetic.safetensors"


def test_nodes_are_registered(comfy_server):
    info = comfy_server.object_info()
    for node in (
        "PoseLabSyntheticPairs",
        "PoseLabTrainPoseGAN",
        "PoseLabLoadPoseGAN",
        "PoseLabPoseGANTransfer",
    ):
        assert info[node]["category"] == "PoseLab/posegan", node
    assert info["PoseLabPoseGANTransfer"]["output"] == ["IMAGE", "MASK"]
    assert info["PoseLabLoadPoseGAN"]["output"] == ["POSEGAN_MODEL"]
    assert info["PoseLabSyntheticPairs"]["output"][:4] == [
        "IMAGE",
        "IMAGE",
        "POSE_KEYPOINT",
        "POSE_KEYPOINT",
    ]


def test_pose_transfer_workflow_on_a_photo(comfy_server, tiny_model, pose_data):
    img = cv2.resize(cv2.imread(str(pose_data / PHOTO)), SIZE, interpolation=cv2.INTER_AREA)
    cv2.imwrite(
        str(comfy_server.base_dir / "input" / "posegan_source.jpg"),
        img,
        [cv2.IMWRITE_JPEG_QUALITY, 100],
    )
    source = np.asarray(
        Image.open(comfy_server.base_dir / "input" / "posegan_source.jpg").convert("RGB")
    )
    prompt = json.loads((REPO / "workflows" / "api" / "pose_transfer_posegan.json").read_text())
    assert prompt["4"]["inputs"]["ckpt_name"] == tiny_model
    entry = comfy_server.run_ok(prompt)
    out = output_image(comfy_server, entry, "6")
    assert out.shape == source.shape
    diff = np.abs(out.astype(int) - source.astype(int)).mean(axis=2)
    # the man stands at x ~ 430-540 of 640: the crop around him (and his raised arms) is replaced
    # by the generator's output, the truck on the left stays as it was
    assert diff[:, :250].mean() < 1.0, diff[:, :250].mean()
    assert diff[100:300, 440:540].mean() > 10, diff[100:300, 440:540].mean()


def test_train_workflow_then_transfer_with_the_written_checkpoint(comfy_server):
    prompt = json.loads((REPO / "workflows" / "api" / "train_posegan.json").read_text())
    # the shipped settings train for hours on a CPU: the same graph, test-sized
    prompt["1"]["inputs"].update(
        count=6, size="test_64x64", dataset_name="it_posegan", test_fraction=0.34
    )
    prompt["2"]["inputs"].update(
        size="test_64x64",
        steps=3,
        batch_size=2,
        width_mult=0.0625,
        resume=False,
        checkpoint_name="it_posegan",
        sample_every=2,
        checkpoint_every=2,
    )
    entry = comfy_server.run_ok(prompt)
    ds = comfy_server.base_dir / "output" / "it_posegan"
    assert (ds / "annotation-train.csv").is_file() and len(list((ds / "train").glob("*.png"))) == 8
    ckpt = comfy_server.base_dir / "models" / "posegan" / "it_posegan.safetensors"
    meta = checkpoint.read_model_metadata(ckpt)
    assert (
        meta["step"] == 3
        and meta["config"].image_size == (64, 64)
        and meta["info"]["nn_space"] == "pixel"
    )
    run = comfy_server.base_dir / "output" / "posegan_runs" / "it_posegan"
    assert (run / "state.safetensors").is_file() and (run / "samples" / "step_000002.png").is_file()
    curve = output_image(comfy_server, entry, "3")
    assert curve.shape == (320, 512, 3) and curve.std() > 5

    # the trained file is immediately loadable and drives a transfer of synthetic pairs
    transfer = {
        "1": {
            "class_type": "PoseLabSyntheticPairs",
            "inputs": {
                "seed": 7,
                "count": 2,
                "size": "test_64x64",
                "source_pose": "standing",
                "target_pose": "arms_raised",
                "still_torso": True,
                "write_dataset": False,
                "dataset_name": "unused",
                "test_fraction": 0.1,
            },
        },
        "2": {
            "class_type": "PoseLabLoadPoseGAN",
            "inputs": {"ckpt_name": "it_posegan.safetensors"},
        },
        "3": {
            "class_type": "PoseLabPoseGANTransfer",
            "inputs": {
                "model": ["2", 0],
                "source": ["1", 0],
                "source_pose": ["1", 2],
                "target_pose": ["1", 3],
                "person_index": 0,
                "output": "crop",
            },
        },
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
        "5": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 1]}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
    }
    entry = comfy_server.run_ok(transfer)
    assert len(entry["outputs"]["4"]["images"]) == 2
    assert output_image(comfy_server, entry, "4").shape == (64, 64, 3)
    mask = output_image(comfy_server, entry, "6")
    assert 0.05 < (mask[..., 0] > 127).mean() < 0.9  # the union of the target's part masks

    # training again under the same name without resume never overwrites: a new run is made
    entry = comfy_server.run_ok(prompt)
    assert (comfy_server.base_dir / "models" / "posegan" / "it_posegan_1.safetensors").is_file()
    assert (comfy_server.base_dir / "output" / "it_posegan_1").is_dir()
    # nor does resume touch a model file that no run of ours wrote
    user_file = comfy_server.base_dir / "models" / "posegan" / "users_own.safetensors"
    user_file.write_bytes(b"a user's file")
    prompt["2"]["inputs"].update(checkpoint_name="users_own", resume=True)
    comfy_server.run_ok(prompt)
    assert user_file.read_bytes() == b"a user's file"
    assert (
        checkpoint.read_model_metadata(user_file.with_name("users_own_1.safetensors"))["step"] == 3
    )


def test_clear_errors(comfy_server):
    bad = {
        "1": {
            "class_type": "PoseLabTrainPoseGAN",
            "inputs": {
                "dataset": "no_such_dataset",
                "size": "test_64x64",
                "steps": 1,
                "batch_size": 1,
                "learning_rate": 0.0002,
                "seed": 0,
                "resume": False,
                "checkpoint_name": "x",
                "warp_skip": "mask",
                "width_mult": 0.0625,
                "output": "image",
                "nn_window": "3",
                "l1_weight": 0.0,
                "vgg_weights": "(none: pixel-space NN loss)",
                "sample_every": 1,
                "checkpoint_every": 1,
            },
        },
    }
    entry = comfy_server.run(bad, timeout=120)
    err = comfy_host.execution_error(entry)
    assert (
        err is not None
        and "no_such_dataset" in err
        and "write one with Synthetic Pose Pairs (PoseLab)" in err
    )
