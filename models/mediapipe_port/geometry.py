"""MediaPipe's pre- and post-processing, re-implemented to match mediapipe 0.10.21 (legacy CPU graphs).

Everything that decides where a model looks and where its outputs land: SSD anchors, box
decoding, weighted NMS, detection -> rotated ROI, the ROI crop (OpenCV's warpPerspective,
bit-exact: 1/32-pixel sampling positions and integer rounding), landmark projection, the
heatmap refinement and the mask warps. Geometry runs in float32 NumPy as MediaPipe's C++ does;
crops gather pixels with torch on the image's device.

Conventions: a ROI is ``(cx, cy, w, h, rotation)`` in **pixels** of the image (rotation in
radians, clockwise on screen, as MediaPipe's NormalizedRect times the image size); detections
are arrays ``(N, 4 + 2K)``: ``xmin, ymin, xmax, ymax`` then K keypoints ``x, y``, in pixels,
with their scores ``(N,)`` beside them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

f32 = np.float32


# ----------------------------------------------------------------------------- anchors + decoding


def ssd_anchors(input_size: int, strides: tuple[int, ...], interpolated: bool = True) -> np.ndarray:
    """Anchor centres ``(N, 2)`` of SsdAnchorsCalculator with ``fixed_anchor_size`` (w = h = 1):
    consecutive layers of equal stride share one grid, with 1 aspect ratio (+1 interpolated) each."""
    centres = []
    layer = 0
    while layer < len(strides):
        last = layer
        per_cell = 0
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += 2 if interpolated else 1
            last += 1
        fm = math.ceil(input_size / strides[layer])
        y, x = np.meshgrid(np.arange(fm), np.arange(fm), indexing="ij")
        grid = np.stack([(x + 0.5) / fm, (y + 0.5) / fm], -1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
        layer = last
    return np.concatenate(centres).astype(f32)


def decode_detections(
    raw_boxes: np.ndarray,
    raw_scores: np.ndarray,
    anchors: np.ndarray,
    input_size: int,
    num_keypoints: int,
    min_score: float,
) -> tuple[np.ndarray, np.ndarray]:
    """TensorsToDetectionsCalculator (XYWH, fixed anchors, sigmoid scores clipped at +-100): boxes
    ``(M, 4 + 2K)`` as xmin, ymin, xmax, ymax, keypoints, normalised to the model input, and scores
    ``(M,)``, for the anchors scoring at least ``min_score``; boxes of negative size are dropped."""
    s = f32(input_size)
    logits = np.clip(raw_scores.reshape(-1).astype(f32), f32(-100), f32(100))
    with np.errstate(over="ignore"):  # exp(100) is inf in float32, as in C++: the score is 0
        scores = (f32(1) / (f32(1) + np.exp(-logits))).astype(f32)
    keep = np.flatnonzero(scores >= f32(min_score))
    r = raw_boxes[keep].astype(f32)
    a = anchors[keep]
    cx = r[:, 0] / s + a[:, 0]
    cy = r[:, 1] / s + a[:, 1]
    w = r[:, 2] / s
    h = r[:, 3] / s
    out = np.empty((len(keep), 4 + 2 * num_keypoints), f32)
    out[:, 0] = cx - w / f32(2)
    out[:, 1] = cy - h / f32(2)
    out[:, 2] = cx + w / f32(2)
    out[:, 3] = cy + h / f32(2)
    for k in range(num_keypoints):
        out[:, 4 + 2 * k] = r[:, 4 + 2 * k] / s + a[:, 0]
        out[:, 5 + 2 * k] = r[:, 5 + 2 * k] / s + a[:, 1]
    ok = ~((out[:, 2] - out[:, 0] < 0) | (out[:, 3] - out[:, 1] < 0) | np.isnan(out[:, :4]).any(1))
    return out[ok], scores[keep][ok]


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0).astype(f32)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, iou: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """NonMaxSuppressionCalculator, WEIGHTED + IoU: the best remaining detection absorbs every
    detection overlapping it by more than ``iou`` (itself included); its box corners and keypoints
    become their score-weighted mean, its score stays its own. Best first; every cluster is kept."""
    order = np.argsort(-scores, kind="stable")
    remaining = list(order)
    out_boxes, out_scores = [], []
    while remaining:
        top = remaining[0]
        rest = np.array(remaining)
        sim = _iou(boxes[top], boxes[rest])
        members = rest[sim > f32(iou)]
        remaining = [i for i, s in zip(remaining, sim) if not s > f32(iou)]
        merged = boxes[top].copy()
        if len(members):
            w = scores[members].astype(f32)
            total = w.sum(dtype=f32)
            merged = ((boxes[members] * w[:, None]).sum(0, dtype=f32) / total).astype(f32)
        out_boxes.append(merged)
        out_scores.append(scores[top])
        if not len(members):  # a NaN box that overlaps nothing, not even itself
            remaining = remaining[1:] if remaining and remaining[0] == top else remaining
    if not out_boxes:
        return np.zeros((0, boxes.shape[1]), f32), np.zeros(0, f32)
    return np.stack(out_boxes), np.asarray(out_scores, f32)


def remove_letterbox(dets: np.ndarray, pad: tuple[float, float, float, float]) -> np.ndarray:
    """DetectionLetterboxRemovalCalculator: from the padded square back to the image (normalised)."""
    left, top, right, bottom = (f32(v) for v in pad)
    sx, sy = f32(1) - left - right, f32(1) - top - bottom
    out = dets.copy()
    out[:, 0::2] = (dets[:, 0::2] - left) / sx
    out[:, 1::2] = (dets[:, 1::2] - top) / sy
    return out


def project_detections(boxes: np.ndarray, roi: np.ndarray) -> np.ndarray:
    """DetectionProjectionCalculator: detections normalised to the crop of ``roi`` (pixels) -> image
    pixels; keypoints are projected, the box becomes the axis-aligned hull of its projected corners."""
    if len(boxes) == 0:
        return boxes.astype(f32).copy()
    n = len(boxes)
    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    corners = np.stack(
        [
            np.stack([x0, y0], -1),
            np.stack([x1, y0], -1),
            np.stack([x1, y1], -1),
            np.stack([x0, y1], -1),
        ],
        1,
    )
    pts = np.concatenate([corners, boxes[:, 4:].reshape(n, -1, 2)], 1).astype(f32)
    px = project_landmarks(pts, np.repeat(np.asarray(roi, f32).reshape(1, 5), n, 0))
    out = np.empty_like(boxes, dtype=f32)
    out[:, 0], out[:, 1] = px[:, :4, 0].min(1), px[:, :4, 1].min(1)
    out[:, 2], out[:, 3] = px[:, :4, 0].max(1), px[:, :4, 1].max(1)
    out[:, 4:] = px[:, 4:].reshape(n, -1)
    return out


# ----------------------------------------------------------------------------- ROIs


def normalize_radians(angle):
    return angle - f32(2 * math.pi) * np.floor((angle - f32(-math.pi)) / f32(2 * math.pi))


def rotation_from(x0, y0, x1, y1, target_degrees: float):
    """DetectionsToRects' rotation: the start->end vector turned to ``target`` (pixel space)."""
    target = f32(target_degrees * math.pi / 180.0)
    return normalize_radians(target - np.arctan2(-(y1 - y0), x1 - x0).astype(f32)).astype(f32)


