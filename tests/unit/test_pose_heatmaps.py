"""Heatmaps: Gaussians of the right width at the joints (NumPy and batched torch agree); the
mask-SSIM pose mask covers limbs with the right width and nothing far away."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sample_poses import STANDING, body_from  # noqa: F401

from poselab.models.pose import heatmaps
from poselab.models.pose.keypoints import J


def test_gaussian_heatmaps_peak_width_and_missing_joints():
    body = body_from(STANDING)
    body[J["left_ankle"]] = 0
    hm = heatmaps.gaussian_heatmaps(body, 256, 200, sigma=6.0)
    assert hm.shape == (18, 256, 200) and hm.dtype == np.float32
    k = J["right_knee"]
    assert hm[k, 195, 108] == pytest.approx(1.0)
    assert np.unravel_index(hm[k].argmax(), hm[k].shape) == (195, 108)
    assert hm[k, 195, 114] == pytest.approx(np.exp(-0.5), rel=1e-5)  # one sigma away
    assert hm[k, 195 + 12, 108] == pytest.approx(np.exp(-2.0), rel=1e-5)  # two sigmas
    assert hm[J["left_ankle"]].max() == 0
    assert hm[J["left_wrist"]].max() == pytest.approx(1.0)  # x=172 is inside a 200-wide map


def test_torch_heatmaps_match_numpy_and_batch():
    a = body_from(STANDING)
    b = a.copy()
    b[:, 0] += 10
    b[J["nose"]] = 0
    bodies = torch.from_numpy(np.stack([a, b]))
    t = heatmaps.gaussian_heatmaps_torch(bodies, 256, 256)
    assert t.shape == (2, 18, 256, 256)
    np.testing.assert_allclose(t[0].numpy(), heatmaps.gaussian_heatmaps(a, 256, 256), atol=1e-6)
    np.testing.assert_allclose(t[1].numpy(), heatmaps.gaussian_heatmaps(b, 256, 256), atol=1e-6)
    assert t[1, J["nose"]].max() == 0


def test_torch_heatmaps_at_another_resolution_scale_coordinates_and_sigma():
    body = body_from(STANDING)
    half = heatmaps.gaussian_heatmaps_torch(
        torch.from_numpy(body), 128, 128, sigma=6.0, image_size=(256, 256)
    )
    k = J["right_knee"]
    # (108, 195) at full size -> (53.75, 97.25) at half size: the peak is the nearest pixel
    y, x = np.unravel_index(half[0, k].argmax().item(), (128, 128))
    assert (y, x) == (97, 54)
    # sigma halves too: 3 px one sigma at the half-resolution map
    ref = heatmaps.gaussian_heatmaps(
        np.c_[body[:, :2] / 2 - 0.25, body[:, 2:]], 128, 128, sigma=3.0
    )
    np.testing.assert_allclose(half[0].numpy(), ref, atol=1e-5)


def test_pose_mask_covers_limbs_with_the_ma_width():
    body = body_from(STANDING)
    raw = heatmaps.limb_mask(body, 256, 256)
    mask = heatmaps.pose_mask(body, 256, 256)
    assert mask.dtype == np.float32 and set(np.unique(mask)) == {0.0, 1.0}
    assert (mask >= raw).all()  # closing only adds
    # every OpenPose bone's midpoint is inside the mask
    for a, b in heatmaps.OPENPOSE18_LIMBS:
        mx, my = (body[a, :2] + body[b, :2]) / 2
        assert mask[int(round(my)), int(round(mx))] == 1, (a, b)
    # across the (nearly vertical) right shin: 2 x 4 px half-width + the line = 9 px
    row = raw[217, 90:125]
    assert 8 <= row.sum() <= 10
    # the hip line and hip-shoulder sides are among the 23 pairs
    assert mask[150, 128] == 1 and mask[111, 105] == 1
    # far from the body (the torso's interior is not part of the limb mask) and background
    assert mask[110, 128] == 0 and mask[5, 5] == 0 and mask[240, 128] == 0


def test_pose_mask_closing_fills_small_gaps():
    body = np.zeros((18, 3), np.float32)
    # two parallel vertical bones 10 px apart: 8-px-wide strips leave a 2-px gap that a 5x5 closing fills
    body[J["right_hip"]] = (50, 20, 1)
    body[J["right_knee"]] = (50, 80, 1)
    body[J["left_hip"]] = (60, 20, 1)
    body[J["left_knee"]] = (60, 80, 1)
    body[J["left_hip"], 1] = 20
    raw = heatmaps.limb_mask(body, 100, 100)
    closed = heatmaps.pose_mask(body, 100, 100)
    assert raw[50, 55] == 0 and closed[50, 55] == 1


def test_missing_joints_and_bad_input():
    assert heatmaps.pose_mask(np.zeros((18, 3)), 32, 32).max() == 0
    with pytest.raises(ValueError, match=r"\(18, 3\)"):
        heatmaps.gaussian_heatmaps(np.zeros((17, 3)), 10, 10)
    with pytest.raises(ValueError, match="positive"):
        heatmaps.pose_mask(np.zeros((18, 3)), 0, 10)
