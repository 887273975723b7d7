"""Pure tensor helpers of the InstructPix2Pix edit: batch pairing, crop, mask handling, compositing.

The sampling itself runs in ComfyUI's sampler (nodes/ip2p.py); what is here has no ComfyUI
dependency so it can be tested alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def crop_to_multiple_of_8(pixels: torch.Tensor) -> torch.Tensor:
    """Centre-crop an IMAGE ``(B, H, W, C)`` to sides divisible by 8, exactly as core's
    ``InstructPixToPixConditioning`` does, so both graphs see the same pixels."""
    h, w = (pixels.shape[1] // 8) * 8, (pixels.shape[2] // 8) * 8
    if h == 0 or w == 0:
        raise ValueError(
            f"the image is {pixels.shape[2]}x{pixels.shape[1]} pixels; it must be at least 8x8"
        )
    if (h, w) == tuple(pixels.shape[1:3]):
        return pixels
    y0, x0 = (pixels.shape[1] % 8) // 2, (pixels.shape[2] % 8) // 2
    return pixels[:, y0 : y0 + h, x0 : x0 + w, :]


def prepare_edit_mask(mask: torch.Tensor, batch: int, height: int, width: int) -> torch.Tensor:
    """A ComfyUI MASK ``(B|1, h, w)`` as a float ``(batch, 1, height, width)`` tensor in [0, 1].

    1 = edit here, 0 = keep the input. A mask of another size is resized (bilinear): masks drawn
    on the uncropped image stay aligned because the crop is at most 7 pixels.
    """
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3:
        raise ValueError(f"expected a MASK of shape (B, H, W), got {tuple(mask.shape)}")
    if mask.shape[0] not in (1, batch):
        raise ValueError(
            f"the mask batch has {mask.shape[0]} masks but the image batch has {batch} images: "
            "give one mask for all images or one per image"
        )
    m = mask.float().clamp(0, 1)[:, None]
    if m.shape[-2:] != (height, width):
        m = F.interpolate(m, size=(height, width), mode="bilinear", align_corners=False)
    return m.expand(batch, 1, height, width).contiguous()


def composite_outside_mask(
    edited: torch.Tensor, original: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``edited`` inside the mask, the untouched ``original`` pixels outside it (IMAGE layout).

    Outside the mask the sampler already keeps the input *latent*, but a VAE round trip is not
    the identity, so the input pixels are copied back here: where the mask is 0 the output
    equals the input bit for bit.
    """
    if edited.shape != original.shape:
        raise ValueError(
            f"edited {tuple(edited.shape)} and original {tuple(original.shape)} images differ in size"
        )
    m = mask.to(edited.dtype).movedim(1, -1)  # (B, H, W, 1)
    out = original[..., :3] * (1 - m) + edited[..., :3] * m
    return torch.where(m == 0, original[..., :3], out)
