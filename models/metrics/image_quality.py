"""SSIM (Gaussian window), masked SSIM and PSNR, vectorised in torch over a batch.

SSIM follows scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, channel_axis=-1)``, the protocol of the pose-transfer papers
(PG2, Deformable GAN): an 11-tap Gaussian (truncate 3.5), population covariances, the SSIM
map averaged per channel after cropping the 5-pixel border the window cannot fill, then
averaged over channels. Borders are padded symmetrically (scipy's ``mode="reflect"``) so the
full map equals scikit-image's ``full=True`` map, which masked SSIM needs near the edges.

Images are float tensors ``(B, H, W, C)`` (ComfyUI's layout) in ``[0, data_range]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

K1, K2 = 0.01, 0.03
SIGMA = 1.5
TRUNCATE = 3.5
# Identical images have infinite PSNR. Numbers (JSON, CSV) keep inf; FLOAT outputs, which
# downstream nodes may do arithmetic on, get this cap instead (documented in the node).
PSNR_CAP_DB = 100.0


def gaussian_kernel1d(
    sigma: float = SIGMA, truncate: float = TRUNCATE, dtype=torch.float64
) -> torch.Tensor:
    """scipy.ndimage's Gaussian taps: radius ``int(truncate * sigma + 0.5)``, normalised."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def _symmetric_pad(x: torch.Tensor, r: int) -> torch.Tensor:
    """Pad the last two dims by ``r`` repeating the edge sample (scipy 'reflect', numpy 'symmetric')."""
    h, w = x.shape[-2:]

    def idx(n):
        i = torch.arange(-r, n + r)
        period = 2 * n
        i = torch.remainder(i, period)
        return torch.where(i >= n, period - 1 - i, i)

    return x[..., idx(h)[:, None], idx(w)[None, :]]


