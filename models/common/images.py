"""Conversions between ComfyUI's tensor layouts and NumPy images, in one place.

ComfyUI passes IMAGE as float32 ``(B, H, W, C)`` in [0, 1] and MASK as float32 ``(B, H, W)``.
Model code here works on ``uint8 (H, W, 3)`` RGB arrays (OpenCV / MediaPipe) or on float
tensors; these helpers are the only place that converts, so odd inputs (grayscale, RGBA,
a single image without a batch axis) are handled once.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

# What a node that draws new images (skeletons, heatmaps, part masks) makes at most: 8192 px per
# side and 512 M pixels per batch (6 GB as a float32 IMAGE), so one bad size cannot exhaust memory.
MAX_DRAW_SIDE = 8192
MAX_DRAW_PIXELS = 2**29


def check_draw_size(count: int, height: int, width: int, what: str, channels: int = 1) -> None:
    """Refuse to allocate ``count`` drawn images of ``height`` x ``width`` beyond the limits above
    (``channels`` counts per-image working planes, e.g. 18 joint heatmaps)."""
    if max(height, width) > MAX_DRAW_SIDE:
        raise ValueError(
            f"{what}: {width}x{height} is larger than {MAX_DRAW_SIDE} pixels per side; draw at a "
            "smaller size (set width/height, or rescale the pose)"
        )
    if count * height * width * max(channels, 1) > MAX_DRAW_PIXELS:
        raise ValueError(
            f"{what}: {count} images of {width}x{height} are more than this node draws in one go "
            f"({MAX_DRAW_PIXELS // 2**20} M pixels); split the batch or draw smaller"
        )


class BatchSizeError(ValueError):
    """Two batched inputs whose sizes cannot be paired."""


BatchSizeError.__module__ = "poselab"  # shown by ComfyUI as poselab.BatchSizeError, not a file path


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Any ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` array, float in [0, 1] or
    uint8, to contiguous ``uint8 (H, W, 3)``. Alpha is dropped (ComfyUI keeps it in a MASK)."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ValueError(
            f"expected an image of shape (H, W[, C]) with 1-4 channels, got {arr.shape}"
        )
    if arr.shape[2] in (1, 2):  # gray or gray+alpha
        arr = np.repeat(arr[:, :, :1], 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        arr = np.clip(np.nan_to_num(arr.astype(np.float32)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def image_batch_to_numpy(images: torch.Tensor) -> list[np.ndarray]:
    """ComfyUI IMAGE ``(B, H, W, C)`` (or ``(H, W, C)``) to a list of ``uint8 (H, W, 3)`` arrays."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"expected an IMAGE tensor, got {type(images).__name__}")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4:
        raise ValueError(
            f"expected an IMAGE tensor of shape (B, H, W, C), got {tuple(images.shape)}"
        )
    data = images.detach().float().cpu().numpy()
    return [to_rgb_uint8(frame) for frame in data]


def numpy_to_image_batch(frames: Sequence[np.ndarray]) -> torch.Tensor:
    """List of same-sized images (uint8 or float [0, 1]) to ComfyUI IMAGE ``(B, H, W, 3)`` float32."""
    if len(frames) == 0:
        raise ValueError("cannot build an IMAGE batch from zero frames")
    rgb = [to_rgb_uint8(f) for f in frames]
    shapes = {f.shape for f in rgb}
    if len(shapes) != 1:
        raise BatchSizeError(
            f"frames of different sizes cannot form one IMAGE batch: {sorted(shapes)}"
        )
    return torch.from_numpy(np.stack(rgb).astype(np.float32) / 255.0)


def mask_batch_to_numpy(masks: torch.Tensor) -> list[np.ndarray]:
    """ComfyUI MASK ``(B, H, W)`` (or ``(H, W)``) to a list of float32 ``(H, W)`` arrays in [0, 1]."""
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if masks.ndim != 3:
        raise ValueError(f"expected a MASK tensor of shape (B, H, W), got {tuple(masks.shape)}")
    return [np.clip(m, 0.0, 1.0) for m in masks.detach().float().cpu().numpy()]


def numpy_to_mask_batch(masks: Sequence[np.ndarray]) -> torch.Tensor:
    """List of same-sized float masks to ComfyUI MASK ``(B, H, W)`` float32."""
    if len(masks) == 0:
        raise ValueError("cannot build a MASK batch from zero masks")
    shapes = {np.shape(m) for m in masks}
    if len(shapes) != 1:
        raise BatchSizeError(
            f"masks of different sizes cannot form one MASK batch: {sorted(shapes)}"
        )
    return torch.from_numpy(np.stack([np.asarray(m, np.float32) for m in masks]).clip(0, 1))


def paired_batch_size(what: dict[str, int]) -> int:
    """Size of a batch formed from inputs of the given sizes: all equal, or 1 (broadcast).

    ``what`` maps an input's name to its batch size; the error names them so a user knows
    which connection to fix.
    """
    sizes = {name: n for name, n in what.items() if n is not None}
    longest = max(sizes.values(), default=1)
    bad = {name: n for name, n in sizes.items() if n not in (1, longest)}
    if bad or longest == 0:
        listing = ", ".join(f"{name}={n}" for name, n in sizes.items())
        raise BatchSizeError(
            f"batch sizes do not match ({listing}): give every input the same batch size, or a batch of 1 to reuse it for all"
        )
    return longest


def pick(items, i: int):
    """Item ``i`` of a batch that is either full length or a single item reused for all
    (the partner of :func:`paired_batch_size`)."""
    return items[i] if len(items) > 1 else items[0]
