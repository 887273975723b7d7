"""The shared LoRA training loop (models/common/lora_training.py) on a small pure-PyTorch stand-in
for the UNet, with LoRA deltas attached by forward hooks here; the real ComfyUI UNet with ComfyUI's
weight adapters is trained in tests/integration (test_editing_server.py, test_onepose_server.py)."""

import math

import pytest
import torch
from torch import nn

from poselab.models.common import lora_training as lt


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.to_q, self.to_k, self.to_v = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
        self.to_out = nn.Sequential(nn.Linear(c, c))


class TinyIP2PUNet(nn.Module):
    """8 latent channels in (4 for a text-to-image stand-in), 4 out, text context attended through
    to_q/to_k/to_v/to_out.0; an optional vector condition ``y`` is added like SDXL's."""

    def __init__(self, c=16, ctx=8, in_channels=8, y_dim=0):
        super().__init__()
        self.inp = nn.Conv2d(in_channels, c, 3, padding=1)
        self.ctx = nn.Linear(ctx, c)
        self.y = nn.Linear(y_dim, c) if y_dim else None
        self.attn = Block(c)
        self.out = nn.Conv2d(c, 4, 3, padding=1)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x, timesteps, context, y=None):
        h = self.inp(x) + (timesteps.float() / 1000).view(-1, 1, 1, 1)
        if self.y is not None:
            h = h + self.y(y)[:, :, None, None]
        b, c, hh, ww = h.shape
        seq = h.flatten(2).transpose(1, 2)
        ctx = self.ctx(context)
        q, k, v = self.attn.to_q(seq), self.attn.to_k(ctx), self.attn.to_v(ctx)
        a = torch.softmax(q @ k.transpose(1, 2) / c**0.5, -1) @ v
        seq = seq + self.attn.to_out(a)
        return self.out(seq.transpose(1, 2).reshape(b, c, hh, ww))

    def eps_fn(self, x, t, context, concat=None, y=None):
        return self(x if concat is None else torch.cat([x, concat], 1), t, context, y=y)


def attach_lora(unet, names=("to_q", "to_k", "to_v", "to_out.0"), rank=4, seed=0):
    """fp32 LoRA deltas on the stand-in's Linears (down random, up zero); returns (params, remove)."""
    gen = torch.Generator().manual_seed(seed)
    params, handles = [], []
    for name, m in unet.named_modules():
        if (
            isinstance(m, nn.Linear)
            and any(name.endswith(n) for n in names)
            and name.startswith("attn")
        ):
            down = nn.Parameter(torch.randn(rank, m.in_features, generator=gen) / rank)
            up = nn.Parameter(torch.zeros(m.out_features, rank))
            params += [up, down]
            handles.append(
                m.register_forward_hook(
                    lambda mod, a, out, u=up, d=down: out + a[0] @ d.t() @ u.t()
                )
            )
    return params, lambda: [h.remove() for h in handles]


