"""Segment Anything person masks, prompted with a person's keypoints and box.

Checkpoints are the official ``sam_vit_{b,l,h}_*.pth`` state dicts (or any SAM of the same
layout). The architecture is read from the state dict's shapes, never from the file name, so
renamed or non-standard (e.g. tiny test) checkpoints load too. Loading is weights-only.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass

import numpy as np
import torch

from .masks import body_scale

# The official builds (segment_anything.build_sam): embed dim, depth, heads, global blocks.
KNOWN_TYPES = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}

_CACHE_LOCK = threading.Lock()
_CACHE: dict[tuple[str, float, int], "torch.nn.Module"] = {}


class SamCheckpointError(ValueError):
    """A file that is not a Segment Anything checkpoint this loader understands."""


SamCheckpointError.__module__ = (
    "poselab"  # shown by ComfyUI as poselab.SamCheckpointError, not a file path
)


@dataclass(frozen=True)
class SamConfig:
    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]

    @property
    def model_type(self) -> str:
        """``vit_b``/``vit_l``/``vit_h`` for the official shapes, else ``custom``."""
        for name, spec in KNOWN_TYPES.items():
            if spec == (self.embed_dim, self.depth, self.num_heads, self.global_attn_indexes):
                return name
        return "custom"


def _unwrap(state: object, path: str) -> dict[str, torch.Tensor]:
    if isinstance(state, dict):
        for key in ("model", "state_dict"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SamCheckpointError(
            f"{os.path.basename(path)}: not a state dict of tensors; expected a Segment Anything checkpoint such as sam_vit_b_01ec64.pth"
        )
    return state


def infer_sam_config(state: dict[str, torch.Tensor]) -> SamConfig:
    """Encoder width, depth, heads and global-attention blocks from the state dict's shapes."""
    try:
        embed_dim = int(state["image_encoder.patch_embed.proj.weight"].shape[0])
        pos = state["image_encoder.pos_embed"]
    except KeyError as exc:
        raise SamCheckpointError(
            f"missing key {exc.args[0]}: this is not a Segment Anything (ViT image encoder) checkpoint"
        ) from None
    if tuple(pos.shape[1:3]) != (64, 64):
        raise SamCheckpointError(
            f"image encoder grid {tuple(pos.shape[1:3])} is not 64x64: only the 1024-px SAM layout is supported"
        )
    blocks = sorted(
        {int(m.group(1)) for k in state if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k))}
    )
    if not blocks or blocks != list(range(len(blocks))):
        raise SamCheckpointError("the image encoder's blocks are missing or not numbered 0..N-1")
    heads, global_idx = None, []
    for i in blocks:
        rel = state.get(f"image_encoder.blocks.{i}.attn.rel_pos_h")
        if rel is None:
            raise SamCheckpointError(
                f"block {i} has no relative position table: SAM checkpoints use rel_pos"
            )
        # rel_pos_h is (2 * size - 1, head_dim): size 64 (the whole grid) marks a global block,
        # the 14-px windows give 27 rows.
        if rel.shape[0] == 2 * 64 - 1:
            global_idx.append(i)
        heads = embed_dim // int(rel.shape[1])
    return SamConfig(embed_dim, len(blocks), int(heads), tuple(global_idx))


def load_sam(path: str) -> torch.nn.Module:
    """A SAM model (eval, CPU) from a checkpoint, cached by path and modification time."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_mtime, stat.st_size)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        from segment_anything import sam_model_registry
        from segment_anything.build_sam import _build_sam

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle errors, truncated files
            raise SamCheckpointError(
                f"{os.path.basename(path)}: cannot be read as a weights-only torch checkpoint ({exc})"
            ) from None
        state = _unwrap(state, path)
        cfg = infer_sam_config(state)
        if cfg.model_type in sam_model_registry:
            model = sam_model_registry[cfg.model_type](checkpoint=None)
        else:
            model = _build_sam(
                encoder_embed_dim=cfg.embed_dim,
                encoder_depth=cfg.depth,
                encoder_num_heads=cfg.num_heads,
                encoder_global_attn_indexes=list(cfg.global_attn_indexes),
                checkpoint=None,
            )
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise SamCheckpointError(
                f"{os.path.basename(path)}: does not match the SAM layout inferred from it ({cfg}): {str(exc)[:300]}"
            ) from None
        model.eval()
        _CACHE.clear()  # one SAM at a time: they are large
        _CACHE[key] = model
        return model


def sam_prompts(
    bodies: list[np.ndarray], index: int, height: int, width: int, margin: float = 0.25
):
    """Positive points (the person's visible joints), negative points (other people's joints
    that lie outside this person's box) and an XYXY box around the person, grown by ``margin``
    torso scales so hair, hands and feet beyond the joints fit in."""
    body = np.asarray(bodies[index], np.float32)
    vis = body[:, 2] > 0
    if not vis.any():
        raise ValueError(
            f"person {index} has no visible keypoints to prompt SAM with; pick another person index"
        )
    pts = body[vis, :2]
    grow = margin * max(body_scale(body), 8.0)
    x0, y0 = pts.min(axis=0) - grow
    x1, y1 = pts.max(axis=0) + grow
    box = np.array([max(x0, 0), max(y0, 0), min(x1, width - 1), min(y1, height - 1)], np.float32)
    coords, labels = [pts], [np.ones(len(pts), np.int64)]
    for j, other in enumerate(bodies):
        if j == index:
            continue
        o = np.asarray(other, np.float32)
        o = o[o[:, 2] > 0, :2]
        inside = (
            (o[:, 0] >= box[0]) & (o[:, 0] <= box[2]) & (o[:, 1] >= box[1]) & (o[:, 1] <= box[3])
        )
        if (~inside).any():
            coords.append(o[~inside])
            labels.append(np.zeros(int((~inside).sum()), np.int64))
    return np.concatenate(coords).astype(np.float32), np.concatenate(labels), box


@torch.no_grad()
def sam_person_mask(
    model: torch.nn.Module, image: np.ndarray, bodies: list[np.ndarray], index: int
) -> np.ndarray:
    """Float32 ``(H, W)`` {0, 1} mask of person ``index`` of ``bodies`` in an RGB uint8 image."""
    from segment_anything import SamPredictor

    image = np.ascontiguousarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}"
        )
    if not 0 <= index < len(bodies):
        raise ValueError(
            f"person index {index} is out of range: the pose has {len(bodies)} people (use 0..{len(bodies) - 1})"
        )
    H, W = image.shape[:2]
    coords, labels, box = sam_prompts(bodies, index, H, W)
    predictor = SamPredictor(model)
    predictor.set_image(image)
    masks, scores, _ = predictor.predict(
        point_coords=coords, point_labels=labels, box=box, multimask_output=True
    )
    best = int(np.argmax(scores))
    return masks[best].astype(np.float32)
