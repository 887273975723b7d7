"""Geometric pose edits on :class:`PoseFrame` / :class:`Person`: scale, translate, mirror, rotate a
limb about its joint, select people. Every edit moves the body, hands and face together;
missing points (score 0) stay missing. Functions return new objects and never modify inputs.

Coordinates are pixels with y pointing down; angles are degrees, positive = counter-clockwise
as seen on the image (like PIL's ``rotate``).
"""

from __future__ import annotations

import logging
import math
from typing import Iterable

import numpy as np

from .keypoints import OPENPOSE18_FLIP, J, Person, PoseFrame

log = logging.getLogger("poselab")

PARTS = ("body", "left_hand", "right_hand", "face")

# dlib-68 + 2 pupils (OpenPose face) mirror permutation: jaw reversed, brows/eyes/mouth swapped
# left<->right, the nose and mouth centre lines kept.
FACE70_FLIP = tuple(
    list(range(16, -1, -1))  # jaw 0..16
    + list(range(26, 16, -1))  # brows 17..26
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46]  # right eye 36..41 <- left eye
    + [39, 38, 37, 36, 41, 40]  # left eye 42..47 <- right eye
    + [54, 53, 52, 51, 50, 49, 48]  # outer lip top 48..54
    + [59, 58, 57, 56, 55]  # outer lip bottom 55..59
    + [64, 63, 62, 61, 60]  # inner lip top 60..64
    + [67, 66, 65]  # inner lip bottom 65..67
    + [69, 68]  # pupils
)

# Kinematic tree of OpenPose-18 (parent of each joint; the neck is the root). The hips hang
# from the neck because OpenPose has no pelvis joint.
PARENT = {
    J["nose"]: J["neck"],
    J["right_shoulder"]: J["neck"],
    J["right_elbow"]: J["right_shoulder"],
    J["right_wrist"]: J["right_elbow"],
    J["left_shoulder"]: J["neck"],
    J["left_elbow"]: J["left_shoulder"],
    J["left_wrist"]: J["left_elbow"],
    J["right_hip"]: J["neck"],
    J["right_knee"]: J["right_hip"],
    J["right_ankle"]: J["right_knee"],
    J["left_hip"]: J["neck"],
    J["left_knee"]: J["left_hip"],
    J["left_ankle"]: J["left_knee"],
    J["right_eye"]: J["nose"],
    J["left_eye"]: J["nose"],
    J["right_ear"]: J["right_eye"],
    J["left_ear"]: J["left_eye"],
}

# limb name -> (pivot joint, first moved joint). The moved joint's whole subtree follows.
ROTATABLE = {
    "head": (J["neck"], J["nose"]),
    "right_upper_arm": (J["right_shoulder"], J["right_elbow"]),
    "right_forearm": (J["right_elbow"], J["right_wrist"]),
    "left_upper_arm": (J["left_shoulder"], J["left_elbow"]),
    "left_forearm": (J["left_elbow"], J["left_wrist"]),
    "right_thigh": (J["right_hip"], J["right_knee"]),
    "right_shin": (J["right_knee"], J["right_ankle"]),
    "left_thigh": (J["left_hip"], J["left_knee"]),
    "left_shin": (J["left_knee"], J["left_ankle"]),
    "right_hand": (J["right_wrist"], None),
    "left_hand": (J["left_wrist"], None),
}
# Points that are not body joints but ride along with one: the hand with its wrist, the face with the nose.
ATTACHED = {J["right_wrist"]: "right_hand", J["left_wrist"]: "left_hand", J["nose"]: "face"}


def descendants(joint: int) -> list[int]:
    """The joint and every joint below it in :data:`PARENT`'s tree."""
    out = [joint]
    for child, parent in PARENT.items():
        if parent == joint:
            out.extend(descendants(child))
    return out


def _apply(person: Person, fn) -> Person:
    """New person with ``fn(xy (N, 2)) -> xy`` applied to the present points of every part."""
    p = person.copy()
    for part in PARTS:
        arr = getattr(p, part)
        if arr is None:
            continue
        present = arr[:, 2] > 0
        if present.any():
            arr[present, :2] = fn(arr[present, :2].astype(np.float64)).astype(np.float32)
    return p


def person_center(person: Person) -> tuple[float, float] | None:
    box = person.bbox()
    if box is None:
        return None
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


def _resolve_center(person: Person, frame: PoseFrame | None, center) -> tuple[float, float] | None:
    if center is None or center == "person":
        return person_center(person)
    if center == "canvas":
        if frame is None:
            raise ValueError("center='canvas' needs the PoseFrame")
        return (frame.width - 1) / 2.0, (frame.height - 1) / 2.0
    if isinstance(center, str):
        raise ValueError(f"center must be 'person', 'canvas' or an (x, y) pair, got {center!r}")
    cx, cy = center
    return float(cx), float(cy)


def scale_person(person: Person, sx: float, sy: float | None = None, center=(0.0, 0.0)) -> Person:
    """Scale about ``center`` (x, y); ``sy`` defaults to ``sx``."""
    sy = sx if sy is None else sy
    if sx <= 0 or sy <= 0:
        raise ValueError(f"scale factors must be positive, got {sx}, {sy} (use mirror to flip)")
    c = np.asarray(center, np.float64)
    return _apply(person, lambda xy: (xy - c) * (sx, sy) + c)


def translate_person(person: Person, dx: float, dy: float) -> Person:
    return _apply(person, lambda xy: xy + (dx, dy))


