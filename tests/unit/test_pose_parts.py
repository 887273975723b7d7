"""Part geometry: affines recover known transforms, missing parts are invalid, the warp is exact
for identity poses, masks cover the limbs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sample_poses import STANDING, body_from  # noqa: F401

from poselab.models.pose import parts
from poselab.models.pose.keypoints import J

# A standing person facing the camera on a 256x256 canvas (x, y in pixels).


def apply_affine(body: np.ndarray, affine: np.ndarray) -> np.ndarray:
    out = body.copy()
    present = out[:, 2] > 0
    out[present, :2] = out[present, :2] @ affine[:, :2].T + affine[:, 2]
    return out


def test_torso_scale_matches_definition_and_falls_back():
    body = body_from(STANDING)
    right = np.hypot(110 - 100, 150 - 72)
    left = np.hypot(146 - 156, 150 - 72)
    assert parts.torso_scale(body) == pytest.approx(np.sqrt((right**2 + left**2) / 2), rel=1e-6)
    one_side = body.copy()
    one_side[J["left_hip"]] = 0
    assert parts.torso_scale(one_side) == pytest.approx(right, rel=1e-6)
    no_hips = body.copy()
    no_hips[[J["left_hip"], J["right_hip"]]] = 0
    assert (
        0.5 * right < parts.torso_scale(no_hips) < 2 * right
    )  # shoulder-width fallback, right order of size
    assert parts.torso_scale(np.zeros((18, 3))) == 0.0


def test_part_affines_recover_a_similarity_for_every_part():
    """Source = similarity(target): every part, rectangles included, must give that transform."""
    tgt = body_from(STANDING)
    angle, scale = np.deg2rad(25.0), 1.3
    known = np.array(
        [
            [scale * np.cos(angle), -scale * np.sin(angle), 17.0],
            [scale * np.sin(angle), scale * np.cos(angle), -9.0],
        ]
    )
    src = apply_affine(tgt, known)
    affines, valid = parts.part_affines(src, tgt)
    assert affines.shape == (10, 2, 3) and affines.dtype == np.float32
    assert valid.all()
    for i, name in enumerate(parts.PART_NAMES):
        np.testing.assert_allclose(affines[i], known, atol=2e-3, err_msg=name)


def test_torso_affine_recovers_a_general_affine():
    tgt = body_from(STANDING)
    known = np.array([[1.2, 0.3, -20.0], [-0.1, 0.8, 35.0]])
    affines, valid = parts.part_affines(apply_affine(tgt, known), tgt)
    assert valid[0]
    np.testing.assert_allclose(affines[0], known, atol=1e-3)


def test_part_missing_in_target_is_invalid_and_samples_nowhere():
    src = body_from(STANDING)
    tgt = src.copy()
    tgt[J["left_wrist"]] = 0  # no left forearm in the target
    tgt[[J[n] for n in ("nose", "right_eye", "left_eye", "right_ear", "left_ear")]] = 0  # no head
    affines, valid = parts.part_affines(src, tgt)
    names = dict(zip(parts.PART_NAMES, valid))
    assert not names["left_forearm"] and not names["head"]
    assert sum(valid) == 8
    i = parts.PART_NAMES.index("left_forearm")
    assert affines[i, 0, 2] >= parts.NO_POINT_SHIFT  # far translation: warps to zeros
    masks = parts.part_masks(tgt, 256, 256)
    assert masks[i].sum() == 0 and masks[1].sum() == 0


def test_limb_missing_in_source_borrows_the_mirrored_limb():
    tgt = body_from(STANDING)
    src = tgt.copy()
    src[J["right_wrist"]] = 0  # right forearm missing in the source
    affines, valid = parts.part_affines(src, tgt)
    i = parts.PART_NAMES.index("right_forearm")
    assert valid[i]
    # target right forearm -> source left forearm: maps the right elbow onto the left elbow region
    rel, lel = tgt[J["right_elbow"], :2], src[J["left_elbow"], :2]
    mapped = affines[i, :, :2] @ rel + affines[i, :, 2]
    np.testing.assert_allclose(mapped, lel, atol=1e-2)
    # and with both forearms missing in the source it becomes invalid
    src[J["left_wrist"]] = 0
    _, valid = parts.part_affines(src, tgt)
    assert not valid[i]


def test_degenerate_limb_is_invalid():
    tgt = body_from(STANDING)
    tgt[J["right_elbow"], :2] = tgt[J["right_shoulder"], :2]  # zero-length upper arm
    _, valid = parts.part_affines(body_from(STANDING), tgt)
    assert not valid[parts.PART_NAMES.index("right_upper_arm")]


def test_masks_land_on_the_limbs():
    body = body_from(STANDING)
    masks = parts.part_masks(body, 256, 256)
    assert masks.shape == (10, 256, 256) and masks.dtype == np.float32
    assert set(np.unique(masks)) <= {0.0, 1.0}

    def at(x, y):
        return masks[:, int(round(y)), int(round(x))]

    idx = {n: i for i, n in enumerate(parts.PART_NAMES)}
    # the midpoint of every limb segment is inside that limb's mask and outside the mirrored one
    for name, (a, b, _, mirror) in parts.LIMBS.items():
        mid = (body[a, :2] + body[b, :2]) / 2
        assert at(*mid)[idx[name]] == 1, name
        assert at(*mid)[idx[mirror]] == 0, name
    assert at(128, 110)[idx["torso"]] == 1  # chest centre
    assert at(128, 37)[idx["head"]] == 1
    assert masks[idx["torso"], 5, 5] == 0 and masks[:, 5, 5].sum() == 0  # the corner is background
    # limb widths follow the torso scale: 0.4 st wide across the shin
    st = parts.torso_scale(body)
    row = masks[idx["right_shin"], 217]
    assert abs(row.sum() - 0.4 * st) <= 2.5
    # the torso option: "ones" covers everything, "box" contains the polygon
    ones = parts.part_masks(body, 256, 256, torso="ones")[0]
    box = parts.part_masks(body, 256, 256, torso="box")[0]
    assert ones.min() == 1 and (box >= masks[0]).all() and box.sum() > masks[0].sum()
    with pytest.raises(ValueError, match="torso mask mode"):
        parts.part_masks(body, 256, 256, torso="disc")


def test_warp_parts_identity_pose_pair_returns_input_inside_masks():
    body = body_from(STANDING)
    affines, valid = parts.part_affines(body, body)
    masks = parts.part_masks(body, 256, 256)
    g = torch.Generator().manual_seed(0)
    feats = torch.rand(2, 3, 256, 256, generator=g) + 0.1  # positive: max-agg against 0 is exact
    a = torch.from_numpy(affines)[None].repeat(2, 1, 1, 1)
    m = torch.from_numpy(masks)[None].repeat(2, 1, 1, 1)
    for agg in ("max", "avg"):
        out = parts.warp_parts(feats, a, m, image_size=(256, 256), agg=agg)
        inside = m.amax(dim=1, keepdim=True).expand_as(out) > 0
        assert inside.sum() > 1000
        torch.testing.assert_close(out[inside], feats[inside], atol=1e-4, rtol=0)
        assert out[~inside].abs().max() == 0
    # at half resolution (a U-Net level) the same pixel affines still give the identity
    small = torch.nn.functional.avg_pool2d(feats, 2)
    out = parts.warp_parts(small, a, m, image_size=(256, 256))
    inside = (
        torch.nn.functional.interpolate(m, size=(128, 128), mode="nearest")
        .amax(1, keepdim=True)
        .expand_as(out)
        > 0
    )
    torch.testing.assert_close(out[inside], small[inside], atol=1e-4, rtol=0)


def test_warp_parts_moves_content_with_the_pose_and_is_differentiable():
    """Shift the whole pose by (+20, +10) px: the warped source must equal the shifted source."""
    src = body_from(STANDING)
    tgt = src.copy()
    tgt[:, 0] += 20
    tgt[:, 1] += 10
    affines, valid = parts.part_affines(src, tgt)
    assert valid.all()
    masks = parts.part_masks(tgt, 256, 256)
    feats = torch.rand(1, 2, 256, 256, generator=torch.Generator().manual_seed(1)) + 0.1
    feats.requires_grad_(True)
    out = parts.warp_parts(
        feats, torch.from_numpy(affines)[None], torch.from_numpy(masks)[None], (256, 256)
    )
    inside = torch.from_numpy(masks).amax(0) > 0
    expected = torch.zeros_like(feats)
    expected[:, :, 10:, 20:] = feats[:, :, :-10, :-20]
    torch.testing.assert_close(out[0][:, inside], expected[0][:, inside], atol=1e-4, rtol=0)
    out.sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


def test_pixel_theta_maps_pixel_centres():
    # a pure 1-px shift in a 4-px-wide image is a shift of 2/4 in normalised units
    theta = parts.pixel_affines_to_theta(torch.tensor([[[1.0, 0, 1.0], [0, 1.0, 0]]]), (4, 4))
    torch.testing.assert_close(theta, torch.tensor([[[1.0, 0, 0.5], [0, 1.0, 0]]]))


def test_bad_shapes_give_clear_errors():
    with pytest.raises(ValueError, match=r"\(18, 3\)"):
        parts.part_affines(np.zeros((17, 3)), np.zeros((18, 3)))
    with pytest.raises(ValueError, match="affines must be"):
        parts.warp_parts(
            torch.zeros(1, 1, 8, 8), torch.zeros(2, 10, 2, 3), torch.zeros(1, 10, 8, 8), (8, 8)
        )


# ------------------------------------------------------------------------ real photos (MPII)


def _mpii_body(entry: dict, scale: float) -> np.ndarray:
    """OpenPose-18 from an MPII annotation: the limb joints only (MPII's thorax is not OpenPose's neck)."""
    kp = np.asarray(entry["people"][0]["keypoints"], np.float32)
    body = np.zeros((18, 3), np.float32)
    for i, name in enumerate(entry["joint_names"]):
        if name in J and kp[i, 2] > 0:
            body[J[name]] = (kp[i, 0] * scale, kp[i, 1] * scale, 1.0)
    return body


def test_real_same_person_pairs_limb_affines_and_warp(pose_data, pose_annotations):
    """The same man in three MPII photos: every valid limb affine maps the target's joints exactly
    onto the source's, and warping the source photo part by part brings it closer to the target
    photo inside the target's limb masks than the unwarped source is."""
    import json

    import cv2

    by_name = {e["image"]: e for e in pose_annotations}
    pairs = [
        p for p in json.loads((pose_data / "pairs.json").read_text()) if p["kind"] == "same_person"
    ]
    assert len(pairs) == 3
    scale = 0.25  # 320x180: keeps the test fast, geometry is scale-free
    err_warp, err_still = [], []
    for pair in pairs:
        src_img, tgt_img = (
            cv2.resize(
                cv2.imread(str(pose_data / pair[k]))[:, :, ::-1],
                None,
                fx=scale,
                fy=scale,
                interpolation=cv2.INTER_AREA,
            )
            for k in ("source", "target")
        )
        h, w = tgt_img.shape[:2]
        src, tgt = (
            _mpii_body(by_name[pair["source"]], scale),
            _mpii_body(by_name[pair["target"]], scale),
        )
        affines, valid = parts.part_affines(src, tgt)
        assert (
            valid[0] and valid[2:].sum() >= 5
        )  # torso and most limbs (some ankles are out of frame)
        for i, name in enumerate(parts.PART_NAMES[2:], start=2):
            if not valid[i]:
                continue
            a, b, _, _ = parts.LIMBS[name]
            if src[a, 2] > 0 and src[b, 2] > 0:  # not a mirrored borrow
                for j in (a, b):
                    mapped = affines[i, :, :2] @ tgt[j, :2] + affines[i, :, 2]
                    np.testing.assert_allclose(mapped, src[j, :2], atol=1e-2, err_msg=name)
        masks = parts.part_masks(tgt, h, w, valid=valid)
        feats = torch.from_numpy(src_img.copy()).permute(2, 0, 1)[None].float()
        out = parts.warp_parts(
            feats, torch.from_numpy(affines)[None], torch.from_numpy(masks)[None], (h, w)
        )
        warped = out[0].permute(1, 2, 0).numpy()
        limbs = masks[2:].max(0) > 0
        err_warp.append(np.abs(warped - tgt_img)[limbs].mean())
        err_still.append(np.abs(src_img.astype(np.float32) - tgt_img)[limbs].mean())
    # measured at this scale: 70.5, 43.2, 57.7 vs 67.6, 98.7, 71.0 grey levels (mean 57 vs 79)
    assert np.mean(err_warp) < 0.85 * np.mean(err_still), (err_warp, err_still)


def test_warp_parts_keeps_the_feature_dtype():
    body = body_from(STANDING)
    affines, _ = parts.part_affines(body, body)
    masks = parts.part_masks(body, 256, 256)  # nearest-resized to the 32x32 features
    feats = torch.rand(1, 2, 32, 32, dtype=torch.float64) + 0.1
    out = parts.warp_parts(
        feats, torch.from_numpy(affines)[None], torch.from_numpy(masks)[None], (256, 256)
    )
    assert out.dtype == torch.float64 and out.shape == (1, 2, 32, 32)
    inside = (
        torch.nn.functional.interpolate(torch.from_numpy(masks)[None], size=(32, 32))
        .amax(1, keepdim=True)
        .expand_as(out)
        > 0
    )
    torch.testing.assert_close(out[inside], feats[inside], atol=1e-3, rtol=0)