def _to_bchw(img: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(img, torch.Tensor):
        img = torch.as_tensor(img)
    if img.ndim == 3:
        img = img[None]
    if img.ndim != 4:
        raise ValueError(f"{name}: expected images of shape (B, H, W, C), got {tuple(img.shape)}")
    return img.permute(0, 3, 1, 2)


def _pair(a, b) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _to_bchw(a, "image_a"), _to_bchw(b, "image_b")
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(
            f"images must have the same size and channels to be compared, got {tuple(x.shape[1:])} and "
            f"{tuple(y.shape[1:])} (C, H, W): resize one of them first"
        )
    if x.shape[0] != y.shape[0]:
        if 1 not in (x.shape[0], y.shape[0]):
            raise ValueError(
                f"batch sizes {x.shape[0]} and {y.shape[0]} differ: give equal batches, or a batch of 1"
            )
        n = max(x.shape[0], y.shape[0])
        x, y = x.expand(n, -1, -1, -1), y.expand(n, -1, -1, -1)
    return x, y


def _ssim_core(a, b, data_range: float, sigma: float, dtype, pad: bool) -> torch.Tensor:
    x, y = _pair(a, b)
    x, y = x.to(dtype), y.to(dtype)
    c = x.shape[1]
    k = gaussian_kernel1d(sigma, dtype=dtype)
    r = (k.numel() - 1) // 2
    h, w = x.shape[-2:]
    if min(h, w) < k.numel():
        raise ValueError(
            f"images of {h}x{w} are smaller than the {k.numel()}x{k.numel()} SSIM window"
        )
    # One depthwise 11x11 pass for the moments of all channels, in channels-last layout:
    # oneDNN's depthwise convolution is several times faster there than in NCHW (and than
    # two separable 1-D passes) on the CPU. The moments are stacked along the batch axis, so
    # each comes back as one dense block and the formula below runs on contiguous memory.
    # The formula only needs vx + vy, so x² + y² is filtered as one moment (the filter is
    # linear): four moments instead of five.
    stack = torch.cat([x, y, x * x + y * y, x * y], dim=0)
    if pad:
        stack = _symmetric_pad(stack, r)
    k2 = (k[:, None] * k[None, :]).expand(c, 1, -1, -1).contiguous()
    stack = F.conv2d(stack.contiguous(memory_format=torch.channels_last), k2, groups=c)
    ux, uy, uxx_yy, uxy = stack.chunk(4, dim=0)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    # In-place steps: fewer full-size temporaries on big batches.
    uxuy, u2 = ux * uy, ux * ux + uy * uy
    num = (2 * uxuy + c1).mul_((uxy - uxuy).mul_(2).add_(c2))  # (2 ux uy + C1)(2 cov_xy + C2)
    den = (u2 + c1).mul_((uxx_yy - u2).add_(c2))  # (ux² + uy² + C1)(vx + vy + C2)
    return num.div_(den)


def ssim_map(
    a, b, data_range: float = 1.0, sigma: float = SIGMA, dtype=torch.float32
) -> torch.Tensor:
    """Per-pixel, per-channel SSIM ``(B, C, H, W)``; equals scikit-image's ``full=True`` map."""
    return _ssim_core(a, b, data_range, sigma, dtype, pad=True)


def ssim(a, b, data_range: float = 1.0, sigma: float = SIGMA, dtype=torch.float32) -> torch.Tensor:
    """Mean SSIM per image ``(B,)``, as scikit-image computes it (border of the window radius cropped).

    The cropped border is exactly what an unpadded ("valid") filter leaves out, so no padding
    is computed here. float32 stays within 1e-6 of scikit-image's float64 on [0, 1] images
    (tested); pass ``dtype=torch.float64`` for bit-level agreement.
    """
    x, y = _pair(a, b)
    # Chunks of about 4 M values keep the five-moment stack in memory bounds for big batches.
    step = max(1, (1 << 22) // max(1, x[0].numel()))
    return torch.cat(
        [
            _ssim_core(
                x[i : i + step].permute(0, 2, 3, 1),
                y[i : i + step].permute(0, 2, 3, 1),
                data_range,
                sigma,
                dtype,
                pad=False,
            ).mean(dim=(1, 2, 3), dtype=torch.float64)
            for i in range(0, x.shape[0], step)
        ]
    )


def masked_ssim(
    a, b, mask, data_range: float = 1.0, sigma: float = SIGMA, dtype=torch.float32
) -> torch.Tensor:
    """Mean of the SSIM map inside ``mask`` (``(B, H, W)`` weights in [0, 1]), per image ``(B,)``.

    The whole map is used (no border crop), so a mask touching the edge still counts there.
    An empty mask gives NaN: there is nothing to compare.
    """
    s = ssim_map(a, b, data_range, sigma, dtype).double().mean(dim=1)  # over channels
    m = torch.as_tensor(mask).double()
    if m.ndim == 2:
        m = m[None]
    if m.ndim == 4 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 3 or m.shape[-2:] != s.shape[-2:]:
        raise ValueError(
            f"mask: expected shape (B, {s.shape[-2]}, {s.shape[-1]}) matching the images, got {tuple(m.shape)}"
        )
    if m.shape[0] != s.shape[0]:
        if m.shape[0] != 1:
            raise ValueError(
                f"mask batch {m.shape[0]} does not match image batch {s.shape[0]} (give equal batches, or 1 mask)"
            )
        m = m.expand(s.shape[0], -1, -1)
    total = m.sum(dim=(1, 2))
    out = (s * m).sum(dim=(1, 2)) / total.clamp_min(1e-12)
    return torch.where(total > 0, out, torch.full_like(out, float("nan")))


def psnr(a, b, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image ``(B,)``: ``10 log10(R^2 / MSE)``; identical images give ``inf``."""
    x, y = _pair(a, b)
    # float32 differences (exact enough for 8-bit data), accumulated in float64
    mse = ((x.float() - y.float()) ** 2).mean(dim=(1, 2, 3), dtype=torch.float64)
    with torch.no_grad():
        out = 10.0 * torch.log10(data_range**2 / mse)  # mse 0 -> inf, the honest value
    return out


def capped(value: float, cap: float = PSNR_CAP_DB) -> float:
    """A finite stand-in for an infinite PSNR, for FLOAT outputs (NaN stays NaN)."""
    if math.isinf(value):
        return cap if value > 0 else -cap
    return float(value)
