"""MediaPipe selfie segmentation without ``mediapipe`` (selfie_segmentation_cpu, general model).

The whole image is stretched to 256 x 256 (no letterbox), the model's person probability is
resized back with ``cv2.resize`` (bilinear, half-pixel centres: TensorsToSegmentation's OpenCV
path). The pose model's own mask is in :mod:`.pose` (:func:`~.pose.mask_in_image`).
"""

from __future__ import annotations

import cv2
import numpy as np

from .geometry import Image
from .pose import crop_many
from .runtime import run_model

MODEL = "selfie_segmentation"
SIZE = 256


def selfie(images: list[Image]) -> list[np.ndarray]:
    """Person probability ``(H, W)`` float32 in [0, 1] of each image, in one batch."""
    if not images:
        return []
    rois = np.array(
        [[im.shape[1] / 2, im.shape[0] / 2, im.shape[1], im.shape[0], 0.0] for im in images],
        np.float32,
    )
    batch = crop_many(images, rois, np.arange(len(images)), (SIZE, SIZE), "zero", (0.0, 1.0))
    (prob,) = run_model(MODEL, batch)
    out = []
    for im, p in zip(images, prob[..., 0]):
        h, w = im.shape[:2]
        mask = cv2.resize(
            np.ascontiguousarray(p, np.float32), (w, h), interpolation=cv2.INTER_LINEAR
        )
        out.append(np.clip(np.nan_to_num(mask), 0.0, 1.0).astype(np.float32))
    return out
