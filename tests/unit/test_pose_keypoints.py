"""The POSE_KEYPOINT contract of keypoints.py: round trip, normalised and nested input, missing
points, format conversions, and clear errors for malformed input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from poselab.models.pose import keypoints as kp
from poselab.models.pose.keypoints import J, Person, PoseFormatError, PoseFrame


def body_with_scores() -> np.ndarray:
    rng = np.random.default_rng(0)
    body = np.c_[rng.uniform(10, 500, (18, 2)), rng.uniform(0.3, 0.99, 18)].astype(np.float32)
    body[J["left_ear"]] = 0
    return body


def test_round_trip_keeps_pixels_scores_and_parts():
    hand = np.c_[np.arange(42).reshape(21, 2) + 100.0, np.full(21, 0.8)]
    frame = PoseFrame(
        640, 512, [Person(body=body_with_scores(), right_hand=hand), Person(body=kp.empty_body())]
    )
    wire = kp.to_pose_keypoint([frame])
    person = wire[0]["people"][0]
    # controlnet_aux convention: c in {0, 1}, missing = [0, 0, 0], absent part = None
    assert set(person["pose_keypoints_2d"][2::3]) == {0.0, 1.0}
    assert person["pose_keypoints_2d"][3 * J["left_ear"] : 3 * J["left_ear"] + 3] == [0.0, 0.0, 0.0]
    assert person["hand_left_keypoints_2d"] is None and person["face_keypoints_2d"] is None
    back = kp.parse_pose_keypoint(json.loads(json.dumps(wire)))
    assert (back[0].width, back[0].height) == (640, 512) and len(back[0].people) == 2
    np.testing.assert_allclose(
        back[0].people[0].body, frame.people[0].body, atol=2e-3
    )  # real scores restored
    np.testing.assert_allclose(back[0].people[0].right_hand, frame.people[0].right_hand, atol=2e-3)
    assert back[0].people[0].left_hand is None
    assert not back[0].people[1].visible.any()
    # a JSON string and a single frame dict are accepted too
    assert len(kp.parse_pose_keypoint(kp.pose_keypoint_to_json(wire))) == 1
    assert len(kp.parse_pose_keypoint(wire[0])) == 1


def test_normalised_coordinates_are_scaled_to_the_canvas():
    flat = []
    for i in range(18):
        flat += [0.5, 0.25, 0.9] if i != 3 else [0, 0, 0]
    frames = kp.parse_pose_keypoint(
        [{"people": [{"pose_keypoints_2d": flat}], "canvas_width": 800, "canvas_height": 400}]
    )
    body = frames[0].people[0].body
    np.testing.assert_allclose(body[0], (400, 100, 0.9))
    assert body[3, 2] == 0


def test_nested_lists_and_other_missing_conventions():
    nested = [[100 + i, 200 + i, 1.0] for i in range(18)]
    nested[5] = [-1, -1, 0]  # the "-1" missing convention
    nested[6] = [float("nan"), 3, 1]  # not finite -> missing
    frames = kp.parse_pose_keypoint(
        [{"people": [{"pose_keypoints_2d": nested}], "canvas_width": 512, "canvas_height": 512}]
    )
    body = frames[0].people[0].body
    assert body[0].tolist() == [100, 200, 1]
    assert body[5].tolist() == [0, 0, 0] and body[6].tolist() == [0, 0, 0]
    # a person without a body gets an empty one
    frames = kp.parse_pose_keypoint(
        [{"people": [{"face_keypoints_2d": None}], "canvas_width": 64, "canvas_height": 64}]
    )
    assert frames[0].people[0].body.shape == (18, 3) and not frames[0].people[0].visible.any()


@pytest.mark.parametrize(
    "value,message",
    [
        ('[{"people": [], "canvas_width": 5', "not valid JSON"),
        ("42", "must be a list of frames"),
        ([{"people": [], "canvas_width": 0, "canvas_height": 10}], "must be positive"),
        ([{"people": [], "canvas_width": "wide", "canvas_height": 10}], "must be integers"),
        ([{"people": {}, "canvas_width": 10, "canvas_height": 10}], r"people: expected a list"),
        (
            [
                {
                    "people": [{"pose_keypoints_2d": [1, 2, 3]}],
                    "canvas_width": 10,
                    "canvas_height": 10,
                }
            ],
            r"expected 54 numbers",
        ),
        (
            [
                {
                    "people": [{"pose_keypoints_2d": ["a"] * 54}],
                    "canvas_width": 10,
                    "canvas_height": 10,
                }
            ],
            "not a list of numbers",
        ),
        (["frame"], "frame 0: expected a dict"),
    ],
)
def test_malformed_input_gives_a_clear_error(value, message):
    with pytest.raises(PoseFormatError, match=message):
        kp.parse_pose_keypoint(value)


def test_format_conversions():
    body = body_with_scores()
    coco = kp.openpose18_to_coco17(body)
    assert coco.shape == (17, 3)
    np.testing.assert_array_equal(coco[5], body[J["left_shoulder"]])  # COCO 5 = left shoulder
    back = kp.coco17_to_openpose18(coco)
    np.testing.assert_allclose(
        back[J["neck"], :2], (body[J["right_shoulder"], :2] + body[J["left_shoulder"], :2]) / 2
    )
    mask = np.arange(18) != J["neck"]
    np.testing.assert_array_equal(back[mask], body[mask])
    mp = np.zeros((33, 3), np.float32)
    mp[11] = (300, 100, 0.9)  # MediaPipe left shoulder
    mp[12] = (200, 100, 0.8)
    op = kp.mediapipe33_to_openpose18(mp, min_visibility=0.5)
    assert op[J["left_shoulder"]].tolist() == pytest.approx([300, 100, 0.9])
    assert op[J["neck"]].tolist() == pytest.approx([250, 100, 0.8])
    # the flip table is an involution mapping left to right
    flip = kp.OPENPOSE18_FLIP
    assert all(flip[flip[i]] == i for i in range(18)) and flip[J["left_wrist"]] == J["right_wrist"]
    with pytest.raises(PoseFormatError, match=r"expected 18 keypoints"):
        Person(body=np.zeros((17, 3)))


def test_scaled_bodies_map_a_pose_onto_another_canvas_size():
    body = np.zeros((18, 3), np.float32)
    body[0] = (100, 50, 0.9)
    frame = PoseFrame(200, 100, [Person(body=body)])
    (scaled,) = kp.scaled_bodies(frame, 400, 50)
    assert scaled[0].tolist() == pytest.approx([200, 25, 0.9])
    assert scaled[1].tolist() == [0, 0, 0]
    assert frame.people[0].body[0, 0] == 100  # the frame itself is untouched
