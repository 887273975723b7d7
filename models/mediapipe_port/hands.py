"""MediaPipe hands without ``mediapipe``: hands from a pose (Holistic's path) and from the palm detector.

* :func:`rois_from_pose` + :func:`recrop` - MediaPipe Holistic's hand_landmarks_from_pose graph:
  a ROI from the pose's wrist, pinky and index points (scale 2.7), refined by the small
  ``hand_recrop`` model (two alignment points, -90 degrees, shift -0.1);
* :func:`detect_palms` + :func:`palm_rois` - the Hands solution's palm detector (192 px
  letterbox, 7 keypoints, weighted NMS) and its ROI rule (wrist -> middle MCP, x2.6, shift -0.5);
* :func:`landmarks` - the 21-point hand landmark model on any ROIs in one batch.

Points come back in image pixels in MediaPipe's (= OpenPose's) 21-point order. The model's
handedness output assumes a mirrored selfie image, so callers should tell left from right by
the pose wrist a hand belongs to, not by it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import geometry as geo
from .pose import crop_many
from .runtime import run_model

LANDMARK_MODEL = "hand_landmark_full"
LANDMARK_SIZE = 224
RECROP_MODEL = "hand_recrop"
RECROP_SIZE = 256
PALM_MODEL = "palm_detection_full"
PALM_SIZE = 192
_PALM_ANCHORS = geo.ssd_anchors(PALM_SIZE, (8, 16, 16, 16))
POSE_POINTS = {"left": (15, 17, 19), "right": (16, 18, 20)}  # wrist, pinky, index of the pose model
f32 = np.float32


@dataclass
class HandLandmarks:
    """``points`` ``(N, 21, 3)`` x, y, z in image pixels; ``flag`` ``(N,)`` hand presence;
    ``handedness`` ``(N,)`` the model's P("Left") (selfie convention); ``rois`` used."""

    points: np.ndarray
    flag: np.ndarray
    handedness: np.ndarray
    rois: np.ndarray


