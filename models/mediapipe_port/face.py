"""MediaPipe face detection and face mesh without ``mediapipe``, and the 70-point OpenPose face.

* :func:`detect` - the BlazeFace detectors (``short``: 128 px, ``full``: 192 px full-range) on
  whole images or inside ROIs (letterboxed, weighted NMS), detections in image pixels;
* :func:`rois_from_pose` - Holistic's face ROI from pose landmarks 0-10 (x3, eyes level);
* :func:`detection_rois` - face_detection_front_detections_to_roi (keypoint box, x2, shift -0.1);
* :func:`mesh` - the 468-point face landmark model on any ROIs in one batch;
* :func:`openpose70` - the mesh as OpenPose's 70 face points (iBUG-68 + pupils), indices chosen
  from MediaPipe's own contours (design note section 7).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import geometry as geo
from .pose import crop_many
from .runtime import run_model

f32 = np.float32
DETECTORS = {
    # name: (model, input size, strides, interpolated anchors, default threshold)
    "short": ("face_detection_short_range", 128, (8, 16, 16, 16), True, 0.5),
    "full": ("face_detection_full_range_sparse", 192, (4,), False, 0.6),
}
_ANCHORS = {k: geo.ssd_anchors(v[1], v[2], v[3]) for k, v in DETECTORS.items()}
MESH_MODEL = "face_landmark"
MESH_SIZE = 192

# OpenPose face point -> MediaPipe mesh vertex (0-67: iBUG-68 order).
OPENPOSE70_FROM_MESH = np.array(
    [
        127,
        234,
        93,
        132,
        58,
        136,
        150,
        176,
        152,
        400,
        379,
        365,
        288,
        361,
        323,
        454,
        356,  # jaw, right ear -> left
        70,
        63,
        105,
        66,
        107,  # right brow, outer -> inner
        336,
        296,
        334,
        293,
        300,  # left brow, inner -> outer
        6,
        197,
        5,
        4,  # nose bridge -> tip
        98,
        97,
        2,
        326,
        327,  # nostrils
        33,
        160,
        158,
        133,
        153,
        144,  # right eye: outer, top x2, inner, bottom x2
        362,
        385,
        387,
        263,
        373,
        380,  # left eye: inner, top x2, outer, bottom x2
        61,
        40,
        37,
        0,
        267,
        270,
        291,
        321,
        314,
        17,
        84,
        91,  # outer lips
        78,
        81,
        13,
        311,
        308,
        402,
        14,
        178,  # inner lips
    ]
)
# The eye rings of MediaPipe's FACEMESH_RIGHT_EYE / FACEMESH_LEFT_EYE: their means are the pupils.
RIGHT_EYE_RING = np.array(
    [7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246]
)
LEFT_EYE_RING = np.array(
    [249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466]
)


@dataclass
class FaceMesh:
    """``points`` ``(N, 468, 3)`` in image pixels; ``flag`` ``(N,)`` face presence probability."""

    points: np.ndarray
    flag: np.ndarray
    rois: np.ndarray


def detect(
    images: list,
    rois: np.ndarray | None = None,
    owner: np.ndarray | None = None,
    model: str = "short",
    min_score: float | None = None,
    iou: float = 0.3,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A face detector on ``rois[k]`` of ``images[owner[k]]`` (default: each whole image).
    Returns per ROI ``(boxes (N, 16): xmin, ymin, xmax, ymax + 6 keypoints in image pixels,
    scores)``, best first; keypoints: right eye, left eye, nose tip, mouth, right and left tragion."""
    name, size, _, _, default_score = DETECTORS[model]
    if rois is None:
        rois = np.array(
            [
                [img.shape[1] / 2, img.shape[0] / 2, img.shape[1], img.shape[0], 0.0]
                for img in images
            ],
            f32,
        )
        owner = np.arange(len(images))
    rois = np.asarray(rois, f32).reshape(-1, 5)
    if len(rois) == 0:
        return []
    padded, pads = geo.pad_roi(rois, size, size)
    batch = crop_many(images, padded, owner, (size, size), "zero", (-1.0, 1.0))
    raw_boxes, raw_scores = run_model(name, batch)
    out = []
    for k in range(len(rois)):
        boxes, scores = geo.decode_detections(
            raw_boxes[k],
            raw_scores[k],
            _ANCHORS[model],
            size,
            6,
            default_score if min_score is None else min_score,
        )
        boxes, scores = geo.weighted_nms(boxes, scores, iou)
        out.append((geo.project_detections(boxes, padded[k]), scores))
    return out


