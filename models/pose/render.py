"""Skeleton images from poses: the OpenPose/ControlNet style, the Stable-Pose (HumanSD) style, overlays.

* :func:`render_openpose` draws exactly what ``controlnet_aux``'s ``draw_bodypose`` /
  ``draw_handpose`` / ``draw_facepose`` draw (same colours, ellipse limbs of stick width 4 at
  60 % colour, joint discs of radius 4, hand edges in HSV rainbow, white face dots), because
  OpenPose ControlNets were trained on that rendering.
* :func:`render_coco17_stablepose` draws the HumanSD/Stable-Pose style (docs/methods.md §C.2):
  black canvas, COCO-17, 16 limbs each in its own colour of seaborn's ``hls`` palette, lines
  10 px wide at 512 px with discs of radius 5 at both ends, scaled with the canvas' short side.
* :func:`overlay_pose` puts a rendered skeleton over a photo.

All functions return ``uint8 (H, W, 3)`` RGB and accept a :class:`PoseFrame`, a list of
:class:`Person`, or a single :class:`Person`.
"""

from __future__ import annotations

import colorsys
import math
from typing import Sequence

import cv2
import numpy as np

from ..common.images import check_draw_size
from .keypoints import OPENPOSE18_LIMBS, Person, PoseFrame, openpose18_to_coco17

# controlnet_aux's colours (RGB), one per limb in OPENPOSE18_LIMBS order and one per joint.
OPENPOSE_COLORS = (
    (255, 0, 0),
    (255, 85, 0),
    (255, 170, 0),
    (255, 255, 0),
    (170, 255, 0),
    (85, 255, 0),
    (0, 255, 0),
    (0, 255, 85),
    (0, 255, 170),
    (0, 255, 255),
    (0, 170, 255),
    (0, 85, 255),
    (0, 0, 255),
    (85, 0, 255),
    (170, 0, 255),
    (255, 0, 255),
    (255, 0, 170),
    (255, 0, 85),
)
OPENPOSE_STICK_WIDTH = 4
HAND_EDGES = (
    (0, 1),
    (1, 2),
    (2, 3),
    (3, 4),
    (0, 5),
    (5, 6),
    (6, 7),
    (7, 8),
    (0, 9),
    (9, 10),
    (10, 11),
    (11, 12),
    (0, 13),
    (13, 14),
    (14, 15),
    (15, 16),
    (0, 17),
    (17, 18),
    (18, 19),
    (19, 20),
)

# HumanSD / Stable-Pose skeleton on COCO-17 indices; the i-th limb gets the i-th palette colour.
STABLEPOSE_LIMBS = (
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (5, 11),
    (6, 12),
    (11, 13),
    (12, 14),
    (13, 15),
    (14, 16),
)
STABLEPOSE_LINE_WIDTH = 10  # at a 512-px short side
STABLEPOSE_MAX_PEOPLE = 10


def hls_palette(
    n: int, h: float = 0.01, lightness: float = 0.6, saturation: float = 0.65
) -> list[tuple[int, int, int]]:
    """seaborn's ``color_palette("hls", n)`` as uint8 RGB, truncated as HumanSD does (``int(255 * c)``)."""
    hues = (np.linspace(0, 1, n + 1)[:-1] + h) % 1
    return [
        tuple(int(255 * c) for c in colorsys.hls_to_rgb(float(hue), lightness, saturation))
        for hue in hues
    ]


STABLEPOSE_COLORS = tuple(hls_palette(len(STABLEPOSE_LIMBS)))


def _people(frame_or_people) -> list[Person]:
    if isinstance(frame_or_people, PoseFrame):
        return list(frame_or_people.people)
    if isinstance(frame_or_people, Person):
        return [frame_or_people]
    people = list(frame_or_people)
    for p in people:
        if not isinstance(p, Person):
            raise TypeError(
                f"expected a PoseFrame, a Person or a list of Person, got a list holding {type(p).__name__}"
            )
    return people


