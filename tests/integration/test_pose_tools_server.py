"""The pose utility nodes through a real ComfyUI server: registration, one prompt chaining
Library -> Edit -> Render / Save and LoadPoseJSON -> Render, results equal to the library code,
and a clear failure for malformed pose JSON."""

from __future__ import annotations

import json

import comfy_host
import numpy as np
import pytest
from PIL import Image

from poselab.models.pose import edit, library, render
from poselab.models.pose.keypoints import parse_pose_keypoint, to_pose_keypoint

NODE_IDS = (
    "PoseLabRenderPose",
    "PoseLabPoseHeatmaps",
    "PoseLabPartMasks",
    "PoseLabEditPose",
    "PoseLabRetargetPose",
    "PoseLabPoseFromLibrary",
    "PoseLabLoadPoseJSON",
    "PoseLabSavePoseJSON",
)


def saved_image(server, entry: dict, node: str) -> np.ndarray:
    images = entry["outputs"][node]["images"]
    assert len(images) == 1
    item = images[0]
    path = server.base_dir / "output" / item["subfolder"] / item["filename"]
    return np.asarray(Image.open(path).convert("RGB"))


def test_nodes_are_registered_with_tooltips(comfy_server):
    info = comfy_server.object_info()
    for node_id in NODE_IDS:
        assert node_id in info, f"{node_id} is not registered"
        assert info[node_id]["category"] == "PoseLab/pose"
        required = info[node_id]["input"]["required"]
        for name, spec in required.items():
            assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    assert info["PoseLabSavePoseJSON"]["output_node"] is True
    assert info["PoseLabEditPose"]["output"] == ["POSE_KEYPOINT"]
    limbs = info["PoseLabEditPose"]["input"]["required"]["limb"]
    assert "right_upper_arm" in (limbs[1]["options"] if limbs[0] == "COMBO" else limbs[0])


def test_library_edit_render_save_and_load_in_one_prompt(comfy_server):
    # a pose file in the input folder for LoadPoseJSON, half the size of the library canvas
    pasted = to_pose_keypoint([library.get_pose("t-pose", 128, 128)])
    prompt = {
        "1": {
            "class_type": "PoseLabPoseFromLibrary",
            "inputs": {"text": "raise both arms", "width": 256, "height": 256, "fit": "none"},
        },
        "2": {
            "class_type": "PoseLabEditPose",
            "inputs": {
                "pose": ["1", 0],
                "people": "all",
                "limb": "right_upper_arm",
                "angle": 45.0,
                "mirror": True,
                "mirror_axis": "canvas",
                "scale": 0.8,
                "scale_center": "person",
                "move_x": 10.0,
                "move_y": -5.0,
                "keep_only_selected": False,
            },
        },
        "3": {
            "class_type": "PoseLabRenderPose",
            "inputs": {
                "pose": ["2", 0],
                "style": "openpose",
                "width": 0,
                "height": 0,
                "hands_and_face": True,
            },
        },
        "4": {
            "class_type": "SaveImage",
            "inputs": {"images": ["3", 0], "filename_prefix": "posetools/edited"},
        },
        "5": {
            "class_type": "PoseLabSavePoseJSON",
            "inputs": {"pose": ["2", 0], "filename_prefix": "posetools/edited"},
        },
        "6": {
            "class_type": "PoseLabLoadPoseJSON",
            "inputs": {"json_text": json.dumps(pasted), "file": "(none)"},
        },
        "7": {
            "class_type": "PoseLabRenderPose",
            "inputs": {
                "pose": ["6", 0],
                "style": "stablepose_coco17",
                "width": 256,
                "height": 0,
                "hands_and_face": False,
            },
        },
        "8": {
            "class_type": "SaveImage",
            "inputs": {"images": ["7", 0], "filename_prefix": "posetools/loaded"},
        },
    }
    entry = comfy_server.run_ok(prompt)

    # the same edit done locally with the library code
    expected = edit.edit_frame(
        library.get_pose("arms raised", 256, 256),
        person="all",
        limb="right_upper_arm",
        angle=45.0,
        mirror=True,
        mirror_axis="canvas",
        scale=0.8,
        center="person",
        dx=10.0,
        dy=-5.0,
    )
    # the saved JSON is that pose (written into the output folder, named as asked)
    text = entry["outputs"]["5"]["text"][0]
    assert text == "saved posetools/edited.json"
    saved = parse_pose_keypoint(
        (comfy_server.base_dir / "output" / "posetools" / "edited.json").read_text()
    )
    np.testing.assert_allclose(saved[0].people[0].body, expected.people[0].body, atol=2e-3)
    # the rendered image is pixel-identical to rendering that pose here
    img = saved_image(comfy_server, entry, "4")
    assert img.shape == (256, 256, 3)
    np.testing.assert_array_equal(img, render.render_openpose(saved[0]))
    # Stable-Pose style from the pasted JSON, scaled to width 256 (height follows the aspect ratio)
    img2 = saved_image(comfy_server, entry, "8")
    assert img2.shape == (256, 256, 3)
    np.testing.assert_array_equal(
        img2, render.render_coco17_stablepose(parse_pose_keypoint(pasted)[0], 256, 256)
    )

    # a second run with another edit (an identical prompt is served from ComfyUI's cache, as for
    # SaveImage) writes a new file and leaves the first one alone
    first = (comfy_server.base_dir / "output" / "posetools" / "edited.json").read_text()
    second = {k: json.loads(json.dumps(prompt[k])) for k in ("1", "2", "5")}
    second["2"]["inputs"]["move_x"] = 20.0
    entry = comfy_server.run_ok(second)
    assert entry["outputs"]["5"]["text"][0] == "saved posetools/edited_0001.json"
    assert (comfy_server.base_dir / "output" / "posetools" / "edited.json").read_text() == first


