"""DDIM inversion and null-text inversion (Mokady et al., CVPR 2023), in ComfyUI's sigma space.

ComfyUI's EPS models work on ``x = x0 + sigma * eps`` (``x = x_ddpm / sqrt(alpha_bar)``). In that
parametrisation a deterministic DDIM step is exactly an Euler step, ``x' = x + (sigma' - sigma) eps``,
so sampling here is ComfyUI's ``euler``/``ddim`` step and inversion is the same step run upwards,
with the usual DDIM-inversion approximation eps(x_{k+1}, sigma_k) ~ eps(x_k, sigma_k).

The model arrives as ``denoise(x, sigma, context) -> x0`` (ComfyUI's ``apply_model``), so this file
has no ComfyUI import. Latents are batched; contexts are ``(B, tokens, C)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

Denoiser = Callable[[torch.Tensor, float, torch.Tensor], torch.Tensor]


def eps_of(denoise: Denoiser, x: torch.Tensor, sigma: float, context: torch.Tensor) -> torch.Tensor:
    return (x - denoise(x, sigma, context)) / sigma


def cfg_eps(
    denoise: Denoiser,
    x: torch.Tensor,
    sigma: float,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    guidance: float,
) -> torch.Tensor:
    """eps_u + w (eps_c - eps_u), both branches in one batch [uncond rows, cond rows]."""
    b = x.shape[0]
    eps = eps_of(
        denoise,
        torch.cat([x, x]),
        sigma,
        torch.cat([uncond.expand(b, -1, -1), cond.expand(b, -1, -1)]),
    )
    eu, ec = eps[:b], eps[b:]
    return eu + guidance * (ec - eu)


@dataclass
class Inversion:
    """What the edit nodes consume: the latent trajectory and everything needed to replay it."""

    latents: list[
        torch.Tensor
    ]  # latents[k] at sigmas[k]; latents[0] the noisiest, latents[-1] = z0
    sigmas: torch.Tensor  # (steps + 1,) descending, last = 0
    cond: torch.Tensor  # (B|1, tokens, C) source prompt embedding
    uncond: list[torch.Tensor]  # per sampling step: (B|1, tokens, C) unconditional embedding
    guidance: float
    prompt: str = ""
    null_text: bool = False
    info: dict = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1


def ddim_invert(
    denoise: Denoiser,
    z0: torch.Tensor,
    sigmas: torch.Tensor,
    cond: torch.Tensor,
    on_step: Callable[[int], None] | None = None,
) -> list[torch.Tensor]:
    """The DDIM inversion trajectory (conditional branch only, w = 1), noisiest latent first."""
    if sigmas.ndim != 1 or len(sigmas) < 2 or float(sigmas[-1]) != 0.0:
        raise ValueError("sigmas must be a descending schedule ending in 0")
    x = z0
    traj = [z0]
    n = len(sigmas) - 1
    for k in range(n - 1, -1, -1):
        s, s_low = float(sigmas[k]), float(sigmas[k + 1])
        x = x + (s - s_low) * eps_of(denoise, x, s, cond.expand(x.shape[0], -1, -1))
        traj.insert(0, x)
        if on_step:
            on_step(n - k)
    return traj


def sample(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    cond: torch.Tensor,
    uncond: list[torch.Tensor],
    guidance: float,
    on_step: Callable[[int, torch.Tensor], torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """Deterministic DDIM (= Euler) sampling with a per-step unconditional embedding."""
    for k in range(len(sigmas) - 1):
        s, s_next = float(sigmas[k]), float(sigmas[k + 1])
        x = x + (s_next - s) * cfg_eps(denoise, x, s, cond, uncond[k], guidance)
        if on_step:
            replaced = on_step(k, x)  # e.g. local blending may return a modified latent
            x = x if replaced is None else replaced
    return x


def _ddpm(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Sigma-space latent back to the DDPM scale, where the paper's loss thresholds apply."""
    return x / (1.0 + sigma * sigma) ** 0.5


def null_text_optimize(
    denoise: Denoiser,
    traj: list[torch.Tensor],
    sigmas: torch.Tensor,
    cond: torch.Tensor,
    uncond_init: torch.Tensor,
    guidance: float,
    inner_steps: int = 10,
    early_stop: bool = True,
    lr: float = 1e-2,
    on_step: Callable[[int, int, float], None] | None = None,
    grad_denoise: Denoiser | None = None,
) -> tuple[list[torch.Tensor], list[float]]:
    """Per-step unconditional embeddings that make CFG sampling retrace ``traj``.

    As in the paper's code: a fresh Adam per step with lr ``1e-2 (1 - i/100)`` (i scaled to 50
    steps), up to ``inner_steps`` iterations, early stop when the loss is below
    ``1e-5 + i * 2e-5``; the conditional prediction is computed once per step without gradient.
    ``grad_denoise`` is the differentiable model (defaults to ``denoise``). Returns the
    embeddings and the final loss of every step.
    """
    grad_denoise = grad_denoise or denoise
    n = len(sigmas) - 1
    if len(traj) != n + 1:
        raise ValueError(f"the trajectory has {len(traj)} latents for {n} steps; expected {n + 1}")
    scale = 50.0 / n  # the paper's schedule is written for 50 steps
    b = traj[0].shape[0]
    uncond = uncond_init.detach().clone().expand(b, -1, -1).contiguous()
    x = traj[0]
    out, losses = [], []
    for i in range(n):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        target = _ddpm(traj[i + 1], s_next)
        with torch.no_grad():
            eps_c = eps_of(denoise, x, s, cond.expand(b, -1, -1))
        u = uncond.detach().clone().float().requires_grad_(True)
        opt = torch.optim.Adam([u], lr=lr * (1.0 - i * scale / 100.0))
        threshold = 1e-5 + i * scale * 2e-5
        loss_v = float("nan")
        with torch.enable_grad():
            for j in range(inner_steps):
                eps_u = eps_of(grad_denoise, x, s, u)
                eps = eps_u + guidance * (eps_c - eps_u)
                loss = torch.nn.functional.mse_loss(
                    _ddpm(x + (s_next - s) * eps, s_next).float(), target.float()
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_v = float(loss.detach())
                if on_step:
                    on_step(i, j, loss_v)
                if early_stop and loss_v < threshold:
                    break
        uncond = u.detach()
        out.append(uncond.clone())
        losses.append(loss_v)
        with torch.no_grad():
            x = x + (s_next - s) * cfg_eps(denoise, x, s, cond, uncond, guidance)
    return out, losses


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> float:
    mse = float(torch.mean((a.float() - b.float()) ** 2))
    return (
        float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(data_range**2 / mse)).item()
    )