def _canvas_size(
    frame_or_people, width: int | None, height: int | None
) -> tuple[int, int, float, float]:
    """Output size and the factors that scale the pose's pixel coordinates onto it."""
    if isinstance(frame_or_people, PoseFrame):
        fw, fh = frame_or_people.width, frame_or_people.height
        width = int(width or fw)
        height = int(height or fh)
        sx, sy = width / fw, height / fh
    else:
        if not width or not height:
            raise ValueError(
                "give width and height when rendering people without a PoseFrame (whose canvas size is known)"
            )
        width, height, sx, sy = int(width), int(height), 1.0, 1.0
    if width <= 0 or height <= 0:
        raise ValueError(f"canvas size must be positive, got {width}x{height}")
    return width, height, sx, sy


def _scaled(arr: np.ndarray | None, sx: float, sy: float) -> np.ndarray | None:
    if arr is None:
        return None
    out = arr.astype(np.float64).copy()
    out[:, 0] *= sx
    out[:, 1] *= sy
    return out


def _blank(height: int, width: int, canvas: np.ndarray | None) -> np.ndarray:
    if canvas is None:
        return np.zeros((height, width, 3), np.uint8)
    canvas = np.ascontiguousarray(np.asarray(canvas, np.uint8).copy())
    if canvas.shape != (height, width, 3):
        raise ValueError(f"canvas must be uint8 ({height}, {width}, 3), got {canvas.shape}")
    return canvas


def draw_openpose_body(
    canvas: np.ndarray, body: np.ndarray, stick_width: int = OPENPOSE_STICK_WIDTH
) -> None:
    """Body limbs and joints in place, as controlnet_aux's ``draw_bodypose`` (pixel coordinates)."""
    for (a, b), color in zip(OPENPOSE18_LIMBS, OPENPOSE_COLORS):
        if body[a, 2] <= 0 or body[b, 2] <= 0:
            continue
        xs = np.array([body[a, 0], body[b, 0]])
        ys = np.array([body[a, 1], body[b, 1]])
        length = math.hypot(xs[0] - xs[1], ys[0] - ys[1])
        angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
        polygon = cv2.ellipse2Poly(
            (int(np.mean(xs)), int(np.mean(ys))),
            (int(length / 2), stick_width),
            int(angle),
            0,
            360,
            1,
        )
        cv2.fillConvexPoly(canvas, polygon, [int(float(c) * 0.6) for c in color])
    for point, color in zip(body, OPENPOSE_COLORS):
        if point[2] > 0:
            cv2.circle(canvas, (int(point[0]), int(point[1])), 4, color, thickness=-1)


def draw_openpose_hand(canvas: np.ndarray, hand: np.ndarray | None) -> None:
    if hand is None:
        return
    for i, (a, b) in enumerate(HAND_EDGES):
        if hand[a, 2] > 0 and hand[b, 2] > 0:
            color = [c * 255 for c in colorsys.hsv_to_rgb(i / float(len(HAND_EDGES)), 1.0, 1.0)]
            cv2.line(
                canvas,
                (int(hand[a, 0]), int(hand[a, 1])),
                (int(hand[b, 0]), int(hand[b, 1])),
                color,
                thickness=2,
            )
    for point in hand:
        if point[2] > 0:
            cv2.circle(canvas, (int(point[0]), int(point[1])), 4, (0, 0, 255), thickness=-1)


def draw_openpose_face(canvas: np.ndarray, face: np.ndarray | None) -> None:
    if face is None:
        return
    for point in face:
        if point[2] > 0:
            cv2.circle(canvas, (int(point[0]), int(point[1])), 3, (255, 255, 255), thickness=-1)


def render_openpose(
    frame_or_people,
    width: int | None = None,
    height: int | None = None,
    draw_body: bool = True,
    draw_hands: bool = True,
    draw_face: bool = True,
    canvas: np.ndarray | None = None,
) -> np.ndarray:
    """OpenPose/ControlNet skeleton image ``uint8 (height, width, 3)``.

    A PoseFrame renders at its own canvas size unless ``width``/``height`` are given, in which
    case the coordinates are scaled to them. ``canvas`` (same size) is drawn on instead of black.
    """
    people = _people(frame_or_people)
    width, height, sx, sy = _canvas_size(frame_or_people, width, height)
    out = _blank(height, width, canvas)
    for person in people:
        if draw_body:
            draw_openpose_body(out, _scaled(person.body, sx, sy))
        if draw_hands:
            draw_openpose_hand(out, _scaled(person.left_hand, sx, sy))
            draw_openpose_hand(out, _scaled(person.right_hand, sx, sy))
        if draw_face:
            draw_openpose_face(out, _scaled(person.face, sx, sy))
    return out