def alignment_rois(
    kp_norm: np.ndarray, start: int, end: int, target_degrees: float, width: int, height: int
) -> np.ndarray:
    """AlignmentPointsRectsCalculator on keypoints ``(N, K, 2)`` normalised to the image: centre
    at keypoint ``start``, side twice its distance to ``end``; ROIs in pixels."""
    W, H = f32(width), f32(height)
    x0, y0 = kp_norm[:, start, 0] * W, kp_norm[:, start, 1] * H
    x1, y1 = kp_norm[:, end, 0] * W, kp_norm[:, end, 1] * H
    size = np.sqrt((x1 - x0) ** 2 + (y1 - y0) ** 2).astype(f32) * f32(2)
    rot = rotation_from(x0, y0, x1, y1, target_degrees)
    return np.stack([x0, y0, size, size, rot], -1).astype(f32)


def box_rois(
    boxes_norm: np.ndarray,
    rot_points: np.ndarray | None,
    start: int,
    end: int,
    target_degrees: float,
    width: int,
    height: int,
) -> np.ndarray:
    """DetectionsToRectsCalculator (box mode) on normalised ``xmin, ymin, xmax, ymax`` boxes, rotation
    from keypoints ``start -> end`` of ``rot_points (N, K, 2)`` (normalised), ROIs in pixels."""
    W, H = f32(width), f32(height)
    w = boxes_norm[:, 2] - boxes_norm[:, 0]
    h = boxes_norm[:, 3] - boxes_norm[:, 1]
    cx = boxes_norm[:, 0] + w / f32(2)
    cy = boxes_norm[:, 1] + h / f32(2)
    if rot_points is None:
        rot = np.zeros_like(cx)
    else:
        rot = rotation_from(
            rot_points[:, start, 0] * W,
            rot_points[:, start, 1] * H,
            rot_points[:, end, 0] * W,
            rot_points[:, end, 1] * H,
            target_degrees,
        )
    return np.stack([cx * W, cy * H, w * W, h * H, rot], -1).astype(f32)


