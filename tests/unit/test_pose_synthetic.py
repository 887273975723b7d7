"""Procedurally drawn people in pose pairs: deterministic, exact keypoints, named poses, instructions."""

from __future__ import annotations

import numpy as np
import pytest

from poselab.models.pose import synthetic
from poselab.models.pose.keypoints import J


def test_pairs_are_deterministic_and_seed_dependent():
    a = synthetic.make_pair(11, (128, 64))
    b = synthetic.make_pair(11, (128, 64))
    c = synthetic.make_pair(12, (128, 64))
    assert np.array_equal(a.source, b.source) and np.array_equal(a.target, b.target)
    assert np.array_equal(a.target_body, b.target_body) and a.instruction == b.instruction
    assert not np.array_equal(a.source, c.source)
    assert a.source.shape == (128, 64, 3) and a.source.dtype == np.uint8


@pytest.mark.parametrize("seed", range(6))
def test_keypoints_lie_on_the_drawn_person_and_the_background_is_shared(seed):
    p = synthetic.make_pair(seed, (256, 176))
    for img, body, mask in (
        (p.source, p.source_body, p.source_mask),
        (p.target, p.target_body, p.target_mask),
    ):
        assert (body[:, 2] > 0).all(), "the whole person is on the canvas"
        for name in (
            "nose",
            "neck",
            "right_shoulder",
            "left_elbow",
            "right_wrist",
            "left_hip",
            "right_knee",
            "left_ankle",
            "right_eye",
        ):
            x, y = body[J[name], :2]
            assert mask[int(round(y)), int(round(x))] > 0.5, (
                f"{name} at ({x:.1f}, {y:.1f}) is not on the person"
            )
        # right joints are on the image's left for a person facing the camera
        assert body[J["right_shoulder"], 0] < body[J["left_shoulder"], 0]
        assert body[J["right_eye"], 0] < body[J["left_eye"], 0]
    # same camera and background: pixels outside both people are identical
    outside = (p.source_mask == 0) & (p.target_mask == 0)
    assert outside.mean() > 0.3
    assert np.array_equal(p.source[outside], p.target[outside])
    assert not np.array_equal(p.source, p.target)


def test_named_poses_and_instructions():
    p = synthetic.make_pair(3, (128, 64), source_pose="standing", target_pose="arms_raised")
    assert (p.source_pose, p.target_pose) == ("standing", "arms_raised")
    assert "raise both arms" in p.instruction or "lift both arms" in p.instruction
    # arms raised: both wrists above the head's nose; standing: wrists below the hips
    t, s = p.target_body, p.source_body
    assert t[J["right_wrist"], 1] < t[J["nose"], 1] and t[J["left_wrist"], 1] < t[J["nose"], 1]
    assert s[J["right_wrist"], 1] > s[J["neck"], 1]
    sit = synthetic.make_pair(3, (128, 64), source_pose="standing", target_pose="sitting")
    # sitting foreshortens the thighs: knees much closer to the hips than when standing
    thigh = lambda b: np.linalg.norm(b[J["right_knee"], :2] - b[J["right_hip"], :2])  # noqa: E731
    assert thigh(sit.target_body) < 0.6 * thigh(sit.source_body)
    with pytest.raises(ValueError, match="unknown pose"):
        synthetic.make_pair(0, (64, 64), target_pose="moonwalk")
    with pytest.raises(ValueError, match="at least 16x16"):
        synthetic.make_pair(0, (8, 8))


def test_still_torso_pairs_move_only_limbs_and_head():
    for seed in range(4):
        p = synthetic.make_pair(seed, (128, 64), still_torso=True)
        assert (
            p.source_pose in synthetic.STILL_TORSO_POSES
            and p.target_pose in synthetic.STILL_TORSO_POSES
        )
        torso = [J[n] for n in ("neck", "right_shoulder", "left_shoulder", "right_hip", "left_hip")]
        np.testing.assert_allclose(p.source_body[torso, :2], p.target_body[torso, :2], atol=1e-4)
    assert "sitting" not in synthetic.STILL_TORSO_POSES
    with pytest.raises(ValueError, match="pelvis drop"):
        synthetic.make_pair(0, (64, 64), target_pose="sitting", still_torso=True)
