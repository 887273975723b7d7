"""CLIP score and directional CLIP similarity from embeddings.

The embeddings come from whatever CLIP the caller holds (in ComfyUI: the CLIP_VISION
``image_embeds`` and the text CLIP's pooled output); this module does only the math, so it
is tested with synthetic vectors.

* CLIP score (Hessel et al., torchmetrics ``CLIPScore``): ``100 * max(cos(E_img, E_txt), 0)``.
* Directional CLIP (StyleGAN-NADA, InstructPix2Pix): ``cos(E_img(out) - E_img(src),
  E_txt(target) - E_txt(source))``: did the image move in the direction the text moved?
"""

from __future__ import annotations

import torch


class EmbeddingMismatchError(ValueError):
    """Image and text embeddings of different sizes: the two CLIP models are not a pair."""


EmbeddingMismatchError.__module__ = (
    "poselab"  # shown by ComfyUI as poselab.EmbeddingMismatchError, not a file path
)


def _rows(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(x).double()
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2:
        raise ValueError(f"{name}: expected embeddings of shape (N, D), got {tuple(t.shape)}")
    return t


def check_pair(image_dim: int, text_dim: int) -> None:
    """Raise a clear error when the vision and text embeddings cannot be compared."""
    if image_dim != text_dim:
        raise EmbeddingMismatchError(
            f"the CLIP vision model gives {image_dim}-d image embeddings but the text CLIP gives {text_dim}-d "
            "pooled embeddings: they are not from the same CLIP. Load a matching pair (e.g. ViT-L/14 vision with "
            "an SD1.5 CLIP-L text encoder: 768/768; ViT-bigG vision with SDXL's CLIP-G: 1280/1280)"
        )


def cosine(a, b) -> torch.Tensor:
    """Row-wise cosine similarity ``(N,)``; a batch of 1 broadcasts. NaN where a vector is zero."""
    x, y = _rows(a, "a"), _rows(b, "b")
    check_pair(x.shape[1], y.shape[1])
    if x.shape[0] != y.shape[0]:
        if 1 not in (x.shape[0], y.shape[0]):
            raise ValueError(
                f"embedding batches {x.shape[0]} and {y.shape[0]} differ (give equal batches or 1)"
            )
        n = max(x.shape[0], y.shape[0])
        x, y = x.expand(n, -1), y.expand(n, -1)
    nx, ny = x.norm(dim=1), y.norm(dim=1)
    out = (x * y).sum(1) / (nx * ny)
    return torch.where((nx > 0) & (ny > 0), out, torch.full_like(out, float("nan")))


def clip_score(image_embeds, text_embeds) -> torch.Tensor:
    """``100 * max(cos, 0)`` per image (torchmetrics' CLIPScore convention)."""
    return 100.0 * cosine(image_embeds, text_embeds).clamp_min(0.0)


def directional_similarity(
    src_image_embeds, out_image_embeds, src_text_embeds, tgt_text_embeds
) -> torch.Tensor:
    """``cos(E_img(out) - E_img(src), E_txt(tgt) - E_txt(src))`` per image, in [-1, 1].

    NaN where the image did not change or the two texts embed identically (no direction).
    """
    d_img = _rows(out_image_embeds, "out_image_embeds") - _rows(
        src_image_embeds, "src_image_embeds"
    )
    d_txt = _rows(tgt_text_embeds, "tgt_text_embeds") - _rows(src_text_embeds, "src_text_embeds")
    return cosine(d_img, d_txt)