def transform_rois(
    rois: np.ndarray,
    scale: float = 1.0,
    shift_x: float = 0.0,
    shift_y: float = 0.0,
    square_long: bool = True,
) -> np.ndarray:
    """RectTransformationCalculator (in pixels, which is what its normalised maths amounts to)."""
    cx, cy, w, h, rot = (rois[:, i].astype(f32) for i in range(5))
    c, s = np.cos(rot).astype(f32), np.sin(rot).astype(f32)
    sx, sy = f32(shift_x), f32(shift_y)
    cx = np.where(rot == 0, cx + w * sx, cx + (w * sx * c - h * sy * s))
    cy = np.where(rot == 0, cy + h * sy, cy + (w * sx * s + h * sy * c))
    if square_long:
        w = h = np.maximum(w, h)
    return np.stack([cx, cy, w * f32(scale), h * f32(scale), rot], -1).astype(f32)


def pad_roi(rois: np.ndarray, tensor_w: int, tensor_h: int) -> tuple[np.ndarray, np.ndarray]:
    """ImageToTensor's keep_aspect_ratio: the ROI grown to the tensor's aspect, and the letterbox
    padding fractions ``(N, 4)`` left, top, right, bottom."""
    rois = rois.copy()
    tar = f32(tensor_h) / f32(tensor_w)
    rar = rois[:, 3] / rois[:, 2]
    pads = np.zeros((len(rois), 4), f32)
    vert = tar > rar
    pads[vert, 1] = pads[vert, 3] = (f32(1) - rar[vert] / tar) / f32(2)
    pads[~vert, 0] = pads[~vert, 2] = (f32(1) - tar / rar[~vert]) / f32(2)
    new_w = np.where(vert, rois[:, 2], rois[:, 3] / tar)
    new_h = np.where(vert, rois[:, 2] * tar, rois[:, 3])
    rois[:, 2], rois[:, 3] = new_w, new_h
    return rois.astype(f32), pads