def mirror_person(person: Person, axis_x: float) -> Person:
    """Horizontal mirror about the vertical line ``x = axis_x``, swapping left and right so the
    result is a plausible person (a mirrored right arm becomes the left arm)."""
    p = _apply(person, lambda xy: np.c_[2 * axis_x - xy[:, 0], xy[:, 1]])
    p.body = p.body[list(OPENPOSE18_FLIP)].copy()
    p.left_hand, p.right_hand = p.right_hand, p.left_hand
    if p.face is not None:
        p.face = p.face[list(FACE70_FLIP)].copy()
    return p


def _rotate(xy: np.ndarray, pivot: np.ndarray, angle_deg: float) -> np.ndarray:
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    d = xy - pivot
    # counter-clockwise on screen, y down: (dx, dy) -> (c dx + s dy, -s dx + c dy)
    return np.c_[c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]] + pivot


def rotate_limb(person: Person, limb: str, angle_deg: float) -> Person:
    """Rotate ``limb`` (a :data:`ROTATABLE` name) about its pivot joint; everything below it
    follows (rotating the right upper arm about the shoulder moves the elbow, wrist and right
    hand). A missing pivot leaves the person unchanged (logged)."""
    if limb not in ROTATABLE:
        raise ValueError(f"unknown limb {limb!r}: use one of {', '.join(ROTATABLE)}")
    pivot_idx, first = ROTATABLE[limb]
    p = person.copy()
    if p.body[pivot_idx, 2] <= 0:
        log.warning("PoseLab: cannot rotate %s: its pivot joint is missing in this pose", limb)
        return p
    pivot = p.body[pivot_idx, :2].astype(np.float64)
    joints = descendants(first) if first is not None else []
    extra = [ATTACHED[j] for j in joints if j in ATTACHED]
    if first is None:
        extra = [limb]  # a hand alone
    idx = [j for j in joints if p.body[j, 2] > 0]
    if idx:
        p.body[idx, :2] = _rotate(p.body[idx, :2].astype(np.float64), pivot, angle_deg)
    for part in extra:
        arr = getattr(p, part)
        if arr is not None:
            present = arr[:, 2] > 0
            arr[present, :2] = _rotate(arr[present, :2].astype(np.float64), pivot, angle_deg)
    return p


# ----------------------------------------------------------------------------- frame level


def parse_person_selection(selection, count: int, strict: bool = True) -> list[int]:
    """Person indices from ``-1``/``"all"`` (everyone), an int, a list, or text like ``"0, 2"``;
    negative numbers count from the end except -1 alone, which means all. Out-of-range indices
    raise, or with ``strict=False`` are skipped (a video frame may miss a person)."""
    if (
        selection is None
        or selection == -1
        or (isinstance(selection, str) and selection.strip().lower() in ("", "all", "-1"))
    ):
        return list(range(count))
    if isinstance(selection, str):
        try:
            items = [int(s) for s in selection.replace(";", ",").split(",") if s.strip()]
        except ValueError:
            raise ValueError(
                f"person selection {selection!r}: use 'all' or comma-separated indices like '0, 2'"
            ) from None
    elif isinstance(selection, (int, np.integer)):
        items = [int(selection)]
    else:
        items = [int(s) for s in selection]
    out = []
    for i in items:
        j = i + count if i < 0 else i
        if not 0 <= j < count:
            if not strict:
                continue
            raise ValueError(
                f"person index {i} is out of range: this pose has {count} people (indices 0..{count - 1})"
            )
        if j not in out:
            out.append(j)
    return out


def select_people(frame: PoseFrame, selection, strict: bool = True) -> PoseFrame:
    """A frame holding only the selected people, in selection order."""
    idx = parse_person_selection(selection, len(frame.people), strict)
    return PoseFrame(frame.width, frame.height, [frame.people[i].copy() for i in idx])


def edit_frame(
    frame: PoseFrame,
    person=-1,
    scale: float = 1.0,
    scale_y: float | None = None,
    center="person",
    dx: float = 0.0,
    dy: float = 0.0,
    mirror: bool = False,
    mirror_axis: str = "person",
    limb: str | None = None,
    angle: float = 0.0,
    strict: bool = True,
) -> PoseFrame:
    """Apply, in order, limb rotation, mirror, scale and translation to the selected people
    (others are kept unchanged). ``center`` / ``mirror_axis``: ``"person"`` (its bounding-box
    centre) or ``"canvas"``; ``center`` may also be an ``(x, y)`` pair."""
    if mirror_axis not in ("person", "canvas"):
        raise ValueError(f"mirror_axis must be 'person' or 'canvas', got {mirror_axis!r}")
    chosen = set(parse_person_selection(person, len(frame.people), strict))
    out = frame.copy()
    for i, p in enumerate(out.people):
        if i not in chosen:
            continue
        if limb and limb != "none" and angle:
            p = rotate_limb(p, limb, angle)
        if mirror:
            c = _resolve_center(p, frame, mirror_axis)
            if c is not None:
                p = mirror_person(p, c[0])
        sy = scale if scale_y is None else scale_y
        if scale != 1.0 or sy != 1.0:
            c = _resolve_center(p, frame, center)
            if c is not None:
                p = scale_person(p, scale, sy, c)
        if dx or dy:
            p = translate_person(p, dx, dy)
        out.people[i] = p
    return out


def edit_frames(frames: Iterable[PoseFrame], **kwargs) -> list[PoseFrame]:
    """:func:`edit_frame` on every frame of a batch."""
    return [edit_frame(f, **kwargs) for f in frames]
