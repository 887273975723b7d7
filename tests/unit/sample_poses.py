"""A hand-made standing person (OpenPose-18, pixels on a 256x256 canvas) shared by the pose tests."""

from __future__ import annotations

import numpy as np

from poselab.models.pose.keypoints import J

STANDING = {
    "nose": (128, 40),
    "neck": (128, 70),
    "right_shoulder": (100, 72),
    "right_elbow": (88, 110),
    "right_wrist": (84, 148),
    "left_shoulder": (156, 72),
    "left_elbow": (168, 110),
    "left_wrist": (172, 148),
    "right_hip": (110, 150),
    "right_knee": (108, 195),
    "right_ankle": (106, 240),
    "left_hip": (146, 150),
    "left_knee": (148, 195),
    "left_ankle": (150, 240),
    "right_eye": (122, 35),
    "left_eye": (134, 35),
    "right_ear": (114, 38),
    "left_ear": (142, 38),
}


def body_from(points: dict = STANDING, dx: float = 0.0) -> np.ndarray:
    """(18, 3) body with every named joint present (score 1), shifted right by ``dx``."""
    body = np.zeros((18, 3), np.float32)
    for name, (x, y) in points.items():
        body[J[name]] = (x + dx, y, 1.0)
    return body
