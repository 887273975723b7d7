"""PoseLabExtractPose through a real ComfyUI server: the shipped extract_pose workflow on a
shared group photo (hands by default, face on request), grayscale and RGBA inputs, a batch with
an empty image, an off-canvas pose followed by normal runs (issue 10), and the openpose backend
without weight files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import comfy_host
import numpy as np
import pytest
from PIL import Image

from poselab.models.pose.keypoints import parse_pose_keypoint

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "workflows" / "api" / "extract_pose.json"
GROUP = "ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg"  # three footballers, 950x641
SOLO = "052475643.jpg"  # 854x480, one man (shared evaluation data)
SAMPLE = (
    Path(__file__).resolve().parents[2] / "assets" / "samples" / "cameraman.png"
)  # bundled, CC0, 512x512


def saved(server, entry: dict, node: str) -> np.ndarray:
    images = entry["outputs"][node]["images"]
    assert len(images) == 1
    item = images[0]
    return np.asarray(Image.open(server.base_dir / "output" / item["subfolder"] / item["filename"]))


def options(spec) -> list:
    return spec[1]["options"] if spec[0] == "COMBO" else spec[0]


def extract_prompt(image_name: str, **inputs) -> dict:
    prompt = json.loads(WORKFLOW.read_text())
    prompt["1"]["inputs"]["image"] = image_name
    prompt["2"]["inputs"].update(inputs)
    return prompt


def test_node_is_registered(comfy_server):
    info = comfy_server.object_info()["PoseLabExtractPose"]
    assert info["category"] == "PoseLab/pose"
    assert info["display_name"] == "Extract Pose (PoseLab)"
    assert info["output"] == ["POSE_KEYPOINT", "IMAGE", "MASK"]
    inputs = {**info["input"]["required"], **info["input"].get("optional", {})}
    assert set(info["input"]["required"]) == {"image", "backend"}  # the rest have defaults
    assert (
        options(inputs["backend"]) == ["mediapipe", "openpose"]
        and inputs["backend"][1]["default"] == "mediapipe"
    )
    for name, spec in inputs.items():
        assert spec[1].get("tooltip"), f"input {name} has no tooltip"
    # the standard OpenPose file names are always offered, so a prompt naming them validates
    assert "body_pose_model.pth" in options(inputs["body_model"])


def test_extract_pose_workflow_on_a_group_photo(comfy_server, pose_data):
    comfy_server.upload_image(pose_data / GROUP, "people.jpg")
    entry = comfy_server.run_ok(extract_prompt("people.jpg"))
    # the JSON shown in the node UI (controlnet_aux's openpose_json) holds the three players
    ui_json = entry["outputs"]["2"]["openpose_json"][0]
    frames = parse_pose_keypoint(ui_json)
    assert len(frames) == 1 and (frames[0].width, frames[0].height) == (950, 641)
    assert len(frames[0].people) >= 3
    # hands are on in the workflow, face is off: the 21-point hands of the players whose wrists show
    hands = [h for p in frames[0].people for h in (p.left_hand, p.right_hand) if h is not None]
    assert len(hands) >= 3 and all(h.shape == (21, 3) for h in hands)
    assert all(p.face is None for p in frames[0].people)
    skeleton = saved(comfy_server, entry, "3")
    assert skeleton.shape == (641, 950, 3)
    assert (skeleton.sum(axis=2) > 0).mean() > 0.005  # limbs drawn on black
    mask = saved(comfy_server, entry, "5")
    assert mask.shape[:2] == (641, 950)
    assert 0.05 < (mask[..., 0] > 127).mean() < 0.6
    # the pose saved by the pose tools' JSON node is the same pose
    note = entry["outputs"]["6"]["text"][
        0
    ]  # "saved <path under output/>" (never overwrites, so read it)
    assert note.startswith("saved "), note
    saved_frames = parse_pose_keypoint(
        (comfy_server.base_dir / "output" / note[len("saved ") :]).read_text()
    )
    assert len(saved_frames[0].people) == len(frames[0].people)
    np.testing.assert_allclose(saved_frames[0].people[0].body, frames[0].people[0].body, atol=1e-3)


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_grayscale_and_rgba_inputs(comfy_server, mode):
    name = f"solo_{mode}.png"
    img = Image.open(SAMPLE).convert(mode)
    img.save(comfy_server.base_dir / "input" / name)
    entry = comfy_server.run_ok(extract_prompt(name, max_people=2))
    frames = parse_pose_keypoint(entry["outputs"]["2"]["openpose_json"][0])
    assert (frames[0].width, frames[0].height) == (512, 512)
    assert 1 <= len(frames[0].people) <= 2
    assert saved(comfy_server, entry, "3").shape == (512, 512, 3)


def test_face_and_hands_switches(comfy_server, pose_data):
    comfy_server.upload_image(pose_data / SOLO, "solo.jpg")
    both = parse_pose_keypoint(
        comfy_server.run_ok(extract_prompt("solo.jpg", openpose_face=True))["outputs"]["2"][
            "openpose_json"
        ][0]
    )
    person = both[0].people[0]
    assert (
        person.face is not None
        and person.face.shape == (70, 3)
        and (person.face[:, 2] > 0).sum() >= 60
    )
    assert person.left_hand is not None or person.right_hand is not None
    body_only = parse_pose_keypoint(
        comfy_server.run_ok(extract_prompt("solo.jpg", openpose_hands=False))["outputs"]["2"][
            "openpose_json"
        ][0]
    )
    assert all(
        p.face is None and p.left_hand is None and p.right_hand is None for p in body_only[0].people
    )
    np.testing.assert_allclose(
        body_only[0].people[0].body, person.body, atol=1e-3
    )  # the body does not change


def test_a_batch_with_an_empty_image(comfy_server, pose_data):
    comfy_server.upload_image(pose_data / SOLO, "solo.jpg")
    Image.fromarray(np.full((480, 854, 3), 128, np.uint8)).save(
        comfy_server.base_dir / "input" / "blank.png"
    )
    prompt = extract_prompt("solo.jpg")
    prompt["7"] = {"class_type": "LoadImage", "inputs": {"image": "blank.png"}}
    prompt["8"] = {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["7", 0]}}
    prompt["2"]["inputs"]["image"] = ["8", 0]
    del prompt["3"], prompt["6"]  # keep the pose and the masks
    entry = comfy_server.run_ok(prompt)
    frames = parse_pose_keypoint(entry["outputs"]["2"]["openpose_json"][0])
    assert len(frames) == 2 and len(frames[0].people) >= 1 and frames[1].people == []


def test_an_off_canvas_pose_does_not_break_later_runs(comfy_server, pose_data):
    """Issue 10, item 1: Edit Pose moves the person off the canvas, Person Mask (pose model) and
    Part-Warp follow; then a normal Person Mask run and a normal extraction must work."""
    comfy_server.upload_image(pose_data / SOLO, "solo.jpg")
    prompt = extract_prompt("solo.jpg")
    prompt["7"] = {
        "class_type": "PoseLabEditPose",
        "inputs": {
            "pose": ["2", 0],
            "people": "all",
            "limb": "none",
            "angle": 0.0,
            "mirror": False,
            "mirror_axis": "person",
            "scale": 1.0,
            "scale_center": "person",
            "move_x": 16384.0,
            "move_y": 0.0,
            "keep_only_selected": False,
        },
    }
    prompt["8"] = {
        "class_type": "PoseLabPersonMask",
        "inputs": {
            "image": ["1", 0],
            "backend": "mediapipe",
            "pose": ["7", 0],
            "person": 0,
            "mediapipe_model": "pose",
        },
    }
    prompt["9"] = {"class_type": "MaskToImage", "inputs": {"mask": ["8", 0]}}
    prompt["10"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["9", 0], "filename_prefix": "poselab/offcanvas"},
    }
    comfy_server.run(
        prompt, timeout=600
    )  # may fail with a clear message, must not poison the next runs
    prompt["8"]["inputs"]["pose"] = ["2", 0]
    entry = comfy_server.run_ok(prompt)
    mask = saved(comfy_server, entry, "10")
    assert 0.02 < (mask[..., 0] > 127).mean() < 0.4  # the man covers ~4 % of the photo
    frames = parse_pose_keypoint(
        comfy_server.run_ok(extract_prompt("solo.jpg", max_people=3))["outputs"]["2"][
            "openpose_json"
        ][0]
    )
    assert len(frames[0].people) >= 1


def test_tiny_image_gives_an_empty_pose_not_an_error(comfy_server):
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(
        comfy_server.base_dir / "input" / "tiny.png"
    )
    entry = comfy_server.run_ok(extract_prompt("tiny.png"))
    frames = parse_pose_keypoint(entry["outputs"]["2"]["openpose_json"][0])
    assert frames[0].people == [] and (frames[0].width, frames[0].height) == (16, 16)
    assert saved(comfy_server, entry, "3").max() == 0  # black skeleton image


def test_openpose_without_weights_names_the_folder(comfy_server):
    prompt = extract_prompt(SAMPLE.name, backend="openpose")
    entry = comfy_server.run(prompt, timeout=300)
    err = comfy_host.execution_error(entry)
    assert err is not None, "the openpose backend ran without weight files"
    assert "body_pose_model.pth" in err
    assert str(Path("models") / "openpose") in err, err


def test_openpose_backend_runs_with_weights_in_the_models_folder(comfy_server, tmp_path):
    # real-format files with random weights (nothing can be downloaded), under names of their own
    # so the missing-weights test above is unaffected whatever the order
    from poselab.models.pose import detect_openpose

    folder = comfy_server.base_dir / "models" / "openpose"
    folder.mkdir(parents=True, exist_ok=True)
    written = detect_openpose.write_random_weights(str(tmp_path))
    names = {}
    for kind, default in (
        ("body", detect_openpose.BODY_FILE),
        ("hand", detect_openpose.HAND_FILE),
        ("face", detect_openpose.FACE_FILE),
    ):
        names[kind] = f"random_{default}"
        shutil.move(written[default], folder / names[kind])
    info = comfy_server.object_info()["PoseLabExtractPose"]["input"]["optional"]
    assert names["body"] in options(info["body_model"])  # the new file is offered without a restart
    prompt = extract_prompt(
        SAMPLE.name,
        backend="openpose",
        body_model=names["body"],
        hand_model=names["hand"],
        face_model=names["face"],
        openpose_hands=True,
        openpose_face=True,
        detect_resolution=128,
    )
    entry = comfy_server.run_ok(prompt)
    frames = parse_pose_keypoint(entry["outputs"]["2"]["openpose_json"][0])
    assert (frames[0].width, frames[0].height) == (512, 512)  # random weights: people may be empty
    assert saved(comfy_server, entry, "3").shape == (512, 512, 3)
    assert saved(comfy_server, entry, "5").shape[:2] == (512, 512)
