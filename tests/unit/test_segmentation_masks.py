"""Person masks (MediaPipe selfie and pose models, per-person restriction), background fill, compositing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from poselab.models.pose.keypoints import J, empty_body
from poselab.models.segmentation import fill, masks


def _rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _standing_body(cx: float, top: float, s: float) -> np.ndarray:
    """A simple upright OpenPose-18 body: head at ``top``, torso scale ``s``, centred at ``cx``."""
    b = empty_body()
    pts = {
        "nose": (cx, top),
        "neck": (cx, top + 0.4 * s),
        "right_shoulder": (cx - 0.3 * s, top + 0.4 * s),
        "left_shoulder": (cx + 0.3 * s, top + 0.4 * s),
        "right_elbow": (cx - 0.35 * s, top + 0.9 * s),
        "left_elbow": (cx + 0.35 * s, top + 0.9 * s),
        "right_wrist": (cx - 0.4 * s, top + 1.3 * s),
        "left_wrist": (cx + 0.4 * s, top + 1.3 * s),
        "right_hip": (cx - 0.2 * s, top + 1.4 * s),
        "left_hip": (cx + 0.2 * s, top + 1.4 * s),
        "right_knee": (cx - 0.2 * s, top + 1.9 * s),
        "left_knee": (cx + 0.2 * s, top + 1.9 * s),
        "right_ankle": (cx - 0.2 * s, top + 2.4 * s),
        "left_ankle": (cx + 0.2 * s, top + 2.4 * s),
    }
    for name, (x, y) in pts.items():
        b[J[name]] = (x, y, 1.0)
    return b


def test_selfie_mask_covers_the_annotated_man(pose_data, pose_annotations):
    entry = next(e for e in pose_annotations if e["image"] == "051423444.jpg")
    image = _rgb(pose_data / entry["image"])
    m = masks.selfie_mask(image)
    assert m.shape == image.shape[:2] and m.dtype == np.float32
    assert 0.0 <= m.min() and m.max() <= 1.0
    frac = float((m > 0.5).mean())
    assert 0.02 < frac < 0.3, frac  # one standing man in a 1280x720 street scene
    names = entry["joint_names"]
    kp = np.asarray(entry["people"][0]["keypoints"], np.float32)
    torso = [
        names.index(n)
        for n in ("pelvis", "thorax", "right_hip", "left_hip", "right_shoulder", "left_shoulder")
    ]
    inside = [m[int(kp[i, 1]), int(kp[i, 0])] > 0.5 for i in torso if kp[i, 2] > 0]
    assert len(inside) >= 4 and np.mean(inside) >= 0.8, inside
    # far from the man (the truck on the left) is background
    assert m[:, :400].mean() < 0.05


def test_pose_model_mask_follows_the_whole_body(pose_data, pose_annotations):
    """The pose model's mask (the repose default) covers the man's legs and arms, which the
    selfie model partly misses, and stays off the truck's engine next to him."""
    entry = next(e for e in pose_annotations if e["image"] == "004645041.jpg")
    image = _rgb(pose_data / entry["image"])
    names = entry["joint_names"]
    kp = np.asarray(entry["people"][0]["keypoints"], np.float32)
    body = empty_body()
    for mpii, op in (
        ("right_shoulder", "right_shoulder"),
        ("left_shoulder", "left_shoulder"),
        ("right_hip", "right_hip"),
        ("left_hip", "left_hip"),
        ("right_knee", "right_knee"),
        ("left_knee", "left_knee"),
        ("right_elbow", "right_elbow"),
        ("left_elbow", "left_elbow"),
        ("right_wrist", "right_wrist"),
        ("left_wrist", "left_wrist"),
        ("upper_neck", "neck"),
    ):
        x, y, v = kp[names.index(mpii)]
        if v > 0:
            body[J[op]] = (x, y, 1.0)
    pose_mask = masks.person_mask_mediapipe(image, [body], 0, model="pose")
    selfie = masks.person_mask_mediapipe(image, [body], 0, model="selfie")

    def inside(m):
        return np.mean(
            [m[int(y), int(x)] > 0.5 for x, y, v in kp if v > 0 and 0 <= x < 1280 and 0 <= y < 720]
        )

    assert inside(pose_mask) >= 0.85
    # the raised arm's hand rests on the dark engine: the selfie model smears into it
    left_of_man = np.zeros(pose_mask.shape, bool)
    left_of_man[250:600, 350:600] = True
    assert (pose_mask[left_of_man] > 0.5).mean() < 0.05
    assert (pose_mask[left_of_man] > 0.5).mean() < (selfie[left_of_man] > 0.5).mean()


