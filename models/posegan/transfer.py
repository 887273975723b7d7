"""Pose transfer of a real photo with a trained generator: crop, generate, paste back.

The generator works at its training size (128x64, 256x256, ...), while photos are larger and
the person is anywhere in them. So:

1. The target pose is brought into the source canvas. When both poses share a canvas size
   (a pose edited from the same photo) it is used as is; otherwise (a pose taken from another
   picture) it is scaled so its torso matches the source person's and moved so the hip centres
   (else the joint centroids) coincide.
2. One crop box, with the model's aspect ratio, covers the source and target joints with a
   margin (head room above the top joint); both poses and the photo are mapped into it with the
   same affine, so the background stays put, as the model saw in training.
3. The generator produces the crop. ``output="crop"`` returns it at the model's size;
   ``output="paste"`` resizes it back into the crop box of the photo with a feathered border
   (the whole box is replaced, so the person in the old pose disappears with it).

The returned mask is the union of the target's part masks (torso polygon, head box, limb
rectangles of ``parts.part_masks``) in the returned frame: it shows where the model was asked
to put the person.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..pose import parts
from ..pose.keypoints import J
from .dataset import image_to_tensor, pose_inputs, tensor_to_image
from .networks import Generator
from .trainer import generate

log = logging.getLogger("poselab")

OUTPUTS = ("crop", "paste")
HEAD_ROOM = 0.12  # of the crop height above the top joint: the joints stop at the eyes/ears
MARGIN = 0.08


def _present(body: np.ndarray) -> np.ndarray:
    return body[body[:, 2] > 0, :2]


def _anchor(body: np.ndarray) -> np.ndarray:
    hips = [J["right_hip"], J["left_hip"]]
    if all(body[j, 2] > 0 for j in hips):
        return body[hips, :2].mean(0)
    return _present(body).mean(0)


def target_in_source_canvas(src_body, tgt_body, src_size, tgt_size) -> np.ndarray:
    """The target pose in the source canvas (see module docstring, step 1)."""
    tgt = np.asarray(tgt_body, np.float32).copy()
    if tuple(src_size) == tuple(tgt_size):
        return tgt
    s_src, s_tgt = parts.torso_scale(src_body), parts.torso_scale(tgt)
    scale = s_src / s_tgt if s_src > 0 and s_tgt > 0 else 1.0
    present = tgt[:, 2] > 0
    shift = _anchor(np.asarray(src_body, np.float32)) - _anchor(tgt) * scale
    tgt[present, :2] = tgt[present, :2] * scale + shift
    return tgt


def crop_box(
    src_body: np.ndarray, tgt_body: np.ndarray, model_size: tuple[int, int]
) -> tuple[float, float, float, float]:
    """``(x0, y0, w, h)`` in source pixels with the model's aspect, covering both poses."""
    mh, mw = model_size
    pts = np.concatenate([_present(src_body), _present(tgt_body)])
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    bw, bh = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    h_req = bh / (1 - HEAD_ROOM - MARGIN)
    h = max(h_req, bw / (1 - 2 * MARGIN) * mh / mw)
    w = h * mw / mh
    cx = (x0 + x1) / 2
    top = y0 - h * HEAD_ROOM - (h - h_req) / 2  # a width-limited box is centred vertically
    return float(cx - w / 2), float(top), float(w), float(h)


def _box_affine(box, model_size) -> np.ndarray:
    """2x3 affine mapping source pixels to model pixels (integer pixel centres in both)."""
    x0, y0, w, h = box
    mh, mw = model_size
    sx, sy = mw / w, mh / h
    return np.array([[sx, 0, (0.5 - x0) * sx - 0.5], [0, sy, (0.5 - y0) * sy - 0.5]], np.float64)


def _map_body(body: np.ndarray, affine: np.ndarray) -> np.ndarray:
    out = np.asarray(body, np.float32).copy()
    p = out[:, 2] > 0
    out[p, :2] = out[p, :2] @ affine[:, :2].T.astype(np.float32) + affine[:, 2].astype(np.float32)
    return out


@dataclass
class TransferResult:
    image: np.ndarray  # uint8 (H, W, 3)
    mask: np.ndarray  # float32 (H, W)
    box: tuple[float, float, float, float] | None  # crop box in source pixels


@torch.no_grad()
def transfer_one(
    gen: Generator,
    source: np.ndarray,
    src_body: np.ndarray,
    tgt_body: np.ndarray,
    tgt_canvas: tuple[int, int] | None = None,
    output: str = "paste",
    feather: float = 0.04,
) -> TransferResult:
    """Repose the person ``src_body`` of ``source`` (uint8 RGB) into ``tgt_body``.

    ``tgt_canvas=(w, h)`` is the canvas the target pose refers to (default: the source's)."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    cfg = gen.config
    mh, mw = cfg.image_size
    ih, iw = source.shape[:2]
    src_body = np.asarray(src_body, np.float32)
    tgt = target_in_source_canvas(src_body, tgt_body, (iw, ih), tgt_canvas or (iw, ih))
    if len(_present(src_body)) < 2 or len(_present(tgt)) < 2:
        raise ValueError(
            "pose transfer needs at least two joints in both the source and the target pose"
        )
    box = crop_box(src_body, tgt, (mh, mw))
    affine = _box_affine(box, (mh, mw))
    crop = cv2.warpAffine(
        source,
        affine,
        (mw, mh),
        flags=cv2.INTER_AREA if box[3] > mh else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    s_m, t_m = _map_body(src_body, affine), _map_body(tgt, affine)
    sample = pose_inputs(s_m, t_m, cfg)
    sample["x_a"] = image_to_tensor(crop)
    device = next(gen.parameters()).device
    batch = {k: v[None].to(device) for k, v in sample.items()}
    gen.eval()
    fake = tensor_to_image(generate(gen, batch)[0])
    _, valid = parts.part_affines(s_m, t_m)
    union = parts.part_masks(t_m, mh, mw, torso="polygon", valid=valid).max(0)
    if output == "crop":
        return TransferResult(fake, union, box)
    inv = cv2.invertAffineTransform(affine)
    back = cv2.warpAffine(
        fake, inv, (iw, ih), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    # feathered rectangle: 1 inside the box, ramping to 0 over `feather` of the box size
    ramp = np.ones((mh, mw), np.float32)
    fy, fx = max(int(round(mh * feather)), 1), max(int(round(mw * feather)), 1)
    ry = np.minimum(np.arange(mh) + 1, np.arange(mh)[::-1] + 1) / fy
    rx = np.minimum(np.arange(mw) + 1, np.arange(mw)[::-1] + 1) / fx
    ramp = np.clip(np.minimum(ry[:, None], rx[None, :]), 0, 1).astype(np.float32)
    alpha = cv2.warpAffine(ramp, inv, (iw, ih), flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
    out = source.astype(np.float32) * (1 - alpha) + back.astype(np.float32) * alpha
    mask = cv2.warpAffine(union, inv, (iw, ih), flags=cv2.INTER_NEAREST, borderValue=0)
    return TransferResult(np.clip(out + 0.5, 0, 255).astype(np.uint8), mask, box)
