"""Pose edits: limb rotation moves the child chain (hands included) and keeps bone lengths,
mirror swaps sides, scale/translate move hands and face too, person selection."""

from __future__ import annotations

import numpy as np
import pytest
from sample_poses import STANDING, body_from  # noqa: F401

from poselab.models.pose import edit
from poselab.models.pose.keypoints import J, Person, PoseFrame


def person() -> Person:
    body = body_from(STANDING)
    rng = np.random.default_rng(0)
    right_hand = np.c_[body[J["right_wrist"], :2] + rng.normal(0, 6, (21, 2)), np.ones(21)]
    left_hand = np.c_[body[J["left_wrist"], :2] + rng.normal(0, 6, (21, 2)), np.ones(21)]
    face = np.c_[body[J["nose"], :2] + rng.normal(0, 5, (70, 2)), np.ones(70)]
    face[5] = 0  # a missing face point
    return Person(body=body, left_hand=left_hand, right_hand=right_hand, face=face)


def test_rotating_the_upper_arm_moves_elbow_wrist_and_hand_only():
    p = person()
    r = edit.rotate_limb(p, "right_upper_arm", 90.0)
    sho = p.body[J["right_shoulder"], :2]
    # the elbow sits at (-12, +38) from the shoulder (y down); 90 degrees counter-clockwise on
    # screen turns "down" into "right": (-12, 38) -> (38, 12)
    np.testing.assert_allclose(r.body[J["right_elbow"], :2], sho + (38, 12), atol=1e-4)
    # bone lengths are kept along the chain
    for a, b in (("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist")):
        before = np.linalg.norm(p.body[J[a], :2] - p.body[J[b], :2])
        after = np.linalg.norm(r.body[J[a], :2] - r.body[J[b], :2])
        assert after == pytest.approx(before, rel=1e-5)
    # the right hand moved rigidly with the wrist
    off_before = p.right_hand[:, :2] - p.body[J["right_wrist"], :2]
    off_after = r.right_hand[:, :2] - r.body[J["right_wrist"], :2]
    np.testing.assert_allclose(
        np.linalg.norm(off_after, axis=1), np.linalg.norm(off_before, axis=1), atol=1e-3
    )
    assert not np.allclose(r.right_hand[:, :2], p.right_hand[:, :2])
    # nothing else moved, and the input is untouched
    others = [i for i in range(18) if i not in (J["right_elbow"], J["right_wrist"])]
    np.testing.assert_array_equal(r.body[others], p.body[others])
    np.testing.assert_array_equal(r.left_hand, p.left_hand)
    np.testing.assert_array_equal(r.face, p.face)
    assert p.body[J["right_elbow"], 0] == 88


def test_rotating_the_forearm_keeps_the_elbow_and_head_rotation_moves_the_face():
    p = person()
    r = edit.rotate_limb(p, "right_forearm", -30.0)
    np.testing.assert_array_equal(r.body[J["right_elbow"]], p.body[J["right_elbow"]])
    assert not np.allclose(r.body[J["right_wrist"]], p.body[J["right_wrist"]])
    h = edit.rotate_limb(p, "head", 20.0)
    for name in ("nose", "right_eye", "left_eye", "right_ear", "left_ear"):
        assert not np.allclose(h.body[J[name], :2], p.body[J[name], :2]), name
    present = p.face[:, 2] > 0
    assert not np.allclose(h.face[present, :2], p.face[present, :2])
    assert h.face[5, 2] == 0 and h.face[5, 0] == 0  # missing stays missing
    np.testing.assert_array_equal(h.body[J["neck"]], p.body[J["neck"]])


def test_rotation_with_a_missing_pivot_is_a_no_op_and_unknown_limb_errors():
    p = person()
    p.body[J["left_hip"]] = 0
    r = edit.rotate_limb(p, "left_thigh", 45)
    np.testing.assert_array_equal(r.body, p.body)
    with pytest.raises(ValueError, match="unknown limb"):
        edit.rotate_limb(p, "tail", 10)


