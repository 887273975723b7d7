"""Training low-rank adapters of a frozen denoiser: the loop shared by the InstructPix2Pix
pose-edit LoRA and OnePoseTrans's subject LoRA (plain PyTorch).

The denoiser arrives as a callable ``eps_fn(x_t, t, context, concat=None, y=None)`` that
predicts the noise of a DDPM-noised latent ``x_t`` at integer timesteps ``t``; the LoRA weights
are plain trainable tensors (the caller attaches them to the model). The objective is epsilon-MSE
under the training schedule's forward process (``alphas_cumprod``), not an inference scheduler's
``add_noise``. Two kinds of data:

* with ``source_latents`` (InstructPix2Pix): the raw source latent is concatenated on the channel
  axis; text and image conditioning are dropped independently (the text becomes the embedding of
  "", the image latent zeros: exactly what ComfyUI feeds the unconditional branches of dual CFG);
* without (a text-to-image subject LoRA): plain epsilon-MSE, with optional per-sample vector
  conditioning ``y`` (SDXL's pooled text embedding + size ids).

Runs are reproducible: one seeded generator draws every batch, timestep and noise, and the whole
training state (weights, optimiser moments, generator, losses) round-trips through
:func:`training_state` / :func:`restore_training_state`, so an interrupted run resumed from its
state ends bit-for-bit where the uninterrupted run ends.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import torch

from .diffusion import ddpm_noise


@dataclass
class TrainConfig:
    steps: int = 100  # optimiser steps
    batch_size: int = 4
    grad_accum: int = 4
    lr: float = 1e-4
    weight_decay: float = 1e-2
    text_dropout: float = 0.05
    image_dropout: float = 0.05
    seed: int = 0
    save_every: int = 0  # optimiser steps between checkpoints (0: only the final one)
    eval_samples: int = 8  # fixed (t, noise) draws per sample for the before/after loss


@dataclass
class TrainData:
    target_latents: torch.Tensor  # (N, C, h, w), scaled as the sampler sees them
    text: torch.Tensor  # (N, L, D) cross-attention context
    null_text: torch.Tensor  # (1, L, D) context of "" (used where text is dropped)
    source_latents: torch.Tensor | None = (
        None  # (N, C, h, w) raw latents concatenated (IP2P); None: text-to-image
    )
    y: torch.Tensor | None = (
        None  # (N, A) vector conditioning (SDXL); None when the model takes none
    )
    null_y: torch.Tensor | None = None  # (1, A) vector conditioning of "" (text dropout with ``y``)

    def __post_init__(self):
        n = self.target_latents.shape[0]
        if n == 0:
            raise ValueError("no training samples")
        for name in ("text", "source_latents", "y"):
            t = getattr(self, name)
            if t is not None and t.shape[0] != n:
                raise ValueError(
                    f"{name} has {t.shape[0]} rows for {n} target latents; give one per sample"
                )

    def to(self, device) -> "TrainData":
        return replace(
            self, **{k: None if v is None else v.to(device) for k, v in vars(self).items()}
        )


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # per optimiser step (mean over accumulation)
    eval_before: float = float("nan")
    eval_after: float = float("nan")
    checkpoints: list[str] = field(default_factory=list)
    seconds: float = 0.0
    start_step: int = 0  # > 0 when the run was resumed from a saved state


EpsFn = Callable[..., torch.Tensor]


def epsilon_loss(
    eps_fn: EpsFn,
    data: TrainData,
    idx: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    drop_text: torch.Tensor | None = None,
    drop_image: torch.Tensor | None = None,
) -> torch.Tensor:
    """MSE between the true noise and the prediction for samples ``idx`` noised to ``t``."""
    xt = ddpm_noise(data.target_latents[idx], t, noise, alphas_cumprod)
    text, y = data.text[idx], None if data.y is None else data.y[idx]
    if drop_text is not None:
        text = torch.where(
            drop_text.view(-1, 1, 1), data.null_text.to(text.dtype).expand_as(text), text
        )
        if y is not None and data.null_y is not None:
            y = torch.where(drop_text.view(-1, 1), data.null_y.to(y.dtype).expand_as(y), y)
    concat = None
    if data.source_latents is not None:
        concat = data.source_latents[idx]
        if drop_image is not None:
            concat = concat * (~drop_image).view(-1, 1, 1, 1).to(concat.dtype)
    eps = eps_fn(xt, t, text, concat=concat, y=y)
    return torch.nn.functional.mse_loss(eps.float(), noise.float())


# ---------------------------------------------------------------------------- state
def training_state(
    step: int,
    params: Sequence[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    result: TrainResult,
) -> dict[str, torch.Tensor]:
    """Everything a resumed run needs, as a flat dict of tensors (safetensors-ready)."""
    state = {
        "step": torch.tensor(step, dtype=torch.int64),
        "generator": generator.get_state(),
        "losses": torch.tensor(result.losses, dtype=torch.float64),
        "eval_before": torch.tensor(result.eval_before, dtype=torch.float64),
    }
    opt_state = optimizer.state_dict()["state"]
    for i, p in enumerate(params):
        state[f"param.{i}"] = p.detach().float().cpu().clone()
        for k, v in opt_state.get(i, {}).items():
            state[f"optimizer.{i}.{k}"] = torch.as_tensor(v).detach().cpu().clone()
    return state


def restore_training_state(
    state: dict[str, torch.Tensor],
    params: Sequence[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> tuple[int, list[float], float]:
    """Load :func:`training_state` into ``params``/``optimizer``/``generator``; returns
    ``(step, losses, eval_before)``."""
    if sum(1 for k in state if k.startswith("param.")) != len(params):
        raise ValueError(
            "the saved training state holds another set of LoRA weights than this run "
            "(other targets, rank or model)"
        )
    full = optimizer.state_dict()
    for i, p in enumerate(params):
        saved = state[f"param.{i}"]
        if saved.shape != p.shape:
            raise ValueError(
                f"the saved training state does not fit this run: weight {i} is {tuple(saved.shape)}, "
                f"expected {tuple(p.shape)}"
            )
        with torch.no_grad():
            p.copy_(saved.to(p.device, p.dtype))
        moments = {
            k.rsplit(".", 1)[-1]: v for k, v in state.items() if k.startswith(f"optimizer.{i}.")
        }
        if moments:
            full["state"][i] = {
                k: (v.clone() if k == "step" else v.to(p.device).clone())
                for k, v in moments.items()
            }
    optimizer.load_state_dict(full)
    generator.set_state(state["generator"])
    return int(state["step"]), [float(x) for x in state["losses"]], float(state["eval_before"])


# ---------------------------------------------------------------------------- loop
def train_lora(
    eps_fn: EpsFn,
    params: Sequence[torch.Tensor],
    data: TrainData,
    alphas_cumprod: torch.Tensor,
    cfg: TrainConfig,
    device: torch.device | str = "cpu",
    on_step: Callable[[int, float], None] | None = None,
    save_checkpoint: Callable[[int], str] | None = None,
    resume: dict[str, torch.Tensor] | None = None,
    save_state: Callable[[int, dict[str, torch.Tensor]], None] | None = None,
    grad_scaler: bool = False,
) -> TrainResult:
    """Optimise ``params`` (fp32 master weights the caller wired into ``eps_fn``) with AdamW.

    ``on_step(step, loss)`` runs after every optimiser step and is where a caller cancels (by
    raising). When the run stops by an exception after completing steps, ``save_state`` gets the
    state at the last completed step (then the exception propagates), so it can be resumed by
    passing that dict as ``resume``. ``save_checkpoint(step)`` writes a LoRA file every
    ``cfg.save_every`` steps and at the end; it returns the file's name."""
    if not 0 <= cfg.text_dropout < 1 or not 0 <= cfg.image_dropout < 1:
        raise ValueError("conditioning dropout probabilities must be in [0, 1)")
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.grad_accum < 1:
        raise ValueError("steps, batch_size and grad_accum must be at least 1")
    params = list(params)
    if not params or any(not p.requires_grad for p in params):
        raise ValueError("give the trainable LoRA weights (tensors with requires_grad)")
    device = torch.device(device)
    data = data.to(device)
    n, T = data.target_latents.shape[0], alphas_cumprod.shape[0]
    shape = tuple(data.target_latents.shape[1:])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(device.type) if grad_scaler else None
    gen = torch.Generator().manual_seed(cfg.seed)

    # A fixed evaluation set of (sample, t, noise): the same draws before and after training make
    # the comparison free of sampling noise.
    eg = torch.Generator().manual_seed(cfg.seed + 12345)
    e_idx = torch.arange(n).repeat(max(cfg.eval_samples, 1))
    e_t = torch.randint(0, T, (e_idx.numel(),), generator=eg)
    e_noise = torch.randn((e_idx.numel(), *shape), generator=eg)

    def evaluate() -> float:
        total = 0.0
        with torch.no_grad():
            for s in range(0, e_idx.numel(), cfg.batch_size):
                sl = slice(s, s + cfg.batch_size)
                loss = epsilon_loss(
                    eps_fn,
                    data,
                    e_idx[sl].to(device),
                    e_t[sl].to(device),
                    e_noise[sl].to(device, data.target_latents.dtype),
                    alphas_cumprod,
                )
                total += float(loss) * e_idx[sl].numel()
        return total / e_idx.numel()

    if resume is not None:
        start, losses, before = restore_training_state(resume, params, opt, gen)
        if start >= cfg.steps:
            raise ValueError(
                f"the saved run already reached step {start}; ask for more than {start} steps to continue it"
            )
        result = TrainResult(losses=losses, eval_before=before, start_step=start)
    else:
        start, result = 0, TrainResult(eval_before=evaluate())

    done, gen_at_done = start, gen.get_state()
    began = time.time()
    try:
        for step in range(start + 1, cfg.steps + 1):
            opt.zero_grad(set_to_none=True)
            step_loss = 0.0
            for _ in range(cfg.grad_accum):
                idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
                t = torch.randint(0, T, (cfg.batch_size,), generator=gen)
                noise = torch.randn((cfg.batch_size, *shape), generator=gen)
                drop_text = torch.rand(cfg.batch_size, generator=gen) < cfg.text_dropout
                drop_image = torch.rand(cfg.batch_size, generator=gen) < cfg.image_dropout
                loss = (
                    epsilon_loss(
                        eps_fn,
                        data,
                        idx.to(device),
                        t.to(device),
                        noise.to(device, data.target_latents.dtype),
                        alphas_cumprod,
                        drop_text.to(device),
                        drop_image.to(device),
                    )
                    / cfg.grad_accum
                )
                (scaler.scale(loss) if scaler else loss).backward()
                step_loss += float(loss.detach())
            if not math.isfinite(step_loss):
                raise FloatingPointError(
                    f"the training loss became {step_loss} at step {step}: lower the learning rate"
                )
            if scaler:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            result.losses.append(step_loss)
            done, gen_at_done = step, gen.get_state()
            if on_step:
                on_step(step, step_loss)
            if (
                save_checkpoint
                and cfg.save_every
                and step % cfg.save_every == 0
                and step < cfg.steps
            ):
                result.checkpoints.append(save_checkpoint(step))
    except BaseException:
        if save_state is not None and done > start:
            # the state of the last completed step: its generator, not one advanced into a half-done step
            gen.set_state(gen_at_done)
            save_state(done, training_state(done, params, opt, gen, result))
        raise
    result.seconds = time.time() - began
    result.eval_after = evaluate()
    if save_checkpoint:
        result.checkpoints.append(save_checkpoint(cfg.steps))
    return result
