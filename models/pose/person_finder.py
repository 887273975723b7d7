"""Skeleton helpers for the multi-person pose paths: sizes, "same person?", rough masks.

Everything works on OpenPose-18 ``(18, 3)`` bodies in pixels. (Finding people by their faces,
MTCNN + MediaPipe's face detector, was dropped with the MediaPipe port: the tiled pose detector
already covers every face the full-range face detector finds on the 18 annotated photos, 0 extra
people; models/pose/detect_mediapipe.py.)
"""

from __future__ import annotations

import numpy as np

from .keypoints import OPENPOSE18_NAMES, J

# Joints used to judge whether two skeletons are the same person: the torso and limbs, which
# every backend places reliably (faces are tiny and eyes/ears flip between detectors).
CORE_JOINTS = np.array([J[n] for n in OPENPOSE18_NAMES if not n.endswith(("_eye", "_ear"))])


def skeleton_size(body: np.ndarray) -> float:
    pts = body[body[:, 2] > 0, :2]
    if len(pts) < 2:
        return 0.0
    return float(np.max(pts.max(axis=0) - pts.min(axis=0)))


def same_person(a: np.ndarray, b: np.ndarray, tol: float = 0.12) -> bool:
    """Whether two OpenPose-18 skeletons are one person: their shared core joints lie, on
    average, within ``tol`` of the smaller skeleton's size of each other."""
    both = (a[CORE_JOINTS, 2] > 0) & (b[CORE_JOINTS, 2] > 0)
    if both.sum() < 3:
        return False
    idx = CORE_JOINTS[both]
    dist = np.linalg.norm(a[idx, :2] - b[idx, :2], axis=1)
    scale = max(min(skeleton_size(a), skeleton_size(b)), 1.0)
    return float(np.median(dist)) < tol * scale


def skeleton_hull_mask(frame) -> np.ndarray:
    """A rough person mask ``(H, W)`` float32 for a backend without segmentation: per person, the
    convex hull of its body joints, grown by a tenth of its size so the outline covers flesh."""
    import cv2

    mask = np.zeros((frame.height, frame.width), np.uint8)
    for person in frame.people:
        pts = person.body[person.body[:, 2] > 0, :2]
        if len(pts) == 0:
            continue
        size = max(skeleton_size(person.body), 8.0)
        hull = cv2.convexHull(np.round(pts).astype(np.int32))
        one = np.zeros_like(mask)
        cv2.fillConvexPoly(one, hull, 1)
        cv2.polylines(one, [hull], True, 1, thickness=max(1, int(size * 0.2)))
        mask |= one
    return mask.astype(np.float32)
