"""DDIM / null-text inversion on a small differentiable stand-in for the UNet (the ComfyUI UNet is
exercised in tests/integration/test_editing_server.py)."""

import pytest
import torch
from torch import nn

from poselab.models.editing import inversion


class TinyEps(nn.Module):
    def __init__(self, c=4, ctx=8):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(16, c, 3, 3, generator=g) * 0.05)
        self.w2 = nn.Parameter(torch.randn(c, 16, 3, 3, generator=g) * 0.05)
        self.ctx = nn.Parameter(torch.randn(ctx, 16, generator=g) * 0.5)

    def denoise(self, x, sigma, context):
        h = torch.nn.functional.conv2d(x / (1 + sigma**2) ** 0.5, self.w1, padding=1)
        h = torch.tanh(h + (context.mean(1) @ self.ctx)[:, :, None, None] + sigma / 10)
        return x - sigma * torch.nn.functional.conv2d(h, self.w2, padding=1)


def schedule(n=10):
    return torch.cat([torch.linspace(8.0, 0.1, n), torch.zeros(1)])


def setup():
    net = TinyEps()
    g = torch.Generator().manual_seed(1)
    z0 = torch.randn(1, 4, 8, 8, generator=g)
    cond, null = torch.randn(1, 5, 8, generator=g), torch.zeros(1, 5, 8)
    return net, z0, cond, null


def test_ddim_inversion_round_trip_at_guidance_one():
    net, z0, cond, null = setup()
    sig = schedule(20)
    with torch.no_grad():
        traj = inversion.ddim_invert(net.denoise, z0, sig, cond)
        assert len(traj) == 21 and torch.equal(traj[-1], z0)
        assert float((traj[0] - z0).abs().mean()) > 0.3  # inverted: far from the clean latent
        rec = inversion.sample(net.denoise, traj[0], sig, cond, [null] * 20, guidance=1.0)
    assert float((rec - z0).abs().mean()) < 0.05 * float(z0.abs().mean())


def test_null_text_beats_ddim_at_high_guidance():
    net, z0, cond, null = setup()
    sig = schedule(10)
    with torch.no_grad():
        traj = inversion.ddim_invert(net.denoise, z0, sig, cond)
        plain = inversion.sample(net.denoise, traj[0], sig, cond, [null] * 10, guidance=7.5)
    unconds, losses = inversion.null_text_optimize(
        net.denoise, traj, sig, cond, null, 7.5, inner_steps=10
    )
    assert len(unconds) == 10 and not torch.equal(unconds[0], null)
    with torch.no_grad():
        nt = inversion.sample(net.denoise, traj[0], sig, cond, unconds, guidance=7.5)
    err_plain, err_nt = float(((plain - z0) ** 2).mean()), float(((nt - z0) ** 2).mean())
    assert err_nt < 0.5 * err_plain


def test_schedule_and_trajectory_checks():
    net, z0, cond, null = setup()
    with pytest.raises(ValueError, match="ending in 0"):
        inversion.ddim_invert(net.denoise, z0, torch.tensor([2.0, 1.0]), cond)
    with pytest.raises(ValueError, match="expected 3"):
        inversion.null_text_optimize(net.denoise, [z0], schedule(2), cond, null, 7.5)
    assert inversion.psnr(torch.zeros(4), torch.zeros(4)) == float("inf")
    assert abs(inversion.psnr(torch.zeros(4), torch.full((4,), 0.1)) - 20.0) < 1e-4
