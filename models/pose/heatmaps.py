"""Pose heatmaps and pose masks (Deformable GAN inputs and the PG2 mask-SSIM protocol).

* :func:`gaussian_heatmaps` / :func:`gaussian_heatmaps_torch`: one Gaussian per OpenPose-18
  joint, ``exp(-d^2 / (2 sigma^2))`` (value 1 at the joint, sigma 6 px as in Siarohin et al.'s
  ``cords_to_map``); missing joints give all-zero channels.
* :func:`limb_mask` / :func:`pose_mask`: Ma et al.'s mask (``pose_utils.produce_ma_mask``,
  docs/methods.md §B.7): polygons of half-width 4 px along 23 joint pairs, discs of radius
  4 px on the joints, then a 5x5 closing (dilation then erosion).
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.draw import disk, polygon
from skimage.morphology import dilation, erosion

from .keypoints import NUM_BODY, OPENPOSE18_LIMBS

# OpenPose's 17 bones plus neck-ears, the hip line, hip-shoulder sides and the ear line: the 23
# pairs of produce_ma_mask, so the mask also fills the torso outline and the head.
MA_MASK_LIMBS = OPENPOSE18_LIMBS + ((1, 16), (1, 17), (8, 11), (11, 5), (8, 2), (16, 17))


def _check_body(body) -> np.ndarray:
    arr = np.asarray(body, dtype=np.float32)
    if arr.shape != (NUM_BODY, 3):
        raise ValueError(
            f"expected an OpenPose-18 body of shape (18, 3) (x, y, score), got {arr.shape}"
        )
    return arr


def _check_size(height: int, width: int) -> tuple[int, int]:
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise ValueError(f"heatmap/mask size must be positive, got {height}x{width}")
    return height, width


# Beyond this many sigmas a Gaussian is below 1e-7 (float32 noise): only a window around each
# joint is computed, so the cost follows sigma, not the canvas (thousands of people stay cheap).
_REACH = 5.7


def gaussian_heatmaps(
    body, height: int, width: int, sigma: float = 6.0, out: np.ndarray | None = None
) -> np.ndarray:
    """``float32 (18, height, width)`` Gaussian heatmaps of a body in pixel coordinates.

    With ``out`` (an ``(18, height, width)`` float32 array) the heatmaps are max-combined into it
    in place, for drawing many people into one set of maps."""
    b = _check_body(body)
    height, width = _check_size(height, width)
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if out is None:
        out = np.zeros((NUM_BODY, height, width), np.float32)
    elif out.shape != (NUM_BODY, height, width):
        raise ValueError(f"out has shape {out.shape}, expected {(NUM_BODY, height, width)}")
    reach = _REACH * sigma
    for j in np.flatnonzero(b[:, 2] > 0):
        x, y = float(b[j, 0]), float(b[j, 1])
        x0, x1 = max(int(np.floor(x - reach)), 0), min(int(np.ceil(x + reach)) + 1, width)
        y0, y1 = max(int(np.floor(y - reach)), 0), min(int(np.ceil(y + reach)) + 1, height)
        if x0 >= x1 or y0 >= y1:
            continue  # the joint is off the canvas by more than the Gaussian's reach
        # separable: exp(-(dx^2 + dy^2)/2s^2) = exp(-dy^2/2s^2) * exp(-dx^2/2s^2)
        gy = np.exp(-((np.arange(y0, y1, dtype=np.float32)[:, None] - y) ** 2) / (2 * sigma**2))
        gx = np.exp(-((np.arange(x0, x1, dtype=np.float32)[None, :] - x) ** 2) / (2 * sigma**2))
        window = out[j, y0:y1, x0:x1]
        np.maximum(window, gy * gx, out=window)
    return out


def gaussian_heatmaps_torch(
    bodies: torch.Tensor,
    height: int,
    width: int,
    sigma: float = 6.0,
    image_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Batched heatmaps ``(B, 18, height, width)`` from ``bodies (B, 18, 3)`` (x, y, score) pixels.

    ``image_size=(h, w)`` gives the frame the coordinates refer to when the heatmaps are made at
    another resolution (coordinates and sigma are rescaled; pixel centres stay at integers).
    Runs on the bodies' device; missing joints (score <= 0) give zero channels.
    """
    if bodies.ndim == 2:
        bodies = bodies[None]
    if bodies.ndim != 3 or bodies.shape[1:] != (NUM_BODY, 3):
        raise ValueError(f"expected bodies of shape (B, 18, 3), got {tuple(bodies.shape)}")
    height, width = _check_size(height, width)
    bodies = bodies.to(torch.float32)
    x, y, present = bodies[..., 0], bodies[..., 1], (bodies[..., 2] > 0).to(torch.float32)
    sx = sy = 1.0
    if image_size is not None:
        sy, sx = height / float(image_size[0]), width / float(image_size[1])
        x = (x + 0.5) * sx - 0.5
        y = (y + 0.5) * sy - 0.5
    sig_x, sig_y = sigma * sx, sigma * sy
    ys = torch.arange(height, dtype=torch.float32, device=bodies.device)
    xs = torch.arange(width, dtype=torch.float32, device=bodies.device)
    gy = torch.exp(-((ys[None, None, :] - y[..., None]) ** 2) / (2 * sig_y**2))  # (B, 18, H)
    gx = torch.exp(-((xs[None, None, :] - x[..., None]) ** 2) / (2 * sig_x**2))  # (B, 18, W)
    return gy[..., :, None] * gx[..., None, :] * present[..., None, None]


def limb_mask(
    body, height: int, width: int, half_width: float = 4.0, radius: float = 4.0
) -> np.ndarray:
    """Boolean ``(height, width)``: limb polygons of ``half_width`` px along the 23 pairs and
    discs of ``radius`` px on the present joints (before closing)."""
    b = _check_body(body)
    height, width = _check_size(height, width)
    mask = np.zeros((height, width), bool)
    for f, t in MA_MASK_LIMBS:
        if b[f, 2] <= 0 or b[t, 2] <= 0:
            continue
        d = b[f, :2].astype(np.float64) - b[t, :2]
        norm = float(np.hypot(*d))
        if norm < 1e-6:
            continue
        n = np.array([-d[1], d[0]]) * half_width / norm
        verts = np.stack([b[f, :2] + n, b[f, :2] - n, b[t, :2] - n, b[t, :2] + n])
        rr, cc = polygon(verts[:, 1], verts[:, 0], shape=mask.shape)
        mask[rr, cc] = True
    for j in np.flatnonzero(b[:, 2] > 0):
        rr, cc = disk((float(b[j, 1]), float(b[j, 0])), radius, shape=mask.shape)
        mask[rr, cc] = True
    return mask


def pose_mask(
    body, height: int, width: int, half_width: float = 4.0, radius: float = 4.0, closing: int = 5
) -> np.ndarray:
    """Ma et al.'s mask-SSIM mask ``float32 (height, width)`` in {0, 1}: :func:`limb_mask` then a
    ``closing`` x ``closing`` dilation and erosion."""
    mask = limb_mask(body, height, width, half_width, radius)
    if closing > 1:
        footprint = np.ones((int(closing), int(closing)), bool)
        mask = erosion(dilation(mask, footprint), footprint)
    return mask.astype(np.float32)