def test_load_from_input_file_heatmaps_masks_and_retarget(comfy_server):
    frames = [library.get_pose("walking", 192, 256)]
    (comfy_server.base_dir / "input" / "poselab_walk.json").write_text(
        json.dumps(to_pose_keypoint(frames))
    )
    prompt = {
        "1": {
            "class_type": "PoseLabLoadPoseJSON",
            "inputs": {"json_text": "", "file": "poselab_walk.json"},
        },
        "2": {
            "class_type": "PoseLabPoseHeatmaps",
            "inputs": {"pose": ["1", 0], "sigma": 4.0, "person": -1},
        },
        "3": {
            "class_type": "PoseLabPartMasks",
            "inputs": {"pose": ["1", 0], "person": 0, "torso": "polygon"},
        },
        "4": {
            "class_type": "PoseLabPoseFromLibrary",
            "inputs": {
                "text": "t pose",
                "width": 64,
                "height": 64,
                "fit": "source bone lengths",
                "source_pose": ["1", 0],
            },
        },
        "5": {
            "class_type": "PoseLabRetargetPose",
            "inputs": {"source_pose": ["1", 0], "target_pose": ["4", 0], "anchor": "source"},
        },
        "6": {
            "class_type": "PoseLabSavePoseJSON",
            "inputs": {"pose": ["5", 0], "filename_prefix": "posetools/retarget"},
        },
        "7": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 0]}},
        "8": {
            "class_type": "SaveImage",
            "inputs": {"images": ["7", 0], "filename_prefix": "posetools/parts"},
        },
        "9": {
            "class_type": "SaveImage",
            "inputs": {"images": ["2", 0], "filename_prefix": "posetools/heat"},
        },
    }
    entry = comfy_server.run_ok(prompt)
    # ten part masks, one image each
    assert len(entry["outputs"]["8"]["images"]) == 10
    heat = saved_image(comfy_server, entry, "9")
    assert heat.shape == (256, 192, 3) and heat.max() > 200
    out = parse_pose_keypoint(
        (comfy_server.base_dir / "output" / "posetools" / "retarget.json").read_text()
    )
    assert (out[0].width, out[0].height) == (192, 256)
    src = frames[0].people[0].body
    res = out[0].people[0].body
    # retargeting a pose already fitted to the source's bone lengths keeps those lengths
    for a, b in ((2, 3), (3, 4), (8, 9), (9, 10)):
        assert np.linalg.norm(res[a, :2] - res[b, :2]) == pytest.approx(
            np.linalg.norm(src[a, :2] - src[b, :2]), abs=0.05
        )
    # and the arms are out sideways as in a T-pose
    assert abs(res[4, 1] - res[2, 1]) < 10