def valid_rois(rois: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which ROIs can be cropped: finite, positive size, and touching the image (MediaPipe's graph
    errors out on an empty ROI; here such a ROI is simply skipped)."""
    if len(rois) == 0:
        return np.zeros(0, bool)
    ok = np.isfinite(rois).all(1) & (rois[:, 2] > 1e-3) & (rois[:, 3] > 1e-3)
    reach = np.hypot(rois[:, 2], rois[:, 3]) / 2
    ok &= (
        (rois[:, 0] + reach > 0)
        & (rois[:, 0] - reach < width)
        & (rois[:, 1] + reach > 0)
        & (rois[:, 1] - reach < height)
    )
    ok &= np.hypot(rois[:, 2], rois[:, 3]) < 64 * max(width, height) + 1e4  # absurd sizes
    return ok


# ----------------------------------------------------------------------------- crops


def _box_corners(rois: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cv::RotatedRect::points in float32: (top-left, top-right, bottom-left) per ROI."""
    cx, cy, w, h, rot = (rois[:, i].astype(f32) for i in range(5))
    angle = (rot * f32(180.0 / math.pi)).astype(f32).astype(np.float64) * math.pi / 180.0
    b = (np.cos(angle).astype(f32) * f32(0.5)).astype(f32)
    a = (np.sin(angle).astype(f32) * f32(0.5)).astype(f32)
    p0 = np.stack([cx - a * h - b * w, cy + b * h - a * w], -1)  # bottom-left
    p1 = np.stack([cx + a * h - b * w, cy - b * h - a * w], -1)  # top-left
    p2 = np.stack([f32(2) * cx - p0[:, 0], f32(2) * cy - p0[:, 1]], -1)  # top-right
    return p1.astype(np.float64), p2.astype(np.float64), p0.astype(np.float64)


_LANE = np.uint64(21)
_LANE_MASK = np.uint64((1 << 21) - 1)


class Image:
    """An RGB uint8 ``(H, W, 3)`` image prepared for cropping on ``device``. On the CPU the three
    channels are spread into 21-bit lanes of one uint64 per pixel, so the bilinear sum of all
    channels is 4 gathers and 4 multiply-adds (each lane stays below 255 * 1024 < 2^21)."""

    def __init__(self, rgb: np.ndarray, device: torch.device | str = "cpu"):
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(
                f"expected an RGB uint8 image of shape (H, W, 3), got {rgb.dtype} {rgb.shape}"
            )
        self.shape = rgb.shape
        self.device = torch.device(device)
        if self.device.type == "cpu":
            lanes = rgb.astype(np.uint64)
            self.spread = (
                lanes[..., 0] | (lanes[..., 1] << _LANE) | (lanes[..., 2] << (_LANE + _LANE))
            ).reshape(-1)
            self.tensor = None
        else:
            self.spread = None
            self.tensor = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device).reshape(-1, 3)