def rois_from_pose(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """face_landmarks_from_pose_to_recrop_roi: ROIs ``(N, 5)`` from pose landmarks ``(N, 33, >=2)`` (pixels)."""
    W, H = f32(width), f32(height)
    nx = points[:, :11, 0].astype(f32) / W
    ny = points[:, :11, 1].astype(f32) / H
    tiny = np.finfo(f32).tiny  # LandmarksToDetection starts its maxima at FLT_MIN, not -FLT_MAX
    boxes = np.stack(
        [nx.min(1), ny.min(1), np.maximum(nx.max(1), tiny), np.maximum(ny.max(1), tiny)], -1
    )
    kp = np.stack([nx, ny], -1)
    rois = geo.box_rois(boxes, kp, 5, 2, 0.0, width, height)
    return geo.transform_rois(rois, scale=3.0, square_long=True)


def detection_rois(
    boxes: np.ndarray, width: int, height: int, from_keypoints: bool = True
) -> np.ndarray:
    """Mesh ROIs from face detections in pixels: Holistic's face_detection_front_detections_to_roi
    (box of the keypoints, x2, shift -0.1; ``from_keypoints``) or Face Mesh's
    face_detection_front_detection_to_roi (the detection box, x1.5)."""
    if len(boxes) == 0:
        return np.zeros((0, 5), f32)
    W, H = f32(width), f32(height)
    kp = boxes[:, 4:].reshape(-1, 6, 2).astype(f32) / np.array([W, H], f32)
    if not from_keypoints:
        norm = boxes[:, :4].astype(f32) / np.array([W, H, W, H], f32)
        return geo.transform_rois(
            geo.box_rois(norm, kp, 0, 1, 0.0, width, height), scale=1.5, square_long=True
        )
    tiny = np.finfo(f32).tiny
    kbox = np.stack(
        [
            kp[..., 0].min(1),
            kp[..., 1].min(1),
            np.maximum(kp[..., 0].max(1), tiny),
            np.maximum(kp[..., 1].max(1), tiny),
        ],
        -1,
    )
    rois = geo.box_rois(kbox, kp, 0, 1, 0.0, width, height)
    return geo.transform_rois(rois, scale=2.0, shift_y=-0.1, square_long=True)


def mesh(images: list, rois: np.ndarray, owner: np.ndarray) -> FaceMesh:
    """The face landmark model (468 points) on ``rois[k]`` of ``images[owner[k]]``, in one batch."""
    rois = np.asarray(rois, f32).reshape(-1, 5)
    n = len(rois)
    if n == 0:
        return FaceMesh(np.zeros((0, 468, 3), f32), np.zeros(0, f32), rois)
    batch = crop_many(images, rois, owner, (MESH_SIZE, MESH_SIZE), "replicate", (0.0, 1.0))
    raw, logit = run_model(MESH_MODEL, batch)
    s = f32(MESH_SIZE)
    lm = raw.reshape(n, 468, 3).astype(f32) / s
    return FaceMesh(geo.project_landmarks(lm, rois), geo.sigmoid(logit.reshape(-1)), rois)


def openpose70(mesh_points: np.ndarray) -> np.ndarray:
    """``(..., 468, >=2)`` mesh points -> ``(..., 70, 2)`` OpenPose face points (68 + 2 pupils)."""
    pts = np.asarray(mesh_points)[..., :2]
    out = np.concatenate(
        [
            pts[..., OPENPOSE70_FROM_MESH, :],
            pts[..., RIGHT_EYE_RING, :].mean(-2, keepdims=True),
            pts[..., LEFT_EYE_RING, :].mean(-2, keepdims=True),
        ],
        -2,
    )
    return out.astype(f32)
