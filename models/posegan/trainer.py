"""Training loop of the Deformable GAN, its logs, samples, checkpoints and evaluation.

Schedule as in the paper: Adam lr 2e-4, betas (0.5, 0.999) for both networks, one
discriminator step then one generator step per iteration. Batches are drawn with a generator
seeded by ``(seed, step)`` and dropout is seeded the same way, so a resumed run sees exactly
the batches and dropout masks an uninterrupted run would have seen.

A run folder holds ``state.safetensors`` (everything needed to resume), ``losses.csv``,
``samples/step_XXXXXX.png`` (source | target | generated rows) and ``loss_curve.png``; the model
file (generator + config) is written next to it or wherever ``model_path`` says. On any
interruption (Ctrl+C, ComfyUI's cancel button, an error) the state and model are saved at the
last completed step before the exception continues.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
from skimage.metrics import structural_similarity

from . import checkpoint
from .dataset import SampleCache, tensor_to_image
from .losses import DEFAULT_NN_WEIGHT, GeneratorLoss, VGGBlock1, discriminator_loss
from .networks import Discriminator, Generator, PoseGANConfig

log = logging.getLogger("poselab")

LOSS_COLUMNS = ("step", "d_loss", "g_gan", "g_nn", "g_l1", "g_total", "seconds")
AUTO = -1.0  # nn_weight placeholder: pick the default of the feature space actually used


@dataclass
class TrainSettings:
    steps: int = 1000
    batch_size: int = 4
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0
    log_every: int = 10
    sample_every: int = 250
    checkpoint_every: int = 500
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        if not (self.lr > 0):
            raise ValueError(f"learning rate must be positive, got {self.lr}")


def resolve_loss_config(config: PoseGANConfig, vgg: VGGBlock1 | None) -> tuple[PoseGANConfig, str]:
    """The config actually trained (NN loss space and weight) and a note for logs and results."""
    space = config.nn_space
    note = ""
    if space == "vgg" and vgg is None:
        space = "pixel"
        note = (
            "no VGG19 weights found: the nearest-neighbour loss runs in pixel space instead of on VGG19 "
            "block1_conv2 features (put torchvision's vgg19 state dict in models/vgg/ for the paper's loss)"
        )
    weight = config.nn_weight
    if weight == AUTO or (
        space != config.nn_space and weight == DEFAULT_NN_WEIGHT[config.nn_space]
    ):
        weight = DEFAULT_NN_WEIGHT[space]
    if not note:
        note = f"nearest-neighbour loss on {'VGG19 block1_conv2 features' if space == 'vgg' else 'pixels'} ({config.nn_window}x{config.nn_window} window)"
    return dataclasses.replace(config, nn_space=space, nn_weight=weight), note


def batch_indices(seed: int, step: int, n: int, batch: int) -> np.ndarray:
    return np.random.default_rng([int(seed), int(step)]).integers(0, n, size=batch)


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def generate(generator: Generator, batch: dict) -> torch.Tensor:
    if generator.config.warp_skip == "none":
        return generator(batch["x_a"], batch["h_a"], batch["h_b"])
    return generator(batch["x_a"], batch["h_a"], batch["h_b"], batch["affines"], batch["masks"])


class _LossLog:
    """losses.csv, rewritten on resume so it never holds rows past the resumed step."""

    def __init__(self, path: Path, resume_step: int):
        self.path = path
        rows = []
        if resume_step > 0 and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, LOSS_COLUMNS)
            w.writeheader()
            w.writerows(rows)
        self.rows = [{k: float(v) for k, v in r.items()} for r in rows]

    def append(self, row: dict) -> None:
        full = {k: row.get(k, 0.0) for k in LOSS_COLUMNS}
        self.rows.append(full)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, LOSS_COLUMNS).writerow(full)


def train(
    config: PoseGANConfig,
    dataset,
    run_dir: str | Path,
    settings: TrainSettings,
    model_path: str | Path | None = None,
    resume: bool = False,
    vgg: VGGBlock1 | None = None,
    progress: Callable[[int, int], None] | None = None,
    sample_items: Sequence[int] | None = None,
    sample_dataset=None,
) -> dict:
    """Train on ``dataset`` (items ``(src uint8, src_body, tgt uint8, tgt_body)``); returns info
    (steps, final losses, the loss note, paths). ``progress(done, total)`` is called every step
    and may raise to cancel (the state is saved first)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "samples").mkdir(exist_ok=True)
    model_path = Path(model_path) if model_path else run_dir / "model.safetensors"
    state_path = run_dir / "state.safetensors"
    device = torch.device(settings.device)

    config, loss_note = resolve_loss_config(config, vgg)
    log.info("PoseLab PoseGAN: %s", loss_note)
    if len(dataset) == 0:
        raise ValueError("the training dataset has no pairs")
    cache = SampleCache(dataset, config)
    sample_cache = SampleCache(sample_dataset, config) if sample_dataset is not None else cache
    sample_items = (
        list(sample_items) if sample_items is not None else list(range(min(4, len(sample_cache))))
    )

    with (
        torch.random.fork_rng()
    ):  # initial weights from the seed, without touching the caller's RNG
        torch.manual_seed(settings.seed)
        gen = Generator(config).to(device)
        disc = Discriminator(config).to(device)
    betas = (settings.beta1, settings.beta2)
    opt_g = torch.optim.Adam(gen.parameters(), lr=settings.lr, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=settings.lr, betas=betas)
    loss_g_fn = GeneratorLoss(
        config.nn_weight,
        config.nn_window,
        config.l1_weight,
        config.gan_weight,
        vgg.to(device) if (vgg is not None and config.nn_space == "vgg") else None,
    )

    step = 0
    if resume and state_path.is_file():
        step = checkpoint.load_train_state(state_path, gen, disc, opt_g, opt_d)["step"]
        log.info("PoseLab PoseGAN: resumed %s at step %d", run_dir, step)
    elif resume:
        log.info("PoseLab PoseGAN: nothing to resume in %s, starting at step 0", run_dir)
    losses = _LossLog(run_dir / "losses.csv", step)
    use_gan = config.gan_weight > 0
    started = time.perf_counter()
    acc: dict[str, list[float]] = {}

    def info(final: bool) -> dict:
        last = losses.rows[-1] if losses.rows else {}
        return {
            "steps": step,
            "target_steps": settings.steps,
            "finished": final,
            "loss_note": loss_note,
            "nn_space": config.nn_space,
            "nn_weight": config.nn_weight,
            "last_losses": last,
            "model_path": str(model_path),
            "run_dir": str(run_dir),
            "pairs": len(dataset),
            "batch_size": settings.batch_size,
            "lr": settings.lr,
            "seed": settings.seed,
        }

    def save(final: bool = False) -> None:
        checkpoint.save_train_state(
            state_path, gen, disc, opt_g, opt_d, step, {"loss_note": loss_note}
        )
        checkpoint.save_model(model_path, gen, step, info(final))

    if progress:
        progress(step, settings.steps)
    try:
        while step < settings.steps:
            idx = batch_indices(settings.seed, step, len(cache), settings.batch_size)
            torch.manual_seed(
                settings.seed * 1_000_003 + step
            )  # dropout, reproducible across resumes
            batch = _to(cache.batch(idx), device)
            gen.train()
            fake = generate(gen, batch)
            row: dict[str, float] = {}
            if use_gan:
                disc.requires_grad_(True)
                d_real = disc(batch["x_a"], batch["h_a"], batch["x_b"], batch["h_b"])
                d_fake = disc(batch["x_a"], batch["h_a"], fake.detach(), batch["h_b"])
                loss_d = discriminator_loss(d_real, d_fake)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                row["d_loss"] = float(loss_d.detach())
                disc.requires_grad_(False)  # no D weight gradients during the G step
                d_fake_g = disc(batch["x_a"], batch["h_a"], fake, batch["h_b"])
            else:
                d_fake_g = None
            loss_g, terms = loss_g_fn(fake, batch["x_b"], d_fake_g)
            if not math.isfinite(float(loss_g.detach())):
                raise FloatingPointError(
                    f"generator loss became {float(loss_g)} at step {step}: lower the learning rate"
                )
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            row.update(terms)
            step += 1
            for k, v in row.items():
                acc.setdefault(k, []).append(v)
            if step % settings.log_every == 0 or step == settings.steps:
                mean = {k: float(np.mean(v)) for k, v in acc.items()}
                losses.append(
                    dict(mean, step=step, seconds=round(time.perf_counter() - started, 3))
                )
                acc = {}
            if step % settings.sample_every == 0 or step == settings.steps:
                write_samples(
                    gen,
                    sample_cache,
                    sample_items,
                    run_dir / "samples" / f"step_{step:06d}.png",
                    device,
                )
            if step % settings.checkpoint_every == 0 and step < settings.steps:
                save()
            if progress:
                progress(step, settings.steps)
    except BaseException:
        log.warning(
            "PoseLab PoseGAN: training interrupted at step %d; saving a checkpoint to resume from",
            step,
        )
        save()
        _write_curve(losses.rows, run_dir / "loss_curve.png")
        raise
    save(final=True)
    curve = _write_curve(losses.rows, run_dir / "loss_curve.png")
    result = info(True)
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["loss_curve"] = curve
    result["loss_rows"] = losses.rows
    return result