def crop(
    image: Image,
    rois: np.ndarray,
    size: tuple[int, int],
    border: str,
    value_range: tuple[float, float],
) -> torch.Tensor:
    """ImageToTensorCalculator's OpenCV path for several ROIs of one image, bit-exact.

    Returns ``(N, 3, th, tw)`` float32 on the image's device, scaled to ``value_range``. Tensor
    pixel (u, v) samples the ROI at (u/tw, v/th) of its rotated box; the source position is
    rounded to 1/32 pixel and the bilinear result to an integer, as OpenCV's fixed-point
    warpPerspective (MediaPipe's) does; outside the image is black (``"zero"``) or the nearest
    edge pixel (``"replicate"``). (OpenCV >= 4.11 changed its warp kernels, so cv2 is not used.)
    """
    tw, th = size
    n = len(rois)
    H, W = image.shape[:2]
    if n == 0:
        return torch.zeros((0, 3, th, tw), dtype=torch.float32, device=image.device)
    tl, tr, bl = _box_corners(rois)
    ex = (tr - tl) / tw
    ey = (bl - tl) / th
    u = np.arange(tw, dtype=np.float64)
    v = np.arange(th, dtype=np.float64)
    # as OpenCV: per row X0 = M1*v + M2, then X = X0 + M0*u; rounded to 1/32 pixel
    X = (tl[:, None, None, 0] + v[None, :, None] * ey[:, None, None, 0]) + u[None, None, :] * ex[
        :, None, None, 0
    ]
    Y = (tl[:, None, None, 1] + v[None, :, None] * ey[:, None, None, 1]) + u[None, None, :] * ex[
        :, None, None, 1
    ]
    for a in (X, Y):
        a *= 32
        np.maximum(a, -2e9, out=a)
        np.minimum(a, 2e9, out=a)
    Xi = np.rint(X).astype(np.int64).reshape(-1)
    Yi = np.rint(Y).astype(np.int64).reshape(-1)
    del X, Y
    x0, y0 = Xi >> 5, Yi >> 5
    ax, ay = (Xi & 31).astype(np.uint64), (Yi & 31).astype(np.uint64)
    wx = [np.uint64(32) - ax, ax]
    wy = [np.uint64(32) - ay, ay]
    xs, ys = [x0, x0 + 1], [y0, y0 + 1]
    if border != "replicate":  # zero: a neighbour outside the image adds nothing
        for k in (0, 1):
            wx[k] = wx[k] * ((xs[k] >= 0) & (xs[k] < W))
            wy[k] = wy[k] * ((ys[k] >= 0) & (ys[k] < H))
    for a in xs:
        np.maximum(a, 0, out=a)
        np.minimum(a, W - 1, out=a)
    for a in ys:
        np.maximum(a, 0, out=a)
        np.minimum(a, H - 1, out=a)
        a *= W
    lo, hi = value_range
    scale = float(np.float32((hi - lo) / 255.0))
    if image.spread is not None:
        total = image.spread.take(ys[0] + xs[0]) * (wy[0] * wx[0])
        total += image.spread.take(ys[0] + xs[1]) * (wy[0] * wx[1])
        total += image.spread.take(ys[1] + xs[0]) * (wy[1] * wx[0])
        total += image.spread.take(ys[1] + xs[1]) * (wy[1] * wx[1])
        total = total.reshape(n, th * tw)
        out = np.empty((n, 3, th * tw), np.float32)
        for c in range(3):
            out[:, c] = (
                ((total >> (_LANE * np.uint64(c))) & _LANE_MASK) + np.uint64(512)
            ) >> np.uint64(10)
        out *= np.float32(scale)
        out += np.float32(lo)
        # NumPy on the CPU: no torch kernel (and no OpenMP thread team) runs for the crops
        return torch.from_numpy(out.reshape(n, 3, th, tw))
    else:
        idx = torch.from_numpy(
            np.concatenate([ys[dy] + xs[dx] for dy in (0, 1) for dx in (0, 1)])
        ).to(image.device)
        w = torch.from_numpy(
            np.stack([wy[dy] * wx[dx] for dy in (0, 1) for dx in (0, 1)]).astype(np.int32)
        ).to(image.device)
        pix = image.tensor.index_select(0, idx).view(4, -1, 3).to(torch.int32)
        total = (
            ((pix * w[..., None]).sum(0, dtype=torch.int32) + 512)
            .bitwise_right_shift(10)
            .to(torch.float32)
        )
        values = total.view(n, th, tw, 3).permute(0, 3, 1, 2)
    return (values * scale + float(lo)).contiguous()


# ----------------------------------------------------------------------------- landmarks


def project_landmarks(points: np.ndarray, rois: np.ndarray) -> np.ndarray:
    """LandmarkProjectionCalculator: ``(N, K, 2+)`` points normalised to the crop -> image pixels.
    With square-in-pixels ROIs MediaPipe's normalised-space rotation equals this pixel rotation."""
    out = points.astype(f32).copy()
    x = points[..., 0] - f32(0.5)
    y = points[..., 1] - f32(0.5)
    rot = rois[:, None, 4]
    c, s = np.cos(rot).astype(f32), np.sin(rot).astype(f32)
    out[..., 0] = (c * x - s * y) * rois[:, None, 2] + rois[:, None, 0]
    out[..., 1] = (s * x + c * y) * rois[:, None, 3] + rois[:, None, 1]
    if points.shape[-1] > 2:
        out[..., 2] = points[..., 2] * rois[:, None, 2]  # z scales as x (in pixels here)
    return out


