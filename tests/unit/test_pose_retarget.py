"""Retargeting: target directions + source bone lengths, placed on the source; missing joints."""

from __future__ import annotations

import numpy as np
import pytest
from sample_poses import STANDING, body_from  # noqa: F401

from poselab.models.pose import edit, retarget
from poselab.models.pose.keypoints import J, Person, PoseFrame


def standing() -> np.ndarray:
    return body_from(STANDING)


def bones(body):
    return {
        j: np.linalg.norm(body[j, :2] - body[p, :2])
        for j, p in edit.PARENT.items()
        if body[j, 2] > 0 and body[p, 2] > 0
    }


def test_same_proportions_recover_the_posed_source():
    """Target = the source re-posed, then scaled x2 and moved: retargeting undoes scale and move."""
    src = Person(body=standing())
    posed = edit.rotate_limb(edit.rotate_limb(src, "right_upper_arm", -70), "left_shin", 30)
    tgt = edit.translate_person(edit.scale_person(posed, 2.0), 40, -30)
    out = retarget.retarget_body(src.body, tgt.body, anchor="neck")
    np.testing.assert_allclose(out, posed.body, atol=1e-3)
    # anchor="source": the torso centre sits on the source's (equal here, the torso did not move)
    out2 = retarget.retarget_body(src.body, tgt.body)
    np.testing.assert_allclose(out2, posed.body, atol=1e-3)


def test_bone_lengths_from_source_directions_from_target():
    src = standing()
    # a target person with long legs and short arms, in another pose
    tgt = edit.rotate_limb(Person(body=standing()), "left_upper_arm", 100).body
    tgt[[J["right_knee"], J["right_ankle"], J["left_knee"], J["left_ankle"]], 1] += np.array(
        [30, 60, 30, 60]
    )
    tgt[J["right_wrist"], :2] = (
        tgt[J["right_elbow"], :2] + (tgt[J["right_wrist"], :2] - tgt[J["right_elbow"], :2]) * 0.5
    )
    out = retarget.retarget_body(src, tgt)
    for j, length in bones(src).items():
        assert bones(out)[j] == pytest.approx(length, rel=1e-4), j
    for j, p in edit.PARENT.items():
        d_out = out[j, :2] - out[p, :2]
        d_tgt = tgt[j, :2] - tgt[p, :2]
        cos = d_out @ d_tgt / np.linalg.norm(d_out) / np.linalg.norm(d_tgt)
        assert cos == pytest.approx(1.0, abs=1e-5), j
    # placed on the source: torso centres coincide
    idx = list(retarget.TORSO_CENTRE_JOINTS)
    np.testing.assert_allclose(out[idx, :2].mean(0), src[idx, :2].mean(0), atol=1e-3)


def test_missing_joints():
    src = standing()
    src[J["left_wrist"]] = 0  # left forearm length unknown in the source -> the right one's
    tgt = edit.rotate_limb(Person(body=standing()), "left_forearm", 45).body
    tgt[J["right_knee"]] = 0  # the ankle hangs from the hip directly
    out = retarget.retarget_body(src, tgt)
    assert out[J["right_knee"], 2] == 0
    assert out[J["right_ankle"], 2] > 0
    fore = np.linalg.norm(out[J["left_wrist"], :2] - out[J["left_elbow"], :2])
    assert fore == pytest.approx(
        np.linalg.norm(src[J["right_wrist"], :2] - src[J["right_elbow"], :2]), rel=1e-4
    )
    thigh_shin = np.linalg.norm(
        src[J["right_knee"], :2] - src[J["right_hip"], :2]
    ) + np.linalg.norm(src[J["right_ankle"], :2] - src[J["right_knee"], :2])
    assert np.linalg.norm(out[J["right_ankle"], :2] - out[J["right_hip"], :2]) == pytest.approx(
        thigh_shin, rel=1e-4
    )
    # a target joint missing stays missing
    tgt2 = standing()
    tgt2[J["left_ear"]] = 0
    assert retarget.retarget_body(standing(), tgt2)[J["left_ear"], 2] == 0


def test_target_without_neck_or_shoulders_is_scaled_onto_the_source():
    src = standing()
    tgt = standing() * np.array([2, 2, 1], np.float32)
    tgt[[J["neck"], J["right_shoulder"], J["left_shoulder"]]] = 0
    out = retarget.retarget_body(src, tgt)
    present = out[:, 2] > 0
    assert present.sum() == 15
    np.testing.assert_allclose(out[J["right_ankle"], :2], src[J["right_ankle"], :2], atol=1e-3)


def test_frames_hands_and_errors():
    src = PoseFrame(256, 256, [Person(body=standing())])
    hand = np.c_[standing()[J["right_wrist"], :2] * 2 + np.arange(42).reshape(21, 2), np.ones(21)]
    tgt = PoseFrame(
        512, 512, [Person(body=standing() * np.array([2, 2, 1], np.float32), right_hand=hand)]
    )
    out = retarget.retarget_frame(src, tgt)
    assert (out.width, out.height) == (256, 256)
    np.testing.assert_allclose(out.people[0].body, src.people[0].body, atol=1e-3)
    # the hand follows the wrist, scaled by the torso ratio (1/2)
    np.testing.assert_allclose(
        out.people[0].right_hand[0, :2],
        src.people[0].body[J["right_wrist"], :2] + (0, 0.5),
        atol=1e-3,
    )
    np.testing.assert_allclose(
        out.people[0].right_hand[20, :2] - out.people[0].right_hand[0, :2], (20, 20), atol=1e-3
    )
    moved = retarget.retarget_frame(
        src, PoseFrame(512, 512, [edit.translate_person(tgt.people[0], 100, 0)]), anchor="target"
    )
    assert moved.people[0].body[J["neck"], 0] == pytest.approx(128 + 50, abs=1e-3)
    with pytest.raises(ValueError, match="no person in the source"):
        retarget.retarget_frame(PoseFrame(256, 256, []), tgt)
    with pytest.raises(ValueError, match="one per source person"):
        retarget.retarget_frame(src, PoseFrame(256, 256, [Person(body=standing())] * 2))
    with pytest.raises(ValueError, match="anchor"):
        retarget.retarget_body(standing(), standing(), anchor="feet")
