"""LoRA training for InstructPix2Pix UNets, in plain PyTorch (the UNet arrives as a callable).

The objective is InstructPix2Pix's: noise the *target* latent with the DDPM forward process,
concatenate the (unscaled) source-image latent on the channel axis, predict the noise from the
instruction embedding, MSE against the true noise. Corrections of the seed repo's hazards
(../shared/design/seeds.md §A.3):
  * forward noising uses the training schedule's ``alphas_cumprod`` (DDPM), not an inference
    scheduler's ``add_noise``;
  * text and image conditioning are dropped independently (5 % each by default): the text
    becomes the embedding of "" and the image latent becomes zeros, which is exactly what
    ComfyUI's IP2P model feeds for the unconditional branches of dual CFG;
  * LoRA parameters are fp32 master weights whatever the UNet's dtype;
  * the saved keys are ComfyUI's generic LoRA format, ``diffusion_model.<module>.lora_up.weight``
    / ``.lora_down.weight`` / ``.alpha``, which core ``LoraLoader`` reads.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from ..common.diffusion import ddpm_noise
from ..common.files import atomic_write, atomic_write_text, is_inside, unique_path

DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
METADATA = "metadata.jsonl"


# ---------------------------------------------------------------------------- LoRA modules
class LoRADelta(nn.Module):
    """``scale * up(down(x))`` for one frozen Linear; ``up`` starts at zero so training starts
    from the base model exactly."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float, seed: int):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {rank}")
        self.rank, self.alpha = int(rank), float(alpha)
        gen = torch.Generator().manual_seed(seed)
        # fp32 master weights (kaiming-uniform-like down, zero up: the standard LoRA init)
        bound = 1.0 / math.sqrt(in_features)
        self.down = nn.Parameter((torch.rand(rank, in_features, generator=gen) * 2 - 1) * bound)
        self.up = nn.Parameter(torch.zeros(out_features, rank))

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() @ self.down.t() @ self.up.t()) * self.scale


def find_target_linears(unet: nn.Module, targets: Iterable[str]) -> dict[str, nn.Linear]:
    """Linear layers whose qualified name ends with one of ``targets`` (e.g. "to_q", "attn2.to_k")."""
    targets = tuple(t.strip() for t in targets if t.strip())
    if not targets:
        raise ValueError("no LoRA target modules given: name some, e.g. to_q,to_k,to_v,to_out.0")
    found = {}
    for name, module in unet.named_modules():
        if any(name == t or name.endswith("." + t) for t in targets):
            if not isinstance(module, nn.Linear):
                raise ValueError(f"LoRA target '{name}' is a {type(module).__name__}; only Linear layers are supported")
            found[name] = module
    if not found:
        raise ValueError(f"no layer of the UNet matches the LoRA targets {list(targets)}; "
                         "use attention projection names such as to_q, to_k, to_v, to_out.0")
    return found


class LoRASet(nn.Module):
    """LoRA deltas for a set of UNet Linear layers, attached with forward hooks (the UNet is not
    modified; ``attach()`` returns a handle whose ``remove()`` restores it)."""

    def __init__(self, layers: dict[str, nn.Linear], rank: int = 8, alpha: float | None = None, seed: int = 0):
        super().__init__()
        self.names = sorted(layers)
        self.layers = layers
        alpha = float(rank if alpha is None else alpha)
        self.deltas = nn.ModuleList(
            LoRADelta(layers[n].in_features, layers[n].out_features, rank, alpha, seed + i) for i, n in enumerate(self.names))

    def attach(self):
        handles = []
        for name, delta in zip(self.names, self.deltas):
            def hook(module, args, output, delta=delta):
                return output + delta(args[0]).to(output.dtype)
            handles.append(self.layers[name].register_forward_hook(hook))

        class _Handle:
            def remove(self_inner):
                for h in handles:
                    h.remove()
        return _Handle()

    def comfy_state_dict(self, prefix: str = "diffusion_model.") -> dict[str, torch.Tensor]:
        """Keys in ComfyUI's generic LoRA format (read by ``comfy.lora.load_lora``)."""
        sd = {}
        for name, delta in zip(self.names, self.deltas):
            key = f"{prefix}{name}"
            sd[f"{key}.lora_down.weight"] = delta.down.detach().float().cpu().contiguous()
            sd[f"{key}.lora_up.weight"] = delta.up.detach().float().cpu().contiguous()
            sd[f"{key}.alpha"] = torch.tensor(delta.alpha)
        return sd