def rois_from_pose(
    points: np.ndarray, side: str, width: int, height: int, min_wrist_visibility: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Hand ROIs ``(N, 5)`` from pose landmarks ``(N, 33, >=4)`` (pixels, visibility in column 3)
    and which of them pass the wrist-visibility gate ``(N,)``."""
    wrist_i, pinky_i, index_i = POSE_POINTS[side]
    W, H = f32(width), f32(height)
    # through MediaPipe's normalised coordinates, as its graph does
    nx, ny = points[:, :, 0].astype(f32) / W, points[:, :, 1].astype(f32) / H
    xw, yw = nx[:, wrist_i] * W, ny[:, wrist_i] * H
    xi, yi = nx[:, index_i] * W, ny[:, index_i] * H
    xp, yp = nx[:, pinky_i] * W, ny[:, pinky_i] * H
    xm = (f32(2) * xi + xp) / f32(3)
    ym = (f32(2) * yi + yp) / f32(3)
    size = np.sqrt((xm - xw) ** 2 + (ym - yw) ** 2).astype(f32) * f32(2)
    rot = geo.rotation_from(xw, yw, xm, ym, 90.0)
    rois = np.stack([xm, ym, size, size, rot], -1).astype(f32)
    rois = geo.transform_rois(rois, scale=2.7, shift_y=-0.1, square_long=True)
    visible = points[:, wrist_i, 3] > f32(min_wrist_visibility)
    return rois, visible


def recrop(images: list, rois: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """hand_recrop_by_roi: the recrop model's two alignment points -> refined hand ROIs."""
    rois = np.asarray(rois, f32).reshape(-1, 5)
    if len(rois) == 0:
        return rois
    padded, pads = geo.pad_roi(rois, RECROP_SIZE, RECROP_SIZE)
    batch = crop_many(images, padded, owner, (RECROP_SIZE, RECROP_SIZE), "replicate", (0.0, 1.0))
    (raw,) = run_model(RECROP_MODEL, batch)
    pts = raw.reshape(-1, 2, 2).astype(f32) / f32(RECROP_SIZE)
    pts = _remove_letterbox(pts, pads)
    px = geo.project_landmarks(pts, padded)
    out = []
    for k in range(len(rois)):
        h, w = images[int(owner[k])].shape[:2]
        kp = px[k : k + 1] / np.array([w, h], f32)
        r = geo.alignment_rois(kp, 0, 1, -90.0, w, h)
        out.append(geo.transform_rois(r, scale=1.0, shift_y=-0.1, square_long=True)[0])
    return np.stack(out).astype(f32)


def _remove_letterbox(pts: np.ndarray, pads: np.ndarray) -> np.ndarray:
    left, top, right, bottom = (pads[:, i, None] for i in range(4))
    out = pts.copy()
    out[..., 0] = (pts[..., 0] - left) / (f32(1) - left - right)
    out[..., 1] = (pts[..., 1] - top) / (f32(1) - top - bottom)
    return out


def landmarks(images: list, rois: np.ndarray, owner: np.ndarray) -> HandLandmarks:
    """The hand landmark model on ``rois[k]`` of ``images[owner[k]]``, in one batch."""
    rois = np.asarray(rois, f32).reshape(-1, 5)
    n = len(rois)
    if n == 0:
        return HandLandmarks(np.zeros((0, 21, 3), f32), np.zeros(0, f32), np.zeros(0, f32), rois)
    padded, pads = geo.pad_roi(rois, LANDMARK_SIZE, LANDMARK_SIZE)
    batch = crop_many(
        images, padded, owner, (LANDMARK_SIZE, LANDMARK_SIZE), "replicate", (0.0, 1.0)
    )
    raw, flag, handedness, _ = run_model(LANDMARK_MODEL, batch)
    s = f32(LANDMARK_SIZE)
    lm = raw.reshape(n, 21, 3).astype(f32)
    norm = np.stack([lm[..., 0] / s, lm[..., 1] / s, lm[..., 2] / s / f32(0.4)], -1)
    norm[..., :2] = _remove_letterbox(norm[..., :2], pads)
    return HandLandmarks(
        geo.project_landmarks(norm, padded), flag.reshape(-1), handedness.reshape(-1), padded
    )


def detect_palms(
    images: list, min_score: float = 0.5, iou: float = 0.3
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The palm detector on each whole image: ``(boxes (N, 18) normalised to the image, scores)``."""
    rois, pads_all = [], []
    for img in images:
        h, w = img.shape[:2]
        padded, pads = geo.pad_roi(np.array([[w / 2, h / 2, w, h, 0.0]], f32), PALM_SIZE, PALM_SIZE)
        rois.append(padded[0])
        pads_all.append(pads[0])
    batch = crop_many(
        images, np.stack(rois), np.arange(len(images)), (PALM_SIZE, PALM_SIZE), "zero", (0.0, 1.0)
    )
    raw_boxes, raw_scores = run_model(PALM_MODEL, batch)
    out = []
    for k in range(len(images)):
        boxes, scores = geo.decode_detections(
            raw_boxes[k], raw_scores[k], _PALM_ANCHORS, PALM_SIZE, 7, min_score
        )
        boxes, scores = geo.weighted_nms(boxes, scores, iou)
        out.append((geo.remove_letterbox(boxes, tuple(pads_all[k])), scores))
    return out


def palm_rois(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """palm_detection_detection_to_roi: hand ROIs in pixels from palm detections."""
    if len(boxes) == 0:
        return np.zeros((0, 5), f32)
    rois = geo.box_rois(boxes[:, :4], boxes[:, 4:].reshape(-1, 7, 2), 0, 2, 90.0, width, height)
    return geo.transform_rois(rois, scale=2.6, shift_y=-0.5, square_long=True)


def dedupe_rois(rois: np.ndarray, width: int, height: int, iou: float = 0.5) -> np.ndarray:
    """AssociationNormRectCalculator: of ROIs overlapping by more than ``iou`` (axis-aligned boxes
    of the unrotated rects, normalised), the later one wins. Returns the indices kept."""
    kept: list[int] = []
    for k in range(len(rois)):
        box = _norm_box(rois[k], width, height)
        kept = [
            j for j in kept if geo._iou(box, _norm_box(rois[j], width, height)[None])[0] <= f32(iou)
        ]
        kept.append(k)
    return np.asarray(kept, np.int64)


def _norm_box(roi, width, height):
    cx, cy, w, h = roi[0] / width, roi[1] / height, roi[2] / width, roi[3] / height
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], f32)