def test_restrict_keeps_the_chosen_person_and_drops_strays():
    H, W = 240, 320
    a = _standing_body(80, 40, 60)
    b = _standing_body(230, 40, 60)
    full = np.zeros((H, W), bool)
    for body in (a, b):
        full |= masks.skeleton_mask(body, H, W, thickness=18)
    full = full.astype(np.float32)
    full[200:230, 290:315] = 1.0  # a stray blob, nobody's
    only_b = masks.restrict_to_person(full, [a, b], 1, add_skeleton=False)
    assert only_b[:, 200:].sum() > 0.9 * full[:200, 200:285].sum()  # b kept
    assert only_b[:, :150].sum() == 0  # a dropped
    assert only_b[200:230, 290:315].sum() == 0  # stray dropped
    only_a = masks.restrict_to_person(full, [a, b], 0, add_skeleton=False)
    assert only_a[:, :150].sum() > 0 and only_a[:, 160:].sum() == 0


def test_restrict_splits_touching_people_and_adds_missed_limbs():
    H, W = 240, 320
    a = _standing_body(130, 40, 60)
    b = _standing_body(190, 40, 60)
    blob = np.zeros((H, W), np.float32)
    blob[30:200, 90:230] = 1.0  # one merged region covering both
    ma = masks.restrict_to_person(blob, [a, b], 0, add_skeleton=False)
    mb = masks.restrict_to_person(blob, [a, b], 1, add_skeleton=False)
    assert ma.sum() > 0 and mb.sum() > 0
    assert (ma * mb).sum() == 0  # no pixel given to both
    assert ma[:, :150].sum() > ma[:, 170:].sum() and mb[:, 170:].sum() > mb[:, :150].sum()
    # the selfie model often misses an outstretched hand: the skeleton brings it back
    hand = _standing_body(130, 40, 60)
    hand[J["right_wrist"]] = (20, 60, 1.0)
    with_skel = masks.restrict_to_person(blob, [hand], 0, add_skeleton=True)
    assert with_skel[60, 22] == 1.0 and blob[60, 22] == 0.0


def test_restrict_errors_are_clear():
    m = np.zeros((50, 60), np.float32)
    with pytest.raises(ValueError, match="person index 3 is out of range: the pose has 1 people"):
        masks.restrict_to_person(m, [_standing_body(30, 5, 15)], 3)
    with pytest.raises(ValueError, match="no visible keypoints"):
        masks.restrict_to_person(m, [empty_body()], 0)


def _scene(h=180, w=260):
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 90)], -1).astype(np.uint8)
    img = bg.copy()
    person = np.zeros((h, w), np.float32)
    person[50:140, 100:150] = 1.0
    img[person > 0] = (250, 20, 20)
    return bg, img, person


@pytest.mark.parametrize("method", ["telea", "ns"])
@pytest.mark.parametrize("max_side", [0, 96])
def test_fill_background_removes_the_person_and_keeps_the_rest(method, max_side):
    bg, img, person = _scene()
    out = fill.fill_background(img, person, method=method, dilation=4, max_side=max_side)
    assert out.shape == img.shape and out.dtype == np.uint8
    region = fill.dilate(person > 0, 4)
    assert np.array_equal(out[~region], img[~region])  # untouched outside the dilated mask
    inside = person > 0
    # red is gone, and the fill is close to the smooth background it replaced
    assert out[inside][:, 0].astype(int).mean() < 200
    err = np.abs(out[inside].astype(int) - bg[inside].astype(int)).mean()
    assert err < 40, err


def test_fill_background_errors():
    _, img, person = _scene()
    with pytest.raises(ValueError, match="resize the mask to the image"):
        fill.fill_background(img, person[:-1], dilation=2)
    with pytest.raises(ValueError, match="covers the whole image"):
        fill.fill_background(img, np.ones(img.shape[:2]), dilation=0)
    with pytest.raises(ValueError, match="unknown fill method 'lama'"):
        fill.fill_background(img, person, method="lama")
    assert np.array_equal(fill.fill_background(img, np.zeros(img.shape[:2])), img)


def test_composite_pastes_and_feathers():
    bg, img, person = _scene()
    hard = fill.composite(img, person, bg, feather=0)
    assert np.array_equal(hard[person > 0], img[person > 0])
    assert np.array_equal(hard[person == 0], bg[person == 0])
    soft = fill.composite(img, person, bg, feather=4)
    # the edge is a blend: at the boundary the red channel is between background and person
    row = soft[95, 80:170, 0].astype(int)
    edge = soft[95, 100, 0]
    assert bg[95, 100, 0] < edge < 250
    assert np.all(np.diff(row[:25]) >= -1)  # rising smoothly into the person
    f = fill.composite(img.astype(np.float32) / 255, person, bg.astype(np.float32) / 255, feather=2)
    assert f.dtype == np.float32 and 0 <= f.min() and f.max() <= 1
    with pytest.raises(ValueError, match="same size"):
        fill.composite(img[:-2], person, bg)
    with pytest.raises(ValueError, match="resize the mask"):
        fill.composite(img, person[:, :-2], bg)
