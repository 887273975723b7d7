"""Held-out evaluation of a trained generator against the two baselines it must beat.

* ``identity``: the output is the source image (no repose at all);
* ``part_warp``: the classical repose of ``models/repose/part_warp.py`` (ten part affines over
  an inpainted background), given the exact source person mask when the data has one
  (synthetic pairs), otherwise the union of the source part masks;
* ``model``: the generator at its own size.

Scores (paper protocol where it applies): SSIM with Gaussian weights sigma 1.5 (skimage,
population covariance, data range 255) and the mean absolute error in [0, 1] ("L1"), both
on whole images at the model's size, averaged over the pairs.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..pose import parts
from ..repose import part_warp
from .checkpoint import load_model
from .dataset import SampleCache, resize_pair_item
from .trainer import predict, score

METHODS = ("identity", "part_warp", "model")


def _source_mask(dataset, i: int, src_body: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    pairs = getattr(dataset, "pairs", None)
    if pairs is not None and getattr(pairs[i], "source_mask", None) is not None:
        m = pairs[i].source_mask
        if m.shape == size:
            return m
    h, w = size
    return parts.part_masks(src_body, h, w, torso="polygon").max(0)


def compare(model, dataset, indices: Sequence[int], device="cpu") -> dict:
    """``{"identity": {...}, "part_warp": {...}, "model": {...}}`` with ssim/l1/n each.
    ``model`` is a Generator or a checkpoint path."""
    if isinstance(model, (str, os.PathLike)):
        model, _ = load_model(model, device)
    cfg = model.config
    size = cfg.image_size
    sources, targets, warped = [], [], []
    for i in indices:
        src, src_body, tgt, tgt_body = dataset[i]
        src, src_body = resize_pair_item(src, src_body, size)
        tgt, tgt_body = resize_pair_item(tgt, tgt_body, size)
        sources.append(src)
        targets.append(tgt)
        mask = _source_mask(dataset, i, src_body, size)
        warped.append(part_warp.repose_person(src, src_body, tgt_body, mask).image)
    outputs = predict(model, SampleCache(dataset, cfg), list(indices), device=device)
    return {
        "identity": score(sources, targets),
        "part_warp": score(warped, targets),
        "model": score(outputs, targets),
    }


def format_table(table: dict) -> str:
    lines = [
        "| method | SSIM (higher is better) | L1 (lower is better) | pairs |",
        "|---|---|---|---|",
    ]
    for m in METHODS:
        if m in table:
            r = table[m]
            lines.append(f"| {m} | {r['ssim']:.4f} | {r['l1']:.4f} | {r['n']} |")
    return "\n".join(lines)