@pytest.mark.parametrize(
    "inputs,message",
    [
        (
            {"json_text": '[{"people": [{"pose_keypoints_2d": [1, 2', "file": "(none)"},
            "not valid JSON",
        ),
        (
            {
                "json_text": '[{"people": [], "canvas_width": 0, "canvas_height": 64}]',
                "file": "(none)",
            },
            "must be positive",
        ),
        ({"json_text": "  ", "file": "(none)"}, "no pose JSON given"),
    ],
)
def test_malformed_pose_json_fails_the_prompt_with_a_clear_message(comfy_server, inputs, message):
    prompt = {
        "1": {"class_type": "PoseLabLoadPoseJSON", "inputs": inputs},
        "2": {
            "class_type": "PoseLabSavePoseJSON",
            "inputs": {"pose": ["1", 0], "filename_prefix": "posetools/bad"},
        },
    }
    entry = comfy_server.run(prompt, timeout=120)
    err = comfy_host.execution_error(entry)
    assert err is not None and "PoseLabLoadPoseJSON" in err
    assert message in err
    assert not (comfy_server.base_dir / "output" / "posetools" / "bad.json").exists()


def test_unknown_library_text_lists_the_poses(comfy_server):
    prompt = {
        "1": {
            "class_type": "PoseLabPoseFromLibrary",
            "inputs": {
                "text": "juggling flaming torches",
                "width": 64,
                "height": 64,
                "fit": "none",
            },
        },
        "2": {
            "class_type": "PoseLabSavePoseJSON",
            "inputs": {"pose": ["1", 0], "filename_prefix": "posetools/x"},
        },
    }
    err = comfy_host.execution_error(comfy_server.run(prompt, timeout=120))
    assert err is not None and "no library pose matches" in err and "arms raised" in err


def test_extract_and_edit_pose_workflow_on_a_real_photo(comfy_server, pose_data):
    """The shipped workflow on an MPII photo: the saved pose is the extracted pose with the right
    upper arm turned 60 degrees about the shoulder, and the saved skeleton image draws it."""
    from pathlib import Path

    workflow = json.loads(
        (
            Path(__file__).resolve().parents[2] / "workflows" / "api" / "extract_and_edit_pose.json"
        ).read_text()
    )
    workflow["1"]["inputs"]["image"] = comfy_server.upload_image(
        pose_data / "005808361.jpg", "poselab_mpii_one.jpg"
    )
    workflow["8"]["inputs"]["filename_prefix"] = "posetools/workflow"
    entry = comfy_server.run_ok(workflow)

    extracted = parse_pose_keypoint(entry["outputs"]["2"]["openpose_json"][0])
    assert len(extracted[0].people) >= 1
    saved = parse_pose_keypoint(
        (comfy_server.base_dir / "output" / "posetools" / "workflow.json").read_text()
    )
    expected = edit.edit_frame(extracted[0], person="all", limb="right_upper_arm", angle=60.0)
    assert len(saved[0].people) == len(expected.people)
    for got, want, before in zip(saved[0].people, expected.people, extracted[0].people):
        np.testing.assert_allclose(got.body, want.body, atol=2e-3)
        if (
            before.body[2, 2] > 0 and before.body[3, 2] > 0
        ):  # shoulder and elbow found: the elbow moved
            assert np.linalg.norm(got.body[3, :2] - before.body[3, :2]) > 5
    img = saved_image(comfy_server, entry, "5")
    assert img.shape[:2] == (extracted[0].height, extracted[0].width)
    np.testing.assert_array_equal(img, render.render_openpose(saved[0]))
