"""The Pose Editor node through a real ComfyUI server, with no browser: its edits (the widget's
JSON) applied to a pose, an empty canvas with added people, what it sends to the widget, the
data route, and a clear error for a broken edits document."""

from __future__ import annotations

import json

import comfy_host
import numpy as np
from PIL import Image

from poselab.models.pose import editor_state, library, render
from poselab.models.pose.keypoints import J, parse_pose_keypoint

RW = J["right_wrist"]


def editor_prompt(edits: str, prefix: str, source: dict | None = None) -> dict:
    prompt = {
        "2": {
            "class_type": "PoseLabPoseEditor",
            "inputs": {"edits": edits, "width": 320, "height": 240},
        },
        "3": {
            "class_type": "PoseLabSavePoseJSON",
            "inputs": {"pose": ["2", 0], "filename_prefix": prefix},
        },
        "4": {"class_type": "SaveImage", "inputs": {"images": ["2", 1], "filename_prefix": prefix}},
    }
    if source is not None:
        prompt["1"] = source
        prompt["2"]["inputs"]["pose"] = ["1", 0]
    return prompt


def saved_pose(server, entry, node="3"):
    rel = entry["outputs"][node]["text"][0].removeprefix("saved ")
    return parse_pose_keypoint((server.base_dir / "output" / rel).read_text())


def saved_image(server, entry, node="4") -> np.ndarray:
    item = entry["outputs"][node]["images"][0]
    return np.asarray(
        Image.open(server.base_dir / "output" / item["subfolder"] / item["filename"]).convert("RGB")
    )


def test_registered_with_tooltips_and_search_aliases(comfy_server):
    info = comfy_server.object_info()["PoseLabPoseEditor"]
    assert info["category"] == "PoseLab/pose"
    assert info["output"] == ["POSE_KEYPOINT", "IMAGE"]
    for name, spec in info["input"]["optional"].items():
        assert spec[1].get("tooltip"), name
    assert info["input"]["optional"]["edits"][1].get("socketless") is True
    assert {"openpose editor", "skeleton"} <= set(info["search_aliases"])


def test_every_pose_node_lists_search_aliases(comfy_server):
    """On this ComfyUI (0.3.75, whose Schema predates the field) too: /object_info carries them for
    frontends that search by them."""
    info = comfy_server.object_info()
    pose_nodes = [
        k for k, v in info.items() if k.startswith("PoseLab") and v["category"] == "PoseLab/pose"
    ]
    assert len(pose_nodes) >= 10
    for node_id in pose_nodes:
        aliases = info[node_id].get("search_aliases")
        assert aliases and all(isinstance(a, str) and a for a in aliases), node_id
    assert "skeleton" in info["PoseLabEditPose"]["search_aliases"]
    assert "openpose" in info["PoseLabExtractPose"]["search_aliases"]


def test_data_route_serves_the_tables_and_the_library(comfy_server):
    for path in ("/poselab/pose_editor/data", "/api/poselab/pose_editor/data"):
        data = comfy_server.get_json(path)
        assert data["format"] == editor_state.FORMAT
        assert len(data["joints"]) == 18 and len(data["face_flip"]) == 70
        assert set(data["library"]) == set(library.pose_names())
        assert np.asarray(data["library"]["t-pose"]).shape == (18, 3)


def test_stored_edits_move_the_wrist_in_a_queued_prompt(comfy_server):
    base = library.get_pose("t-pose", 256, 256)
    moved = base.people[0].copy()
    moved.body[RW, :2] += (-20.0, 35.0)
    edits = editor_state.dump_edit_state(
        editor_state.EditState({0: editor_state.diff_frame(base, [moved])})
    )
    source = {
        "class_type": "PoseLabPoseFromLibrary",
        "inputs": {"text": "t-pose", "width": 256, "height": 256, "fit": "none"},
    }
    entry = comfy_server.run_ok(editor_prompt(edits, "editor/wrist", source))
    out = saved_pose(comfy_server, entry)
    np.testing.assert_allclose(
        out[0].people[0].body[RW, :2], base.people[0].body[RW, :2] + (-20.0, 35.0), atol=2e-3
    )
    others = [i for i in range(18) if i != RW]
    np.testing.assert_allclose(
        out[0].people[0].body[others], base.people[0].body[others], atol=2e-3
    )
    # the render is Render Pose's drawing of that pose
    np.testing.assert_array_equal(saved_image(comfy_server, entry), render.render_openpose(out[0]))
    # the widget gets the input pose (not the edited one) and a report of the frame
    ui = entry["outputs"]["2"]
    sent = parse_pose_keypoint(ui["openpose_json"][0])
    np.testing.assert_allclose(sent[0].people[0].body, base.people[0].body, atol=2e-3)
    (report,) = json.loads(ui["poselab_edit_report"][0])
    assert report["edited_points"] == 1 and not report["input_changed"]


def test_empty_canvas_with_a_background_and_an_added_person(comfy_server):
    photo = Image.open(comfy_host.PACK_DIR / "assets" / "samples" / "cameraman.png")
    w, h = photo.size
    empty = editor_state.PoseFrame(w, h, [])
    newcomer = library.get_pose("arms raised", w, h).people[0]
    edits = editor_state.dump_edit_state(
        editor_state.EditState({0: editor_state.diff_frame(empty, [], [newcomer])})
    )
    prompt = editor_prompt(edits, "editor/added")
    prompt["5"] = {"class_type": "LoadImage", "inputs": {"image": "cameraman.png"}}
    prompt["2"]["inputs"]["background"] = ["5", 0]
    entry = comfy_server.run_ok(prompt)
    out = saved_pose(comfy_server, entry)
    assert (out[0].width, out[0].height) == (w, h) and len(out[0].people) == 1
    np.testing.assert_allclose(out[0].people[0].body, newcomer.body, atol=2e-3)
    (ref,) = entry["outputs"]["2"]["poselab_background"]
    preview = Image.open(comfy_server.base_dir / "temp" / ref["filename"])
    assert max(preview.size) <= 1024 and abs(preview.size[0] / preview.size[1] - w / h) < 0.02


def test_no_pose_and_no_background_gives_an_empty_canvas_of_the_given_size(comfy_server):
    entry = comfy_server.run_ok(editor_prompt("", "editor/empty"))
    out = saved_pose(comfy_server, entry)
    assert (out[0].width, out[0].height, out[0].people) == (320, 240, [])
    assert saved_image(comfy_server, entry).shape == (240, 320, 3)


def test_a_broken_edits_document_fails_clearly_and_the_next_prompt_runs(comfy_server):
    entry = comfy_server.run(
        editor_prompt(
            '{"format": "poselab-pose-edits", "version": 1, "frames": {"0": 5}}', "editor/bad"
        ),
        timeout=120,
    )
    err = comfy_host.execution_error(entry)
    assert (
        err is not None
        and "PoseLabPoseEditor" in err
        and "Pose Editor edits" in err
        and "Reset" in err
    )
    assert not (comfy_server.base_dir / "output" / "editor" / "bad.json").exists()
    comfy_server.run_ok(editor_prompt("", "editor/after_bad"))