@torch.no_grad()
def write_samples(
    gen: Generator, cache: SampleCache, items: Sequence[int], path: Path, device
) -> np.ndarray:
    """Rows of source | target | generated for fixed pairs, as a PNG (and returned, RGB)."""
    was_training = gen.training
    gen.eval()
    batch = _to(cache.batch(items), device)
    fake = generate(gen, batch)
    rows = [
        np.concatenate(
            [
                tensor_to_image(batch["x_a"][i]),
                tensor_to_image(batch["x_b"][i]),
                tensor_to_image(fake[i]),
            ],
            1,
        )
        for i in range(len(items))
    ]
    grid = np.concatenate(rows, 0)
    cv2.imwrite(str(path), grid[..., ::-1])
    gen.train(was_training)
    return grid


def _write_curve(rows: list[dict], path: Path) -> np.ndarray:
    img = loss_curve_image(rows)
    cv2.imwrite(str(path), img[..., ::-1])
    return img


def loss_curve_image(rows: list[dict], size: tuple[int, int] = (320, 512)) -> np.ndarray:
    """A small plot of the logged losses (each series scaled to its own range, as the legend says)."""
    h, w = size
    img = np.full((h, w, 3), 255, np.uint8)
    series = [
        ("g_total", (200, 40, 40)),
        ("d_loss", (40, 40, 200)),
        ("g_nn", (40, 150, 40)),
        ("g_l1", (180, 120, 0)),
        ("g_gan", (140, 0, 140)),
    ]
    left, right, top, bottom = 40, 10, 10, 30
    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    if len(rows) < 1:
        cv2.putText(
            img,
            "no losses logged yet",
            (left + 10, h // 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
        return img
    steps = np.array([r["step"] for r in rows], float)
    s0, s1 = steps.min(), max(steps.max(), steps.min() + 1)
    legend_y = top + 14
    for name, colour in series:
        vals = np.array([r.get(name, 0.0) for r in rows], float)
        if not np.any(vals):
            continue
        lo, hi = float(vals.min()), float(vals.max())
        span = hi - lo if hi > lo else 1.0
        xs = left + (steps - s0) / (s1 - s0) * (w - left - right)
        ys = (h - bottom) - (vals - lo) / span * (h - top - bottom)
        pts = np.stack([xs, ys], 1).round().astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(img, [pts], False, colour, 1, cv2.LINE_AA)
        cv2.putText(
            img,
            f"{name} {lo:.3g}..{hi:.3g}",
            (left + 6, legend_y),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            colour,
            1,
            cv2.LINE_AA,
        )
        legend_y += 14
    cv2.putText(
        img,
        f"step {int(s0)}..{int(steps.max())}",
        (left, h - 10),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.4,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
    return img


# ----------------------------------------------------------------------------------- evaluation


def ssim_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM as in the paper's test.py (Gaussian weights, sigma 1.5, population covariance),
    with a fixed data range of 255 (the original used the generated image's max - min)."""
    return float(
        structural_similarity(
            a,
            b,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            channel_axis=2,
            data_range=255,
        )
    )


def l1_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference with pixels in [0, 1]."""
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean() / 255.0)


@torch.no_grad()
def predict(
    gen: Generator, cache: SampleCache, indices: Sequence[int], batch_size: int = 16, device="cpu"
) -> list[np.ndarray]:
    gen.eval()
    out = []
    for i in range(0, len(indices), batch_size):
        batch = _to(cache.batch(indices[i : i + batch_size]), device)
        fake = generate(gen, batch)
        out.extend(tensor_to_image(f) for f in fake)
    return out


def score(outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> dict:
    s = [ssim_uint8(o, t) for o, t in zip(outputs, targets)]
    l1 = [l1_uint8(o, t) for o, t in zip(outputs, targets)]
    return {"ssim": float(np.mean(s)), "l1": float(np.mean(l1)), "n": len(s)}
