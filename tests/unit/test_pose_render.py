"""Rendering: pixel-identical to controlnet_aux's OpenPose drawing, Stable-Pose style colours and
widths, batches and overlays."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from sample_poses import STANDING, body_from  # noqa: F401

from poselab.models.pose import render
from poselab.models.pose.keypoints import J, Person, PoseFrame


def test_openpose_rendering_is_pixel_identical_to_controlnet_aux():
    from controlnet_aux.open_pose import PoseResult, draw_poses
    from controlnet_aux.open_pose.body import BodyResult, Keypoint

    rng = np.random.default_rng(0)
    body = body_from(STANDING)
    body[J["left_ear"]] = 0  # a missing joint must be skipped by both
    hand_l = np.c_[rng.integers(20, 230, (21, 2)), np.ones(21)].astype(np.float32)
    hand_r = np.c_[rng.integers(20, 230, (21, 2)), np.ones(21)].astype(np.float32)
    face = np.c_[rng.integers(100, 160, (70, 2)), np.ones(70)].astype(np.float32)
    person = Person(body=body, left_hand=hand_l, right_hand=hand_r, face=face)
    w = h = 256  # power of two: x / w * w is exact, so both sides round identically

    def kps(arr):
        return [Keypoint(float(x) / w, float(y) / h) if c > 0 else None for x, y, c in arr]

    theirs = draw_poses(
        [PoseResult(BodyResult(kps(body), 1.0, 17), kps(hand_l), kps(hand_r), kps(face))], h, w
    )
    ours = render.render_openpose(PoseFrame(w, h, [person]))
    assert ours.shape == (h, w, 3) and ours.dtype == np.uint8
    assert (ours > 0).any(axis=2).sum() > 3000
    np.testing.assert_array_equal(ours, theirs)


def test_openpose_colours_land_on_the_right_limbs():
    img = render.render_openpose(PoseFrame(256, 256, [Person(body=body_from(STANDING))]))
    # the right upper arm (limb 2 in OpenPose order, orange) at 60 % brightness, mid-segment
    x, y = (100 + 88) // 2, (72 + 110) // 2
    np.testing.assert_array_equal(img[y, x], [int(255 * 0.6), int(170 * 0.6), 0])
    # a joint disc in the joint's own colour: the left knee is joint 12 -> (0, 0, 255)
    np.testing.assert_array_equal(img[195, 148], [0, 0, 255])
    assert img[5, 5].sum() == 0


def test_render_scales_to_a_requested_size_and_keeps_a_canvas():
    frame = PoseFrame(256, 256, [Person(body=body_from(STANDING))])
    big = render.render_openpose(frame, 512, 512)
    assert big.shape == (512, 512, 3)
    np.testing.assert_array_equal(big[390, 296], [0, 0, 255])  # left knee moved to (296, 390)
    base = np.full((256, 256, 3), 77, np.uint8)
    drawn = render.render_openpose(frame, canvas=base)
    assert drawn[5, 5].tolist() == [77, 77, 77] and base[195, 148].tolist() == [77, 77, 77]
    with pytest.raises(ValueError, match="width and height"):
        render.render_openpose([Person(body=body_from(STANDING))])


def test_hls_palette_matches_seaborn_definition():
    # seaborn.hls_palette(16): hues linspace(0, 1, 17)[:-1] + 0.01, l = 0.6, s = 0.65
    assert len(render.STABLEPOSE_COLORS) == 16 == len(set(render.STABLEPOSE_COLORS))
    r, g, b = colorsys.hls_to_rgb(0.01, 0.6, 0.65)
    assert render.STABLEPOSE_COLORS[0] == (int(255 * r), int(255 * g), int(255 * b))
    assert render.STABLEPOSE_COLORS[0][0] > 200 and render.STABLEPOSE_COLORS[0][2] < 100  # reddish


def test_stablepose_style_colours_widths_and_scaling():
    frame = PoseFrame(256, 256, [Person(body=body_from(STANDING))])
    img = render.render_coco17_stablepose(frame, 512, 512)
    assert img.shape == (512, 512, 3)
    # 16 limbs -> 16 distinct colours, nothing else but black
    colours = {tuple(c) for c in img.reshape(-1, 3)} - {(0, 0, 0)}
    assert colours == set(render.STABLEPOSE_COLORS)
    # COCO limb 12 is right_hip -> right_knee (COCO 12 -> 14): width ~10 px across at 512 px
    colour = np.array(render.STABLEPOSE_COLORS[13])
    y = 150 + 195  # mid-thigh at 2x scale
    row = (img[y] == colour).all(axis=1)
    assert 9 <= row.sum() <= 12
    # at 1024 px the lines double
    img2 = render.render_coco17_stablepose(frame, 1024, 1024)
    row2 = (img2[2 * y] == colour).all(axis=1)
    assert 19 <= row2.sum() <= 23
    # no neck in COCO: nothing drawn between neck and nose above the shoulders' line
    assert render.stablepose_line_width(512, 768) == 10


def test_stablepose_respects_min_score_and_people_limit():
    low = body_from(STANDING)
    low[:, 2] = 0.01
    frame = PoseFrame(256, 256, [Person(body=low)])
    assert render.render_coco17_stablepose(frame, min_score=0.02).max() == 0
    many = PoseFrame(2560, 256, [Person(body=body_from(STANDING, dx=240 * i)) for i in range(11)])
    img = render.render_coco17_stablepose(many)
    assert img[:, 240 * 10 :].max() == 0 and img[:, 240 * 9 + 100 : 240 * 9 + 160].max() > 0


def test_render_frames_renders_every_frame_at_one_size():
    frames = [
        PoseFrame(256, 256, [Person(body=body_from(STANDING))]),
        PoseFrame(512, 512, [Person(body=body_from(STANDING) * np.array([2, 2, 1], np.float32))]),
        PoseFrame(256, 256, []),
    ]
    out = render.render_frames(frames, "openpose")
    assert [o.shape for o in out] == [(256, 256, 3)] * 3
    np.testing.assert_array_equal(out[0], out[1])  # the 512 frame scaled back onto 256
    assert out[2].max() == 0
    with pytest.raises(ValueError, match="unknown render style"):
        render.render_frames(frames, "dwpose")


def test_overlay_replaces_photo_only_under_the_skeleton():
    photo = np.full((256, 256, 3), 200, np.uint8)
    sk = render.render_openpose(PoseFrame(256, 256, [Person(body=body_from(STANDING))]))
    out = render.overlay_pose(photo, sk)
    drawn = sk.max(axis=2) > 0
    np.testing.assert_array_equal(out[drawn], sk[drawn])
    assert (out[~drawn] == 200).all()
    half = render.overlay_pose(photo, sk, opacity=0.5, dim=0.5)
    assert (half[~drawn] == 100).all()
    with pytest.raises(ValueError, match="differ in size"):
        render.overlay_pose(photo[:100], sk)
