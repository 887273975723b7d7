"""Training the Stable-Pose adapter against a frozen SD UNet, in plain PyTorch (docs/methods.md §C.3-C.4).

The UNet arrives as a callable ``unet(x_t, t, context, control) -> eps`` that adds the adapter's
residuals to its skips (ComfyUI's ``control=`` path), so the same loop drives a user's checkpoint
inside ComfyUI and a toy UNet in a unit test. The objective is Stable-Pose's pose-mask-guided
loss: per-element epsilon-MSE weighted ``alpha`` (5) inside the fine pose mask and 1 outside. Text
is dropped to "" with probability 0.5, as the reference trains, so CFG keeps working; the pose is
never dropped (the unconditional CFG branch also sees it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..common.diffusion import ddpm_noise
from .adapter import StablePoseAdapter
from .masks import TRAIN_THRESHOLD, pose_masks

UNetFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, dict], torch.Tensor]


@dataclass
class TrainConfig:
    steps: int = 200
    batch_size: int = 2
    lr: float = 1e-5  # the reference's; tiny test models need far more
    weight_decay: float = 1e-2
    alpha: float = 5.0
    text_dropout: float = 0.5
    seed: int = 0
    save_every: int = 0
    eval_samples: int = 4  # fixed (t, noise) draws per held-out sample


@dataclass
class PoseData:
    latents: torch.Tensor  # (N, 4, h, w), scaled as the sampler sees them
    hints: torch.Tensor  # (N, 3, 8h, 8w) skeleton images in [0, 1]
    text: torch.Tensor  # (N, 77, C)
    null_text: torch.Tensor  # (1, 77, C)
    masks: torch.Tensor = None  # (N, K, h, w) training pose masks, made from the hints

    def __post_init__(self):
        n = self.latents.shape[0]
        if n == 0 or self.hints.shape[0] != n or self.text.shape[0] != n:
            raise ValueError(
                f"latents ({n}), pose images ({self.hints.shape[0]}) and captions ({self.text.shape[0]}) "
                "must be equally many (and not zero)"
            )
        if self.hints.shape[-2:] != (self.latents.shape[-2] * 8, self.latents.shape[-1] * 8):
            raise ValueError("pose images must be 8x the latent size (the VAE's scale)")

    def with_masks(self, kernels) -> "PoseData":
        if self.masks is None:
            self.masks = pose_masks(self.hints * 2 - 1, kernels, TRAIN_THRESHOLD)
        return self

    def to(self, device) -> "PoseData":
        return PoseData(
            *(
                x.to(device)
                for x in (self.latents, self.hints, self.text, self.null_text, self.masks)
            )
        )


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)
    eval_before: float = float(
        "nan"
    )  # held-out loss of the untrained (no-op) adapter = the bare UNet
    eval_after: float = float("nan")
    eval_wrong_pose: float = float(
        "nan"
    )  # trained adapter fed another sample's pose: is the pose used?
    checkpoints: list[str] = field(default_factory=list)
    seconds: float = 0.0


def pose_weighted_mse(
    pred: torch.Tensor, target: torch.Tensor, fine_mask: torch.Tensor, alpha: float
) -> torch.Tensor:
    """Mean of the squared error with weight ``alpha`` inside the (B, 1, h, w) mask, 1 outside."""
    weight = 1 + (alpha - 1) * fine_mask.to(pred.dtype)
    return ((pred.float() - target.float()) ** 2 * weight).mean()


def adapter_loss(
    unet: UNetFn,
    adapter: StablePoseAdapter,
    data: PoseData,
    idx,
    t,
    noise,
    alphas_cumprod,
    alpha,
    drop_text=None,
    pose_idx=None,
) -> torch.Tensor:
    """``pose_idx``: whose pose each sample gets (default: its own)."""
    pose_idx = idx if pose_idx is None else pose_idx
    xt = ddpm_noise(data.latents[idx], t, noise, alphas_cumprod)
    text = data.text[idx]
    if drop_text is not None:
        text = torch.where(drop_text.view(-1, 1, 1), data.null_text.expand_as(text), text)
    masks = data.masks[pose_idx]
    control = adapter(xt, data.hints[pose_idx], t.float(), text, masks=masks)
    eps = unet(xt, t, text, control)
    # The loss weight follows each sample's own pose (the true person), the fine (last) mask.
    return pose_weighted_mse(eps, noise, data.masks[idx][:, -1:], alpha)


def _derangement(n: int) -> torch.Tensor:
    return torch.roll(torch.arange(n), 1)


def train_adapter(
    unet: UNetFn,
    adapter: StablePoseAdapter,
    data: PoseData,
    alphas_cumprod: torch.Tensor,
    cfg: TrainConfig,
    eval_data: PoseData | None = None,
    device="cpu",
    on_step: Callable[[int, float], None] | None = None,
    save_checkpoint: Callable[[int], str] | None = None,
) -> TrainResult:
    """Optimise the adapter's parameters (fp32) with AdamW; the UNet stays frozen.

    ``eval_data`` (held-out samples; default the training set) gets a fixed set of (t, noise)
    draws, scored before training, after it, and after it with every sample given another
    sample's pose.
    """
    if cfg.steps < 1 or cfg.batch_size < 1:
        raise ValueError("steps and batch_size must be at least 1")
    if not 0 <= cfg.text_dropout < 1:
        raise ValueError("text_dropout must be in [0, 1)")
    device = torch.device(device)
    kernels = adapter.config.kernels
    data = data.with_masks(kernels).to(device)
    eval_data = eval_data.with_masks(kernels).to(device) if eval_data is not None else data
    adapter.to(device=device, dtype=torch.float32).train()
    opt = torch.optim.AdamW(adapter.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n, T = data.latents.shape[0], alphas_cumprod.shape[0]
    gen = torch.Generator().manual_seed(cfg.seed)

    eg = torch.Generator().manual_seed(cfg.seed + 4242)
    m = eval_data.latents.shape[0]
    e_idx = torch.arange(m).repeat(max(cfg.eval_samples, 1))
    e_t = torch.randint(0, T, (e_idx.numel(),), generator=eg)
    e_noise = torch.randn((e_idx.numel(), *eval_data.latents.shape[1:]), generator=eg)
    wrong = _derangement(m)

    def evaluate(shuffle_pose: bool = False) -> float:
        adapter.eval()
        total = 0.0
        with torch.no_grad():
            for s in range(0, e_idx.numel(), cfg.batch_size):
                i = e_idx[s : s + cfg.batch_size].to(device)
                loss = adapter_loss(
                    unet,
                    adapter,
                    eval_data,
                    i,
                    e_t[s : s + cfg.batch_size].to(device),
                    e_noise[s : s + cfg.batch_size].to(device),
                    alphas_cumprod,
                    cfg.alpha,
                    pose_idx=wrong.to(device)[i] if shuffle_pose else None,
                )
                total += float(loss) * i.numel()
        adapter.train()
        return total / e_idx.numel()

    result = TrainResult(eval_before=evaluate())
    start = time.time()
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        t = torch.randint(0, T, (cfg.batch_size,), generator=gen)
        noise = torch.randn((cfg.batch_size, *data.latents.shape[1:]), generator=gen)
        drop = torch.rand(cfg.batch_size, generator=gen) < cfg.text_dropout
        opt.zero_grad(set_to_none=True)
        loss = adapter_loss(
            unet,
            adapter,
            data,
            idx.to(device),
            t.to(device),
            noise.to(device),
            alphas_cumprod,
            cfg.alpha,
            drop_text=drop.to(device),
        )
        loss.backward()
        opt.step()
        result.losses.append(float(loss.detach()))
        if on_step:
            on_step(step, result.losses[-1])
        if save_checkpoint and cfg.save_every and step % cfg.save_every == 0 and step < cfg.steps:
            result.checkpoints.append(save_checkpoint(step))
    result.seconds = time.time() - start
    result.eval_after = evaluate()
    if m > 1:
        result.eval_wrong_pose = evaluate(shuffle_pose=True)
    adapter.eval()
    if save_checkpoint:
        result.checkpoints.append(save_checkpoint(cfg.steps))
    return result


def save_adapter(adapter: StablePoseAdapter, path, metadata: dict | None = None):
    """Write the adapter as safetensors (bare keys, config in the metadata), atomically."""
    import json

    from safetensors.torch import save_file

    from ..common.files import atomic_write

    sd = {k: v.detach().float().cpu().contiguous() for k, v in adapter.state_dict().items()}
    meta = {"poselab": "stable-pose adapter", "config": json.dumps(adapter.config.to_dict())}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    return atomic_write(path, lambda tmp: save_file(sd, str(tmp), metadata=meta))