def tiny_data(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randn(n, 4, 8, 8, generator=g)
    return lt.TrainData(
        target_latents=0.5 * src.flip(-1),
        source_latents=src,
        text=torch.randn(n, 4, 8, generator=g),
        null_text=torch.zeros(1, 4, 8),
    )


def ddpm_alphas():
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2  # SD's scaled-linear schedule
    return torch.cumprod(1 - betas, 0)


def test_ddpm_forward_noising_matches_definition():
    from poselab.models.common.diffusion import ddpm_noise

    ac = ddpm_alphas()
    x0, eps = torch.ones(2, 4, 2, 2), torch.full((2, 4, 2, 2), 2.0)
    xt = ddpm_noise(x0, torch.tensor([0, 999]), eps, ac)
    assert torch.allclose(xt[0], ac[0].sqrt() + 2 * (1 - ac[0]).sqrt())
    assert torch.allclose(xt[1], ac[999].sqrt() + 2 * (1 - ac[999]).sqrt())
    assert float(ac[999]) < 0.01  # the last step is almost pure noise


def test_training_lowers_fixed_set_loss_and_leaves_unet_untouched():
    torch.manual_seed(0)
    unet = TinyIP2PUNet()
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    params, remove = attach_lora(unet)
    saved = []
    cfg = lt.TrainConfig(steps=40, batch_size=4, grad_accum=2, lr=3e-2, save_every=20, seed=1)
    try:
        res = lt.train_lora(
            unet.eps_fn,
            params,
            tiny_data(),
            ddpm_alphas(),
            cfg,
            save_checkpoint=lambda s: (saved.append(s), f"l{s}")[1],
        )
    finally:
        remove()
    assert res.eval_after < 0.9 * res.eval_before
    assert len(res.losses) == 40 and saved == [20, 40] and res.checkpoints == ["l20", "l40"]
    assert all(p.dtype == torch.float32 for p in params)
    for k, v in unet.state_dict().items():
        assert torch.equal(v, before[k])  # only the LoRA trained


def test_dropout_replaces_text_and_y_and_zeroes_image():
    seen = {}

    def eps_fn(x, t, ctx, concat=None, y=None):
        seen.update(x=x, ctx=ctx, concat=concat, y=y)
        return torch.zeros_like(x)

    data = tiny_data(2)
    data.y, data.null_y = torch.ones(2, 3), torch.full((1, 3), 7.0)
    lt.epsilon_loss(
        eps_fn,
        data,
        torch.tensor([0, 1]),
        torch.tensor([10, 10]),
        torch.zeros(2, 4, 8, 8),
        ddpm_alphas(),
        drop_text=torch.tensor([True, False]),
        drop_image=torch.tensor([False, True]),
    )
    assert torch.equal(seen["ctx"][0], data.null_text[0]) and torch.equal(
        seen["ctx"][1], data.text[1]
    )
    assert torch.equal(seen["y"][0], data.null_y[0]) and torch.equal(seen["y"][1], data.y[1])
    assert torch.equal(seen["concat"][0], data.source_latents[0]) and not seen["concat"][1].any()
    assert seen["x"].shape == (2, 4, 8, 8)  # the noisy target; the source travels separately


def test_text_to_image_data_with_vector_condition_trains():
    unet = TinyIP2PUNet(in_channels=4, y_dim=3)
    g = torch.Generator().manual_seed(0)
    views = torch.randn(1, 4, 8, 8, generator=g).repeat(6, 1, 1, 1) + 0.1 * torch.randn(
        6, 4, 8, 8, generator=g
    )
    data = lt.TrainData(
        target_latents=views,
        text=torch.randn(1, 4, 8, generator=g).expand(6, -1, -1),
        null_text=torch.zeros(1, 4, 8),
        y=torch.randn(1, 3, generator=g).expand(6, -1),
    )
    params, remove = attach_lora(unet)
    try:
        res = lt.train_lora(
            unet.eps_fn,
            params,
            data,
            ddpm_alphas(),
            lt.TrainConfig(
                steps=60,
                batch_size=2,
                grad_accum=1,
                lr=1e-2,
                text_dropout=0.0,
                image_dropout=0.0,
                eval_samples=8,
            ),
        )
    finally:
        remove()
    assert res.eval_after < 0.95 * res.eval_before, res
    assert all(not p.requires_grad for p in unet.parameters())


class Stop(Exception):
    pass


def run(steps, resume=None, stop_at=None, seed=3):
    torch.manual_seed(0)  # the same stand-in UNet every time
    unet = TinyIP2PUNet()
    params, remove = attach_lora(unet, seed=seed)
    states = {}

    def on_step(step, loss):
        if step == stop_at:
            raise Stop()

    cfg = lt.TrainConfig(
        steps=steps,
        batch_size=2,
        grad_accum=2,
        lr=1e-2,
        seed=seed,
        text_dropout=0.2,
        image_dropout=0.2,
    )
    try:
        res = lt.train_lora(
            unet.eps_fn,
            params,
            tiny_data(),
            ddpm_alphas(),
            cfg,
            on_step=on_step,
            resume=resume,
            save_state=lambda s, st: states.update({s: st}),
        )
    except Stop:
        return None, params, states
    finally:
        remove()
    return res, params, states


def test_seeded_runs_repeat_and_a_cancelled_run_resumes_to_the_same_end():
    full, p_full, _ = run(10)
    again, p_again, _ = run(10)
    assert full.losses == again.losses and all(torch.equal(a, b) for a, b in zip(p_full, p_again))
    _, _, states = run(10, stop_at=6)
    assert list(states) == [6]  # the state of the last completed step
    resumed, p_resumed, _ = run(10, resume=states[6])
    assert (
        resumed.start_step == 6
        and resumed.losses == full.losses
        and resumed.eval_before == full.eval_before
    )
    assert all(torch.equal(a, b) for a, b in zip(p_full, p_resumed))  # bit for bit
    assert resumed.eval_after == full.eval_after
    with pytest.raises(ValueError, match="already reached step 6"):
        run(6, resume=states[6])


def test_resume_refuses_another_lora_and_bad_settings_fail_clearly():
    _, _, states = run(10, stop_at=2)
    unet = TinyIP2PUNet()
    params, remove = attach_lora(unet, names=("to_q",))
    try:
        with pytest.raises(ValueError, match="another set of LoRA weights"):
            lt.train_lora(
                unet.eps_fn,
                params,
                tiny_data(),
                ddpm_alphas(),
                lt.TrainConfig(steps=4),
                resume=states[2],
            )
        with pytest.raises(ValueError, match="at least 1"):
            lt.train_lora(unet.eps_fn, params, tiny_data(), ddpm_alphas(), lt.TrainConfig(steps=0))
        with pytest.raises(FloatingPointError, match="lower the learning rate"):
            bad = tiny_data()
            bad.target_latents[0, 0, 0, 0] = math.inf
            lt.train_lora(
                unet.eps_fn,
                params,
                bad,
                ddpm_alphas(),
                lt.TrainConfig(steps=3, eval_samples=1, batch_size=4),
            )
    finally:
        remove()
    with pytest.raises(ValueError, match="one per sample"):
        lt.TrainData(
            target_latents=torch.zeros(2, 4, 8, 8),
            text=torch.zeros(3, 4, 8),
            null_text=torch.zeros(1, 4, 8),
        )
