"""Classical part-warp repose on a drawn person: identity, translation, a moved limb, robustness."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from poselab.models.pose import parts
from poselab.models.pose.keypoints import OPENPOSE18_LIMBS, J, empty_body
from poselab.models.repose import part_warp

H, W = 320, 256


def _body(cx=128.0, top=40.0, s=70.0) -> np.ndarray:
    b = empty_body()
    pts = {
        "nose": (0, 0),
        "neck": (0, 0.45),
        "right_eye": (-0.07, -0.07),
        "left_eye": (0.07, -0.07),
        "right_ear": (-0.15, -0.03),
        "left_ear": (0.15, -0.03),
        "right_shoulder": (-0.35, 0.45),
        "left_shoulder": (0.35, 0.45),
        "right_elbow": (-0.45, 1.0),
        "left_elbow": (0.45, 1.0),
        "right_wrist": (-0.5, 1.45),
        "left_wrist": (0.5, 1.45),
        "right_hip": (-0.22, 1.45),
        "left_hip": (0.22, 1.45),
        "right_knee": (-0.24, 2.05),
        "left_knee": (0.24, 2.05),
        "right_ankle": (-0.25, 2.65),
        "left_ankle": (0.25, 2.65),
    }
    for name, (dx, dy) in pts.items():
        b[J[name]] = (cx + dx * s, top + dy * s, 1.0)
    return b


def _scene(body: np.ndarray):
    """A textured background and a person drawn from ``body`` (thick coloured bones, striped
    torso, round head); returns (image, person mask)."""
    yy, xx = np.mgrid[0:H, 0:W]
    bg = np.stack([60 + xx * 120 // W, 80 + yy * 100 // H, np.full_like(xx, 140)], -1).astype(
        np.uint8
    )
    person = np.zeros((H, W, 3), np.uint8)
    mask = np.zeros((H, W), np.uint8)
    s = parts.torso_scale(body)
    p = lambda j: tuple(int(round(v)) for v in body[j, :2])  # noqa: E731
    torso = np.round(body[list(parts.TORSO_JOINTS), :2]).astype(np.int32)
    cv2.fillPoly(person, [torso], (230, 230, 230))
    cv2.fillPoly(mask, [torso], 1)
    for k, (a, b) in enumerate(OPENPOSE18_LIMBS[:12]):
        colour = tuple(int(c) for c in np.array([40 + 17 * k, 200 - 13 * k, 30 + 19 * k]) % 256)
        cv2.line(person, p(a), p(b), colour, int(0.25 * s))
        cv2.line(mask, p(a), p(b), 1, int(0.25 * s))
    cv2.circle(person, p(J["nose"]), int(0.25 * s), (200, 150, 120), -1)
    cv2.circle(mask, p(J["nose"]), int(0.25 * s), 1, -1)
    stripes = ((yy // 6) % 2 == 0) & (mask > 0)
    person[stripes] = (person[stripes] * 0.8).astype(np.uint8)  # texture, so a wrong warp shows
    image = np.where(mask[:, :, None] > 0, person, bg)
    return image, mask.astype(np.float32)


def test_identity_pose_reproduces_the_person():
    body = _body()
    image, mask = _scene(body)
    result = part_warp.repose_person(image, body, body, mask, feather=0)
    assert result.image.shape == image.shape and result.image.dtype == np.uint8
    inside = mask > 0
    err = np.abs(result.image.astype(int) - image.astype(int))[inside].mean()
    assert err < 2.0, err
    assert (result.mask[inside] > 0.5).mean() > 0.98
    # and the background was inpainted where the person stood
    assert result.background.shape == image.shape
    assert np.abs(result.background.astype(int) - image.astype(int))[inside].mean() > 20


def test_translated_target_moves_the_person():
    body = _body()
    image, mask = _scene(body)
    shift = np.array([40.0, 12.0], np.float32)
    target = body.copy()
    target[:, :2] += shift
    result = part_warp.repose_person(image, body, target, mask)
    ys, xs = np.nonzero(mask > 0.5)
    ys2, xs2 = np.nonzero(result.mask > 0.5)
    moved = np.array([xs2.mean() - xs.mean(), ys2.mean() - ys.mean()])
    assert np.allclose(moved, shift, atol=2.0), moved
    # the pixels themselves moved: the torso centre's colour is found shifted
    cy, cx = int(body[J["neck"], 1] + 40), int(body[J["neck"], 0])
    assert np.abs(result.image[cy + 12, cx + 40].astype(int) - image[cy, cx].astype(int)).max() <= 3
    # where the person was and is no longer, the person's colours are gone
    left_only = (mask > 0.5) & (result.mask < 0.01)
    assert left_only.sum() > 500
    assert np.abs(result.image[left_only].astype(int) - image[left_only].astype(int)).mean() > 20


def test_raised_forearm_moves_only_that_limb():
    body = _body()
    image, mask = _scene(body)
    target = body.copy()
    # right forearm turned up-and-out about the elbow
    e = target[J["right_elbow"], :2]
    target[J["right_wrist"], :2] = e + np.array([-0.3, -0.35]) * parts.torso_scale(body)
    result = part_warp.repose_person(image, body, target, mask, feather=0)
    old_mid = ((body[J["right_elbow"], :2] + body[J["right_wrist"], :2]) / 2).round().astype(int)
    new_mid = (
        ((target[J["right_elbow"], :2] + target[J["right_wrist"], :2]) / 2).round().astype(int)
    )
    forearm_colour = image[old_mid[1], old_mid[0]].astype(int)
    assert result.mask[new_mid[1], new_mid[0]] > 0.5
    assert np.abs(result.image[new_mid[1], new_mid[0]].astype(int) - forearm_colour).max() <= 40
    # the old place of the lower forearm is background now (near the elbow the upper arm's
    # overlap, which closes the joint, may still cover it)
    old_low = (
        (0.2 * body[J["right_elbow"], :2] + 0.8 * body[J["right_wrist"], :2]).round().astype(int)
    )
    assert result.mask[old_low[1], old_low[0]] < 0.5
    # the other side is untouched
    left = (mask > 0) & (np.arange(W)[None, :] > body[J["neck"], 0] + 5)
    assert np.abs(result.image.astype(int) - image.astype(int))[left].mean() < 3


def test_align_to_source_matches_torso_centre_and_scale():
    src = _body(cx=100, top=50, s=60)
    tgt = _body(cx=500, top=300, s=150)
    tgt[J["right_wrist"], :2] += (30, -80)
    aligned = part_warp.align_to_source(tgt, src)
    assert np.allclose(part_warp.torso_centre(aligned), part_warp.torso_centre(src), atol=1e-3)
    assert parts.torso_scale(aligned) == pytest.approx(parts.torso_scale(src), rel=1e-4)
    # the pose itself is kept: the raised wrist is still raised relative to the elbow
    assert aligned[J["right_wrist"], 1] < aligned[J["right_elbow"], 1] + 0.6 * 60 * 0.45


@pytest.mark.parametrize("case", ["missing_legs", "no_source_arms", "collapsed_target", "far_away"])
def test_odd_poses_give_finite_images(case):
    body = _body()
    image, mask = _scene(body)
    src, tgt = body.copy(), body.copy()
    if case == "missing_legs":
        tgt[[J["right_knee"], J["left_knee"], J["right_ankle"], J["left_ankle"]]] = 0
    elif case == "no_source_arms":
        src[[J["right_elbow"], J["left_elbow"], J["right_wrist"], J["left_wrist"]]] = 0
    elif case == "collapsed_target":
        tgt[tgt[:, 2] > 0, :2] = (100.0, 100.0)
    else:
        tgt[:, :2] += (5000.0, -3000.0)
    result = part_warp.repose_person(image, src, tgt, mask)
    assert result.image.shape == image.shape and result.mask.shape == (H, W)
    assert np.isfinite(result.mask).all() and 0 <= result.mask.min() and result.mask.max() <= 1
    if case == "far_away":  # nothing lands in the frame: the filled background remains
        assert result.mask.max() == 0
        assert np.array_equal(result.image, result.background)
    if case == "missing_legs":  # legs the target does not describe hang on to the hips
        ankle = body[J["left_ankle"], :2].astype(int) - (0, 10)
        assert result.mask[ankle[1], ankle[0]] > 0.5


def test_bad_inputs_are_explained():
    body = _body()
    image, mask = _scene(body)
    with pytest.raises(ValueError, match="give a mask of the image's size"):
        part_warp.repose_person(image, body, body, mask[:-1])
    with pytest.raises(ValueError, match="source pose has no visible keypoints"):
        part_warp.repose_person(image, empty_body(), body, mask)
    with pytest.raises(ValueError, match="align must be one of"):
        part_warp.repose_person(image, body, body, mask, align="centre")
    with pytest.raises(ValueError, match=r"shape \(18, 3\)"):
        part_warp.repose_person(image, body[:17], body, mask)


def test_other_people_stay_where_they_are():
    a, b = _body(cx=70, s=45), _body(cx=190, s=45)
    img_a, mask_a = _scene(a)
    img_b, mask_b = _scene(b)
    image = np.where(mask_b[:, :, None] > 0, img_b, img_a)  # both people in one picture
    target = a.copy()
    target[J["right_wrist"], :2] = target[J["right_elbow"], :2] + (-20, -30)  # person a waves
    result = part_warp.repose_person(image, a, target, mask_a)  # a's mask only
    keep = mask_b > 0
    assert np.abs(result.image.astype(int) - image.astype(int))[keep].max() <= 2
    assert np.abs(result.image.astype(int) - image.astype(int))[mask_a > 0].mean() > 1