def test_mirror_swaps_left_and_right_and_is_an_involution():
    p = person()
    m = edit.mirror_person(p, axis_x=128.0)
    # the right shoulder of the mirror is where the left shoulder's mirror image is
    ls = p.body[J["left_shoulder"], :2]
    np.testing.assert_allclose(m.body[J["right_shoulder"], :2], (256 - ls[0], ls[1]))
    np.testing.assert_allclose(m.right_hand[:, 0], 256 - p.left_hand[:, 0], atol=1e-4)
    assert m.face[edit.FACE70_FLIP[5], 2] == 0  # the missing face point moved with its partner
    back = edit.mirror_person(m, axis_x=128.0)
    np.testing.assert_allclose(back.body, p.body, atol=1e-4)
    np.testing.assert_allclose(back.face, p.face, atol=1e-4)


def test_scale_and_translate_move_every_part():
    p = person()
    s = edit.scale_person(p, 2.0, center=(128, 70))
    np.testing.assert_allclose(
        s.body[J["right_ankle"], :2], (128 + 2 * (106 - 128), 70 + 2 * (240 - 70))
    )
    np.testing.assert_allclose(
        s.left_hand[:, :2], (p.left_hand[:, :2] - (128, 70)) * 2 + (128, 70), atol=1e-3
    )
    t = edit.translate_person(p, 10, -5)
    np.testing.assert_allclose(
        t.face[t.face[:, 2] > 0, :2], p.face[p.face[:, 2] > 0, :2] + (10, -5), atol=1e-4
    )
    with pytest.raises(ValueError, match="positive"):
        edit.scale_person(p, -1)


def test_edit_frame_applies_to_selected_people_only():
    a, b = person(), edit.translate_person(person(), 300, 0)
    frame = PoseFrame(600, 300, [a, b])
    out = edit.edit_frame(frame, person=1, scale=0.5, dx=7)
    np.testing.assert_array_equal(out.people[0].body, a.body)
    cx = (b.bbox()[0] + b.bbox()[2]) / 2
    new_box = out.people[1].bbox()
    assert (new_box[0] + new_box[2]) / 2 == pytest.approx(
        cx + 7, abs=1e-3
    )  # scaled about its centre
    assert new_box[3] - new_box[1] == pytest.approx((b.bbox()[3] - b.bbox()[1]) / 2, abs=1e-3)
    mirrored = edit.edit_frame(frame, mirror=True, mirror_axis="canvas")
    np.testing.assert_allclose(
        mirrored.people[0].body[J["left_wrist"], 0], 599 - a.body[J["right_wrist"], 0]
    )


def test_person_selection_parsing_and_select_people():
    assert edit.parse_person_selection("all", 3) == [0, 1, 2]
    assert edit.parse_person_selection(-1, 3) == [0, 1, 2]
    assert edit.parse_person_selection("2, 0", 3) == [2, 0]
    assert edit.parse_person_selection([-2], 3) == [1]
    with pytest.raises(ValueError, match="out of range"):
        edit.parse_person_selection(5, 3)
    with pytest.raises(ValueError, match="comma-separated"):
        edit.parse_person_selection("first", 3)
    frame = PoseFrame(600, 300, [person(), edit.translate_person(person(), 300, 0)])
    sel = edit.select_people(frame, "1")
    assert len(sel.people) == 1 and sel.people[0].body[J["neck"], 0] == 428


def test_non_strict_selection_skips_people_a_frame_lacks():
    frame = PoseFrame(600, 300, [person()])
    out = edit.edit_frame(frame, person="0, 1", dx=5, strict=False)
    assert out.people[0].body[J["neck"], 0] == 133
    assert edit.select_people(frame, "1", strict=False).people == []
    with pytest.raises(ValueError, match="out of range"):
        edit.edit_frame(frame, person="1", dx=5)