def save_lora(sd: dict[str, torch.Tensor], path: os.PathLike, metadata: dict | None = None) -> Path:
    """Write a safetensors LoRA atomically (temp file in the same folder, then ``os.replace``)."""
    from safetensors.torch import save_file

    meta = {k: str(v) for k, v in (metadata or {}).items()}
    return atomic_write(path, lambda tmp: save_file(sd, str(tmp), metadata=meta))


def free_lora_path(folder: os.PathLike, stem: str) -> Path:
    """``folder/stem.safetensors``, or ``stem_0001.safetensors`` ... so a user's file is never overwritten."""
    return unique_path(Path(folder) / f"{stem}.safetensors", digits=4)


# ---------------------------------------------------------------------------- paired data
@dataclass
class PairRecord:
    source: Path
    target: Path
    instruction: str


def read_pairs_folder(folder: os.PathLike) -> list[PairRecord]:
    """InstructPix2Pix layout: ``metadata.jsonl`` rows ``{original_image, edit_prompt, edited_image}``
    (``input_image``/``edit``/``output_image`` are accepted too), paths relative to the folder.
    Rows with a ``split`` other than "train" are held out."""
    folder = Path(folder)
    meta = folder / METADATA
    if not meta.is_file():
        raise ValueError(f"{folder} has no {METADATA}: expected rows like "
                         '{"original_image": "a.png", "edit_prompt": "raise the arms", "edited_image": "b.png"}')
    records = []
    for i, line in enumerate(meta.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{meta} line {i} is not JSON: {exc}") from None
        if row.get("split", "train") != "train":  # e.g. PoseLab Synthetic Pairs' held-out test rows
            continue
        src = row.get("original_image", row.get("input_image"))
        tgt = row.get("edited_image", row.get("output_image"))
        text = row.get("edit_prompt", row.get("edit"))
        if not (src and tgt and isinstance(text, str)):
            raise ValueError(f"{meta} line {i} needs original_image, edit_prompt and edited_image")
        rec = PairRecord(folder / src, folder / tgt, text)
        for name, p in ((src, rec.source), (tgt, rec.target)):
            # the same words whether or not the file exists elsewhere: nothing outside is revealed
            if not (is_inside(folder, p) and p.is_file()):
                raise ValueError(f"{METADATA} line {i} names '{name}', which is not a file inside the data folder")
        records.append(rec)
    if not records:
        raise ValueError(f"{meta} lists no pairs")
    return records


def write_pairs_folder(pairs, folder: os.PathLike) -> Path:
    """Write ``(source uint8 HxWx3, target, instruction)`` triples in the InstructPix2Pix layout."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (src, tgt, text) in enumerate(pairs):
        a, b = f"{i:05d}_0.png", f"{i:05d}_1.png"
        cv2.imwrite(str(folder / a), cv2.cvtColor(np.asarray(src), cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(folder / b), cv2.cvtColor(np.asarray(tgt), cv2.COLOR_RGB2BGR))
        rows.append(json.dumps({"original_image": a, "edit_prompt": text, "edited_image": b}))
    atomic_write_text(folder / METADATA, "\n".join(rows) + "\n")
    return folder


def load_rgb(path: os.PathLike, size: tuple[int, int]) -> np.ndarray:
    """``uint8 (h, w, 3)`` RGB resized to ``size=(h, w)``."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read the image {path}")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.shape[:2] != tuple(size):
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return img


# ---------------------------------------------------------------------------- training
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
    eval_samples: int = 8  # fixed (t, noise) draws per pair for the before/after loss


@dataclass
class TrainData:
    target_latents: torch.Tensor  # (N, 4, h, w), already scaled (latent_format.process_in)
    source_latents: torch.Tensor | None  # (N, 4, h, w), raw VAE latents, as IP2P concatenates them;
    # None for a plain text-to-image UNet (a subject LoRA: the objective is then plain epsilon-MSE)
    text: torch.Tensor  # (N, 77, C) instruction embeddings
    null_text: torch.Tensor  # (1, 77, C) embedding of ""

    def __post_init__(self):
        n = self.target_latents.shape[0]
        sources = n if self.source_latents is None else self.source_latents.shape[0]
        if not (sources == self.text.shape[0] == n) or n == 0:
            raise ValueError("target latents, source latents and text embeddings must have the same number of pairs (>0)")


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # per optimiser step (mean over accumulation)
    eval_before: float = float("nan")
    eval_after: float = float("nan")
    checkpoints: list[str] = field(default_factory=list)
    seconds: float = 0.0


UNetFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def ip2p_loss(unet: UNetFn, data: TrainData, idx: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
              alphas_cumprod: torch.Tensor, drop_text: torch.Tensor | None = None,
              drop_image: torch.Tensor | None = None) -> torch.Tensor:
    x0 = data.target_latents[idx]
    xt = ddpm_noise(x0, t, noise, alphas_cumprod)
    text = data.text[idx]
    if drop_text is not None:
        text = torch.where(drop_text.view(-1, 1, 1), data.null_text.to(text.dtype).expand_as(text), text)
    if data.source_latents is None:  # text-to-image UNet
        return torch.nn.functional.mse_loss(unet(xt, t, text).float(), noise.float())
    src = data.source_latents[idx]
    if drop_image is not None:
        src = src * (~drop_image).view(-1, 1, 1, 1).to(src.dtype)
    eps = unet(torch.cat([xt, src], dim=1), t, text)
    return torch.nn.functional.mse_loss(eps.float(), noise.float())


def train_lora(unet: UNetFn, lora: LoRASet, data: TrainData, alphas_cumprod: torch.Tensor, cfg: TrainConfig,
              device: torch.device | str = "cpu", autocast_dtype: torch.dtype | None = None,
              on_step: Callable[[int, float], None] | None = None,
              save_checkpoint: Callable[[int], str] | None = None) -> TrainResult:
    """Optimise ``lora`` (attached by the caller) so that ``unet`` predicts the noise: the IP2P objective
    when the data has source latents, plain text-to-image epsilon-MSE when it has none."""
    if not 0 <= cfg.text_dropout < 1 or not 0 <= cfg.image_dropout < 1:
        raise ValueError("conditioning dropout probabilities must be in [0, 1)")
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.grad_accum < 1:
        raise ValueError("steps, batch_size and grad_accum must be at least 1")
    device = torch.device(device)
    data = TrainData(*(None if x is None else x.to(device)
                       for x in (data.target_latents, data.source_latents, data.text, data.null_text)))
    n, T = data.target_latents.shape[0], alphas_cumprod.shape[0]
    lora.to(device=device, dtype=torch.float32)
    params = [p for p in lora.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_scaler = autocast_dtype == torch.float16 and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    gen = torch.Generator().manual_seed(cfg.seed)

    def autocast():
        if autocast_dtype is None:
            return torch.autocast(device.type, enabled=False)
        return torch.autocast(device.type, dtype=autocast_dtype)

    # A fixed evaluation set of (pair, t, noise): the same draws before and after training make
    # the comparison free of sampling noise.
    eg = torch.Generator().manual_seed(cfg.seed + 12345)
    e_idx = torch.arange(n).repeat(max(cfg.eval_samples, 1))
    e_t = torch.randint(0, T, (e_idx.numel(),), generator=eg)
    e_noise = torch.randn((e_idx.numel(), *data.target_latents.shape[1:]), generator=eg)

    def evaluate() -> float:
        total = 0.0
        with torch.no_grad(), autocast():
            for s in range(0, e_idx.numel(), cfg.batch_size):
                sl = slice(s, s + cfg.batch_size)
                loss = ip2p_loss(unet, data, e_idx[sl].to(device), e_t[sl].to(device), e_noise[sl].to(device), alphas_cumprod)
                total += float(loss) * e_idx[sl].numel()
        return total / e_idx.numel()

    result = TrainResult(eval_before=evaluate())
    start = time.time()
    for step in range(1, cfg.steps + 1):
        opt.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(cfg.grad_accum):
            idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
            t = torch.randint(0, T, (cfg.batch_size,), generator=gen)
            noise = torch.randn((cfg.batch_size, *data.target_latents.shape[1:]), generator=gen)
            drop_text = torch.rand(cfg.batch_size, generator=gen) < cfg.text_dropout
            drop_image = torch.rand(cfg.batch_size, generator=gen) < cfg.image_dropout
            with autocast():
                loss = ip2p_loss(unet, data, idx.to(device), t.to(device), noise.to(device, data.target_latents.dtype),
                                 alphas_cumprod, drop_text.to(device), drop_image.to(device)) / cfg.grad_accum
            (scaler.scale(loss) if scaler else loss).backward()
            step_loss += float(loss.detach())
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        result.losses.append(step_loss)
        if on_step:
            on_step(step, step_loss)
        if save_checkpoint and cfg.save_every and step % cfg.save_every == 0 and step < cfg.steps:
            result.checkpoints.append(save_checkpoint(step))
    result.seconds = time.time() - start
    result.eval_after = evaluate()
    if save_checkpoint:
        result.checkpoints.append(save_checkpoint(cfg.steps))
    return result
