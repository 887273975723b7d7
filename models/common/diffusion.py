"""Diffusion arithmetic shared by the trainers."""

from __future__ import annotations

import torch


def ddpm_noise(
    x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    """The forward process q(x_t | x_0) = sqrt(a_t) x0 + sqrt(1 - a_t) eps."""
    a = alphas_cumprod.to(x0.device, torch.float32)[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise
