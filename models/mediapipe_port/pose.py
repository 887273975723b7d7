"""BlazePose (MediaPipe Pose) without ``mediapipe``: the person detector and the landmark model.

The stages of mediapipe 0.10.21's legacy pose graph (pose_detection_cpu, pose_detection_to_roi,
pose_landmark_by_roi_cpu), as functions over batches:

* :func:`detect` - the 224x224 letterboxed detector, SSD anchors, weighted NMS (IoU 0.3):
  **every** detection above the threshold, best first (MediaPipe's legacy graph keeps the first);
* :func:`detection_rois` - detector keypoints 0 (mid-hip) -> 1 (body size/rotation), 90 degrees,
  x1.25, squared;
* :func:`landmarks` - the 256x256 crops of several ROIs (any images) through the landmark model
  in one batch: 33 landmarks in image pixels with visibility and presence, the pose flag, the two
  auxiliary (ROI) landmarks and the segmentation logits of each crop.

:func:`single_pose` chains them as ``mp.solutions.pose.Pose(static_image_mode=True)`` does (the
parity reference); the multi-person extractor in models/pose/detect_mediapipe.py builds on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import geometry as geo
from .runtime import run_model

DETECTOR = "pose_detection"
DETECTOR_SIZE = 224
_ANCHORS = geo.ssd_anchors(DETECTOR_SIZE, (8, 16, 32, 32, 32))
LANDMARK_MODELS = {
    "full": "pose_landmark_full",
    "heavy": "pose_landmark_heavy",
    "lite": "pose_landmark_lite",
}
LANDMARK_SIZE = 256
NUM_LANDMARKS = 33
# Left/right partner of each of the model's 39 landmarks (33 body + 2 auxiliary + 4 unused), to
# read a mirrored crop.
MIRROR = np.array(
    [
        0,
        4,
        5,
        6,
        1,
        2,
        3,
        8,
        7,
        10,
        9,
        12,
        11,
        14,
        13,
        16,
        15,
        18,
        17,
        20,
        19,
        22,
        21,
        24,
        23,
        26,
        25,
        28,
        27,
        30,
        29,
        32,
        31,
        33,
        34,
        35,
        36,
        37,
        38,
    ]
)


@dataclass
class Detections:
    """Detections of one image, best first: ``boxes`` ``(N, 12)`` xmin, ymin, xmax, ymax + 4
    keypoints, normalised to the image; ``scores`` ``(N,)``."""

    boxes: np.ndarray
    scores: np.ndarray


@dataclass
class PoseLandmarks:
    """Landmark-model results for N ROIs: ``points`` ``(N, 33, 5)`` x, y (image pixels), z (pixels,
    relative to the hips), visibility, presence; ``aux`` ``(N, 2, 2)`` the auxiliary ROI points;
    ``flag`` ``(N,)`` pose presence probability; ``mask_logits`` ``(N, 256, 256)`` segmentation
    logits in crop space and the ``rois`` they were cropped from."""

    points: np.ndarray
    aux: np.ndarray
    flag: np.ndarray
    mask_logits: np.ndarray | None
    rois: np.ndarray


def _whole_image_roi(width: int, height: int) -> np.ndarray:
    return np.array([[width / 2, height / 2, width, height, 0.0]], np.float32)


def detect(
    images: list[torch.Tensor],
    min_score: float = 0.5,
    iou: float = 0.3,
    regions: list[list[np.ndarray]] | None = None,
) -> list[list[Detections]]:
    """The pose detector on each image (``(H, W, 3)`` uint8 tensors), letterboxed to 224 x 224,
    in one batch. ``regions[i]`` optionally lists more ROIs of image i to run it on (e.g. zoomed
    tiles); result ``[i][j]`` is image i's j-th region (j = 0: the whole image), detections in
    the image's normalised coordinates."""
    all_rois, owner, where = [], [], []
    for i, img in enumerate(images):
        h, w = img.shape[:2]
        rois = [_whole_image_roi(w, h)] + [
            np.asarray(r, np.float32).reshape(1, 5) for r in (regions[i] if regions else [])
        ]
        for j, roi in enumerate(rois):
            padded, pads = geo.pad_roi(roi, DETECTOR_SIZE, DETECTOR_SIZE)
            all_rois.append(padded[0])
            owner.append(i)
            where.append((i, j, padded[0], pads[0], w, h))
    crops = crop_many(
        images,
        np.stack(all_rois),
        np.asarray(owner),
        (DETECTOR_SIZE, DETECTOR_SIZE),
        "zero",
        (-1.0, 1.0),
    )
    raw_boxes, raw_scores = run_model(DETECTOR, crops)
    out: list[list[Detections]] = [[] for _ in images]
    for k, (i, j, roi, pads, w, h) in enumerate(where):
        boxes, scores = geo.decode_detections(
            raw_boxes[k], raw_scores[k], _ANCHORS, DETECTOR_SIZE, 4, min_score
        )
        boxes, scores = geo.weighted_nms(boxes, scores, iou)
        if j == 0:  # the whole image, letterboxed: DetectionLetterboxRemoval as the pose graph does
            boxes = geo.remove_letterbox(boxes, tuple(pads))
        elif len(boxes):  # a region: DetectionProjection through its (padded) ROI, then normalised
            boxes = geo.project_detections(boxes, roi)
            boxes[:, 0::2] /= np.float32(w)
            boxes[:, 1::2] /= np.float32(h)
        out[i].append(Detections(boxes.astype(np.float32), scores))
    return out