def refine_from_heatmap(
    points: np.ndarray, heatmaps: np.ndarray, kernel: int = 9, min_confidence: float = 0.5
) -> np.ndarray:
    """RefineLandmarksFromHeatmapCalculator: each landmark (normalised to the crop) moves to the
    sigmoid-weighted mean of the ``kernel`` x ``kernel`` heatmap cells around it, when the window's
    peak confidence reaches ``min_confidence``. ``heatmaps``: ``(N, h, w, K)`` logits. The 0.10.21
    wheel behaves as kernel 9 (the option's default), though its graph file says 7."""
    out = points.astype(f32).copy()
    n, hh, hw, k = heatmaps.shape
    cols = (points[..., 0] * f32(hw)).astype(f32)
    rows = (points[..., 1] * f32(hh)).astype(f32)
    ccol = np.trunc(cols).astype(np.int64)  # C++ int conversion truncates towards zero
    crow = np.trunc(rows).astype(np.int64)
    off = (kernel - 1) // 2
    for i in range(n):
        for j in range(k):
            c0, r0 = ccol[i, j], crow[i, j]
            if not (0 <= c0 < hw and 0 <= r0 < hh) or not np.isfinite(cols[i, j]):
                continue
            b_c, e_c = max(0, c0 - off), min(hw, c0 + off + 1)
            b_r, e_r = max(0, r0 - off), min(hh, r0 + off + 1)
            win = heatmaps[i, b_r:e_r, b_c:e_c, j].astype(f32)
            conf = sigmoid(win)
            total = conf.sum(dtype=f32)
            if conf.max() >= f32(min_confidence) and total > 0:
                rr, cc = np.mgrid[b_r:e_r, b_c:e_c]
                out[i, j, 0] = (cc * conf).sum(dtype=f32) / f32(hw) / total
                out[i, j, 1] = (rr * conf).sum(dtype=f32) / f32(hh) / total
    return out


def sigmoid(x):
    x = np.asarray(x, f32)
    with np.errstate(over="ignore"):
        return (f32(1) / (f32(1) + np.exp(-x))).astype(f32)


# ----------------------------------------------------------------------------- masks


def warp_mask_to_image(
    mask: torch.Tensor, roi: np.ndarray, width: int, height: int
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """WarpAffine of one ``(h, w)`` crop mask back onto the ``height`` x ``width`` image with the
    inverse crop matrix, in MediaPipe's "OpenCV compatibility" convention (no half-pixel shift):
    image pixel (x, y) samples the mask at ``(w, h) * M^-1(x / W, y / H)``; outside the crop is 0.
    Only the ROI's bounding box is computed: returns ``(values, (x0, y0, x1, y1))`` with the
    values of ``image[y0:y1, x0:x1]`` (zero elsewhere)."""
    mh, mw = mask.shape
    cx, cy, w, h, rot = (float(v) for v in roi[:5])
    c, s = math.cos(rot), math.sin(rot)
    ext_x = (abs(c) * w + abs(s) * h) / 2 + 2
    ext_y = (abs(s) * w + abs(c) * h) / 2 + 2
    x0, x1 = max(int(math.floor(cx - ext_x)), 0), min(int(math.ceil(cx + ext_x)) + 1, width)
    y0, y1 = max(int(math.floor(cy - ext_y)), 0), min(int(math.ceil(cy + ext_y)) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return torch.zeros((0, 0), dtype=torch.float32, device=mask.device), (0, 0, 0, 0)
    dx = np.arange(x0, x1, dtype=np.float64)[None, :] - cx
    dy = np.arange(y0, y1, dtype=np.float64)[:, None] - cy
    u = ((c * dx + s * dy) / w + 0.5) * mw
    v = ((-s * dx + c * dy) / h + 0.5) * mh
    # grid_sample (align_corners=False) puts pixel i's centre at i + 0.5
    grid = np.stack([(u + 0.5) / mw * 2 - 1, (v + 0.5) / mh * 2 - 1], -1).astype(np.float32)
    grid = torch.from_numpy(grid).to(mask.device)[None]
    out = torch.nn.functional.grid_sample(
        mask[None, None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return out[0, 0], (x0, y0, x1, y1)
