"""Pose library: enough sane poses, text matching, canvas placement, fitting, JSON files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from poselab.models.pose import library
from poselab.models.pose.keypoints import J, PoseFrame

REQUIRED = (
    "standing",
    "sitting",
    "arms raised",
    "walking",
    "t-pose",
    "hands on hips",
    "waving",
    "kneeling",
)


def test_library_has_the_required_poses_and_they_are_anatomically_sane():
    names = library.pose_names()
    assert set(REQUIRED) <= set(names) and len(names) >= 8
    bodies = {n: library.library_body(n) for n in names}
    for name, body in bodies.items():
        present = body[:, 2] > 0
        for joint in ("neck", "right_shoulder", "left_shoulder", "right_hip", "left_hip", "nose"):
            assert present[J[joint]], (name, joint)
        assert (body[present, :2] >= 0).all() and (body[present, :2] <= 1).all(), name
    # a standing person is about 0.9 of the unit square tall, head above hips above ankles
    s = bodies["standing"]
    assert s[J["nose"], 1] < s[J["right_hip"], 1] < s[J["right_ankle"], 1]
    assert 0.75 < s[J["right_ankle"], 1] - s[J["nose"], 1] < 0.9
    # facing the camera: the right side on the image's left
    assert s[J["right_shoulder"], 0] < s[J["left_shoulder"], 0]
    # the poses do what their names say
    a = bodies["arms raised"]
    assert a[J["right_wrist"], 1] < a[J["nose"], 1] and a[J["left_wrist"], 1] < a[J["nose"], 1]
    t = bodies["t-pose"]
    assert abs(t[J["right_wrist"], 1] - t[J["right_shoulder"], 1]) < 0.03
    assert t[J["left_wrist"], 0] - t[J["right_wrist"], 0] > 0.6
    w = bodies["waving"]
    assert (
        w[J["left_wrist"], 1] < w[J["left_shoulder"], 1]
        and w[J["right_wrist"], 1] > w[J["right_shoulder"], 1]
    )
    sit, kneel = bodies["sitting"], bodies["kneeling"]
    leg = lambda b: b[J["right_ankle"], 1] - b[J["right_hip"], 1]  # noqa: E731
    assert leg(sit) < 0.8 * leg(s) and leg(kneel) < 0.8 * leg(s)
    h = bodies["hands on hips"]
    assert np.linalg.norm(h[J["right_wrist"], :2] - h[J["right_hip"], :2]) < 0.08  # a hand width


@pytest.mark.parametrize(
    "text,expected",
    [
        ("raise both arms", "arms raised"),
        ("Arms up!", "arms raised"),
        ("a woman sitting on a chair", "sitting"),
        ("kneel down", "kneeling"),
        ("kneling", "kneeling"),  # typo
        ("T-pose", "t-pose"),
        ("someone waving hello", "waving"),
        ("hands on his hips", "hands on hips"),
        ("walk forward", "walking"),
        ("jogging", "running"),
        ("standing", "standing"),
    ],
)
def test_fuzzy_text_match(text, expected):
    assert library.find_pose(text) == expected


def test_unmatched_text_lists_the_poses():
    with pytest.raises(library.PoseLibraryError, match="use one of: .*standing"):
        library.find_pose("juggling flaming torches")
    with pytest.raises(library.PoseLibraryError, match="describe the pose"):
        library.find_pose("   ")


def test_get_pose_keeps_proportions_on_any_canvas():
    sq = library.get_pose("standing", 512, 512).people[0].body
    wide = library.get_pose("standing", 1024, 512).people[0].body
    assert library.get_pose("standing", 1024, 512).width == 1024
    # same size (scaled by the short side), centred horizontally on the wider canvas
    np.testing.assert_allclose(wide[:, 1], sq[:, 1], atol=1e-3)
    np.testing.assert_allclose(wide[:, 0] - sq[:, 0], 256, atol=1e-3)
    body = library.library_body("standing")
    np.testing.assert_allclose(sq[:, :2], (body[:, :2] - 0.5) * 512 + 255.5, atol=1e-3)


def test_fit_to_person_matches_torso_scale_and_centre():
    from poselab.models.pose.parts import torso_scale

    ref = library.get_pose("waving", 512, 512).people[0].body * np.array([0.5, 0.5, 1], np.float32)
    ref[:, 0] += 300
    ref[:, 1] += 40
    fitted = library.fit_to_person(library.library_body("kneeling"), ref)
    assert torso_scale(fitted) == pytest.approx(torso_scale(ref), rel=1e-4)
    torso = [J[n] for n in ("neck", "right_shoulder", "left_shoulder", "right_hip", "left_hip")]
    np.testing.assert_allclose(fitted[torso, :2].mean(0), ref[torso, :2].mean(0), atol=1e-3)
    with pytest.raises(ValueError, match="two body joints in common"):
        library.fit_to_person(library.library_body("standing"), np.zeros((18, 3)))


def test_save_never_overwrites_and_round_trips(tmp_path):
    frames = [library.get_pose("t-pose", 640, 480), PoseFrame(640, 480, [])]
    first = library.save_pose_json(frames, tmp_path / "pose.json")
    second = library.save_pose_json(frames, tmp_path / "pose.json")
    third = library.save_pose_json(frames, tmp_path / "pose.json")
    assert (
        first.name == "pose.json"
        and second.name == "pose_0001.json"
        and third.name == "pose_0002.json"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "pose.json",
        "pose_0001.json",
        "pose_0002.json",
    ]  # no temp files
    back = library.load_pose_json(second)
    assert len(back) == 2 and back[1].people == [] and (back[0].width, back[0].height) == (640, 480)
    np.testing.assert_allclose(back[0].people[0].body, frames[0].people[0].body, atol=1e-3)
    # the file is what controlnet_aux readers expect
    raw = json.loads(first.read_text())
    assert raw[0]["canvas_width"] == 640 and len(raw[0]["people"][0]["pose_keypoints_2d"]) == 54
    with pytest.raises(FileNotFoundError, match="not found"):
        library.load_pose_json(tmp_path / "missing.json")