def detection_rois(det: Detections, width: int, height: int) -> np.ndarray:
    """pose_detection_to_roi: ROIs in pixels ``(N, 5)`` for the landmark model."""
    if len(det.boxes) == 0:
        return np.zeros((0, 5), np.float32)
    kp = det.boxes[:, 4:].reshape(-1, 4, 2)
    rois = geo.alignment_rois(kp, 0, 1, 90.0, width, height)
    return geo.transform_rois(rois, scale=1.25, square_long=True)


def crop_many(
    images: list,
    rois: np.ndarray,
    image_index: np.ndarray,
    size: tuple[int, int],
    border: str,
    value_range: tuple[float, float],
    mirror: np.ndarray | None = None,
) -> torch.Tensor:
    """Crops of ``rois[k]`` from ``images[image_index[k]]`` in order, one :func:`geometry.crop` call per
    image; an identical ROI is cropped once, and ``mirror[k]`` flips crop k horizontally."""
    n = len(rois)
    image_index = np.asarray(image_index, np.int64).reshape(n)
    key = np.concatenate([image_index[:, None].astype(np.float32), rois], 1)
    uniq, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    parts = {}
    for i in np.unique(image_index):
        sel = np.flatnonzero(image_index[first] == i)  # the distinct ROIs of image i
        out = geo.crop(images[int(i)], rois[first[sel]], size, border, value_range)
        for j, s in enumerate(sel):
            parts[int(s)] = out[j]
    order = [parts[int(inverse[k])] for k in range(n)]
    flip = np.zeros(n, bool) if mirror is None else np.asarray(mirror, bool).reshape(n)
    if order[0].device.type == "cpu":  # assemble in NumPy (see geometry.crop)
        batch = np.empty((n,) + tuple(order[0].shape), np.float32)
        for k, t in enumerate(order):
            batch[k] = t.numpy()[..., ::-1] if flip[k] else t.numpy()
        return torch.from_numpy(batch)
    batch = torch.stack(order)
    if flip.any():
        idx = torch.from_numpy(np.flatnonzero(flip)).to(batch.device)
        batch[idx] = batch[idx].flip(-1)
    return batch


