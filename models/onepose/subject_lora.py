"""OnePoseTrans's one-shot subject LoRA (docs/methods.md §E.2), the parts that are not the LoRA loop itself.

The loop is models/common/lora_training.py's (plain epsilon-MSE when there is no source latent).
Here: the training views of the single source photo and the per-block LoRA strengths used at
inference (§E.3/E.5).

* Views: the segmented person (the reference trains on ``foreground.png``) with the short side
  resized to the training size and a random square crop; a batch is the same photo under
  different crops. The crops are drawn once and VAE-encoded once, then sampled by the loop.
* Block weights: the reference loads the LoRA at 0.2 everywhere except SDXL's
  ``up_blocks.0.attentions.1`` (ComfyUI: ``output_blocks.1.1``) at 1.0, the InstantStyle
  "layout" block, so the LoRA carries the subject's look without pinning the source pose. SD1.5
  has no attention in ``up_blocks.0``; the same role is taken here by ``up_blocks.1.attentions.1``
  (``output_blocks.4.1``), the second attention of the first decoder level that has attention.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

LAYOUT_BLOCK = {"sdxl": "output_blocks.1.1.", "sd15": "output_blocks.4.1."}
# The same block under the diffusers name (kohya/peft LoRA files name modules that way).
_DIFFUSERS_NAME = {
    "output_blocks.1.1.": "up_blocks.0.attentions.1.",
    "output_blocks.4.1.": "up_blocks.1.attentions.1.",
}
GREY = (127, 127, 127)


def foreground_on(image: np.ndarray, mask: np.ndarray | None, colour=GREY) -> np.ndarray:
    """The person over a flat colour (``mask`` 1 = person, soft edges blend), uint8 RGB."""
    if mask is None:
        return image
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask {mask.shape} and image {image.shape[:2]} differ in size")
    m = np.clip(mask.astype(np.float32), 0, 1)[..., None]
    return (
        (image.astype(np.float32) * m + np.asarray(colour, np.float32) * (1 - m))
        .round()
        .astype(np.uint8)
    )


def random_square_crops(image: np.ndarray, size: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` views ``uint8 (count, size, size, 3)``: short side resized to ``size``, random crop."""
    if size < 8 or count < 1:
        raise ValueError("crop size must be >= 8 and count >= 1")
    h, w = image.shape[:2]
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    resized = cv2.resize(
        image, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    )
    rng = np.random.default_rng(seed)
    out = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        y = int(rng.integers(0, nh - size + 1))
        x = int(rng.integers(0, nw - size + 1))
        out[i] = resized[y : y + size, x : x + size]
    return out


def layout_key_forms(prefix: str) -> tuple[str, ...]:
    """How a LoRA file may spell the block: ComfyUI/LDM (``output_blocks.1.1.``), diffusers
    (``up_blocks.0.attentions.1.``) and kohya's underscore forms of both."""
    forms = [prefix, _DIFFUSERS_NAME.get(prefix, prefix)]
    return tuple(forms + ["lora_unet_" + f.replace(".", "_") for f in forms])


def block_weighted(
    lora_sd: dict[str, torch.Tensor], base: float, layout_prefix: str | None, layout: float = 1.0
) -> dict[str, torch.Tensor]:
    """Scale every LoRA delta by ``base``, the ones in the ``layout_prefix`` block by ``layout``
    instead. The scale goes on the up (B) matrix, so ``alpha`` and the down matrix are untouched."""
    forms = layout_key_forms(layout_prefix) if layout_prefix else ()
    out = {}
    for k, v in lora_sd.items():
        if k.endswith((".lora_up.weight", ".lora_B.weight")):
            name = (
                k.split("diffusion_model.", 1)[-1]
                .removeprefix("unet.")
                .removeprefix("base_model.model.")
            )
            v = v * (layout if any(name.startswith(f) for f in forms) else base)
        out[k] = v
    return out
