"""Stable-Pose's pose masks (docs/methods.md §C.2), in plain PyTorch.

The skeleton image (black background) is blurred with Gaussians of growing reach; every latent
cell that contains a pixel the blur touched belongs to the pose. The wide (kernel 23) mask gates
the first PMSA-ViT layer and the narrow (kernel 13) one the second: coarse to fine. The fine mask
also weights the training loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

KERNELS = (23, 13)
SIGMA = 3.0
# A blurred pixel belongs to the pose when it is brighter than this, on the [-1, 1] scale. The
# reference code marks anything above -1 when training (every pixel the kernel reaches) and above
# -0.99 when evaluating (a visible glow), so inference masks are a little tighter.
TRAIN_THRESHOLD = -1.0
INFER_THRESHOLD = -0.99


def gaussian_kernel1d(size: int, sigma: float) -> torch.Tensor:
    half = (size - 1) / 2.0
    x = torch.linspace(-half, half, size)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(image: torch.Tensor, size: int, sigma: float = SIGMA) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` with reflected borders (torchvision's rule)."""
    if size % 2 != 1:
        raise ValueError(f"Gaussian kernel size must be odd, got {size}")
    c = image.shape[1]
    k = gaussian_kernel1d(size, sigma).to(image)
    pad = size // 2
    x = F.pad(image, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, size).expand(c, 1, 1, size), groups=c)
    return F.conv2d(x, k.view(1, 1, size, 1).expand(c, 1, size, 1), groups=c)


def pose_masks(
    pose_image: torch.Tensor, kernels=KERNELS, threshold: float = INFER_THRESHOLD, cell: int = 8
) -> torch.Tensor:
    """Latent-grid pose masks, ``bool (B, len(kernels), H // cell, W // cell)``, coarse first.

    ``pose_image``: ``(B, 3, H, W)`` skeleton image in [-1, 1] (background -1), H and W multiples
    of ``cell`` (the VAE's downscale).
    """
    b, _, h, w = pose_image.shape
    if h % cell or w % cell:
        raise ValueError(f"pose image {w}x{h} is not a multiple of the latent cell ({cell} px)")
    # Blur the height above the black background, not the image: a float32 blur of a constant -1
    # comes out ~1e-7 above -1 (the kernel sums to 1 only up to rounding), which the train
    # threshold (> -1) would read as pose everywhere. Zeros blur to exact zeros.
    above = pose_image.float() + 1
    out = []
    for size in kernels:
        lit = (gaussian_blur(above, size) > threshold + 1).any(dim=1, keepdim=True)
        out.append(F.max_pool2d(lit.float(), cell) > 0)  # a cell is in if any of its pixels is
    return torch.cat(out, dim=1)


def token_attention_mask(mask: torch.Tensor, patch: int = 2) -> torch.Tensor:
    """Which token pairs may attend: ``bool (B, N, N)`` for a ``(B, h, w)`` latent-grid mask.

    A token is a pose token if any of its ``patch x patch`` latent cells is; a pair (i, j) is open
    when i or j is a pose token, so background tokens talk to the pose but not to each other.
    """
    tokens = F.max_pool2d(mask.float().unsqueeze(1), patch).flatten(1) > 0  # (B, N)
    return tokens.unsqueeze(2) | tokens.unsqueeze(1)