def landmarks(
    images: list[torch.Tensor],
    rois: np.ndarray,
    image_index: np.ndarray,
    model: str = "full",
    with_mask: bool = True,
    heatmap_kernel: int = 9,
    mirror: np.ndarray | None = None,
) -> PoseLandmarks:
    """The landmark model on ``rois[k]`` of ``images[image_index[k]]``, all in one batch.
    ``mirror[k]``: run crop k mirrored (a second opinion on the same person), read back unmirrored."""
    rois = np.asarray(rois, np.float32).reshape(-1, 5)
    n = len(rois)
    if n == 0:
        return PoseLandmarks(
            np.zeros((0, NUM_LANDMARKS, 5), np.float32),
            np.zeros((0, 2, 2), np.float32),
            np.zeros(0, np.float32),
            np.zeros((0, LANDMARK_SIZE, LANDMARK_SIZE), np.float32),
            rois,
        )
    padded, pads = geo.pad_roi(rois, LANDMARK_SIZE, LANDMARK_SIZE)
    flipped = np.zeros(n, bool) if mirror is None else np.asarray(mirror, bool).reshape(n)
    batch = crop_many(
        images,
        padded,
        image_index,
        (LANDMARK_SIZE, LANDMARK_SIZE),
        "replicate",
        (0.0, 1.0),
        flipped,
    )
    raw, flag, seg, heat, _ = run_model(LANDMARK_MODELS[model], batch)
    mask_logits = seg[..., 0] if with_mask else None
    s = np.float32(LANDMARK_SIZE)
    lm = raw.reshape(n, 39, 5).astype(np.float32)
    norm = np.empty_like(lm)
    norm[..., 0] = lm[..., 0] / s
    norm[..., 1] = lm[..., 1] / s
    norm[..., 2] = lm[..., 2] / s
    norm[..., 3] = geo.sigmoid(lm[..., 3])
    norm[..., 4] = geo.sigmoid(lm[..., 4])
    norm[..., :2] = geo.refine_from_heatmap(norm[..., :2], heat, kernel=heatmap_kernel)
    if flipped.any():  # back from the mirrored crop: x -> 1 - x, left and right swap names
        back = norm[flipped][:, MIRROR]
        back[..., 0] = np.float32(1) - back[..., 0]
        back[..., 2] = back[..., 2]
        norm[flipped] = back
        if mask_logits is not None:
            mask_logits[flipped] = mask_logits[flipped][..., ::-1]
    # letterbox removal (zero for the square ROIs of this graph, kept for generality)
    left, top, right, bottom = (pads[:, i, None] for i in range(4))
    norm[..., 0] = (norm[..., 0] - left) / (np.float32(1) - left - right)
    norm[..., 1] = (norm[..., 1] - top) / (np.float32(1) - top - bottom)
    pts = geo.project_landmarks(norm[..., :3], padded)
    points = np.concatenate([pts[:, :NUM_LANDMARKS], norm[:, :NUM_LANDMARKS, 3:]], -1)
    return PoseLandmarks(
        points.astype(np.float32),
        pts[:, 33:35, :2].astype(np.float32),
        flag.reshape(-1),
        mask_logits,
        padded,
    )


def mask_in_image(result: PoseLandmarks, k: int, width: int, height: int) -> np.ndarray:
    """Person k's segmentation (probability) warped onto the ``height`` x ``width`` image."""
    if result.mask_logits is None:
        raise ValueError("landmarks() ran without with_mask")
    prob = torch.from_numpy(geo.sigmoid(result.mask_logits[k]))
    values, (x0, y0, x1, y1) = geo.warp_mask_to_image(prob, result.rois[k], width, height)
    out = np.zeros((height, width), np.float32)
    if x1 > x0:
        out[y0:y1, x0:x1] = values.cpu().numpy()
    return out


def single_pose(
    image: torch.Tensor,
    min_detection: float = 0.5,
    min_presence: float = 0.5,
    model: str = "full",
    with_mask: bool = True,
):
    """One image as ``mp.solutions.pose.Pose(static_image_mode=True)`` sees it: the best
    detection only. Returns ``(points (33, 5) in pixels, mask (H, W) or None)`` or None."""
    h, w = image.shape[:2]
    det = detect([image], min_score=min_detection)[0][0]
    if len(det.scores) == 0:
        return None
    rois = detection_rois(Detections(det.boxes[:1], det.scores[:1]), w, h)
    if not geo.valid_rois(rois, w, h).all():
        return None
    res = landmarks([image], rois, np.zeros(1, np.int64), model=model, with_mask=with_mask)
    if res.flag[0] < min_presence:
        return None
    mask = mask_in_image(res, 0, w, h) if with_mask else None
    return res.points[0], mask