def stablepose_line_width(width: int, height: int) -> int:
    return max(2, int(round(STABLEPOSE_LINE_WIDTH * min(width, height) / 512.0)))


def render_coco17_stablepose(
    frame_or_people,
    width: int | None = None,
    height: int | None = None,
    min_score: float = 0.0,
    line_width: int | None = None,
    canvas: np.ndarray | None = None,
) -> np.ndarray:
    """Stable-Pose/HumanSD skeleton image ``uint8 (height, width, 3)`` from OpenPose-18 people.

    Joints with score <= ``min_score`` are skipped (Stable-Pose used 0.02 on detector scores);
    at most 10 people are drawn, as in its training data. ``line_width`` defaults to 10 px at a
    512-px short side; discs have radius ``line_width // 2``.
    """
    people = _people(frame_or_people)[:STABLEPOSE_MAX_PEOPLE]
    width, height, sx, sy = _canvas_size(frame_or_people, width, height)
    out = _blank(height, width, canvas)
    lw = int(line_width) if line_width else stablepose_line_width(width, height)
    for person in people:
        kp = openpose18_to_coco17(_scaled(person.body, sx, sy))
        for (a, b), color in zip(STABLEPOSE_LIMBS, STABLEPOSE_COLORS):
            if kp[a, 2] > min_score and kp[b, 2] > min_score:
                pa = (int(kp[a, 0]), int(kp[a, 1]))
                pb = (int(kp[b, 0]), int(kp[b, 1]))
                cv2.line(out, pa, pb, color, lw)
                cv2.circle(out, pa, lw // 2, color, -1)
                cv2.circle(out, pb, lw // 2, color, -1)
    return out


RENDER_STYLES = {"openpose": render_openpose, "stablepose_coco17": render_coco17_stablepose}


def render_frames(
    frames: Sequence[PoseFrame],
    style: str = "openpose",
    width: int | None = None,
    height: int | None = None,
    **kwargs,
) -> list[np.ndarray]:
    """Render every frame of a batch in one style; all outputs share one size (the first frame's
    canvas unless ``width``/``height`` are given) so they can form one IMAGE batch."""
    if style not in RENDER_STYLES:
        raise ValueError(f"unknown render style {style!r}: use one of {sorted(RENDER_STYLES)}")
    frames = list(frames)
    if not frames:
        raise ValueError("no pose frames to render: the POSE_KEYPOINT input is an empty list")
    width = int(width or frames[0].width)
    height = int(height or frames[0].height)
    check_draw_size(len(frames), height, width, "Render Pose", channels=3)
    return [RENDER_STYLES[style](f, width, height, **kwargs) for f in frames]


def overlay_pose(
    image: np.ndarray, skeleton: np.ndarray, opacity: float = 1.0, dim: float = 0.0
) -> np.ndarray:
    """Skeleton (black background) drawn over a photo of the same size.

    Skeleton pixels replace the photo with the given ``opacity``; ``dim`` in [0, 1) darkens the
    photo first so thin limbs stay visible on bright images.
    """
    img = np.asarray(image)
    sk = np.asarray(skeleton)
    if img.shape[:2] != sk.shape[:2]:
        raise ValueError(
            f"overlay: photo {img.shape[:2]} and skeleton {sk.shape[:2]} differ in size; resize the photo or render at its size"
        )
    base = img.astype(np.float32) * (1.0 - float(np.clip(dim, 0.0, 1.0)))
    drawn = (sk.max(axis=2, keepdims=True) > 0).astype(np.float32) * float(
        np.clip(opacity, 0.0, 1.0)
    )
    out = base * (1.0 - drawn) + sk.astype(np.float32) * drawn
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
