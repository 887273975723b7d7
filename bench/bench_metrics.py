"""SSIM + PSNR + PCK over 100 image pairs at 256x256 on the CPU: the pack's vectorised torch
implementation against scikit-image's SSIM/PSNR (the reference the papers use), in one run.

    python bench/bench_metrics.py [--pairs 100] [--size 256] [--repeat 3]

Both sides compute the same numbers (checked here to 1e-4); PCK is the same NumPy code on
both sides. The ratio printed is reference time / ours (>1: ours is faster), best of --repeat.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import pack  # noqa: E402,F401  (the repo root as the package poselab, as ComfyUI imports it)
from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # noqa: E402

from poselab.models.metrics import image_quality, pose_accuracy  # noqa: E402


def data(n: int, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) * 0.5 + 0.5 for c in range(3)], -1)
    a = np.clip(base[None] + rng.normal(0, 0.05, (n, size, size, 3)), 0, 1).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1).astype(np.float32)
    gt = np.concatenate([rng.uniform(0, size, (n, 18, 2)), np.ones((n, 18, 1))], -1)
    pred = gt.copy()
    pred[..., :2] += rng.normal(0, size * 0.05, (n, 18, 2))
    return a, b, pred, gt


def ours(a, b, pred, gt, dtype):
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    s = image_quality.ssim(ta, tb, dtype=dtype).numpy()
    p = image_quality.psnr(ta, tb).numpy()
    ref = pose_accuracy.bbox_size(gt)
    k = [pose_accuracy.pck(pred, gt, ref, al)["overall"] for al in (0.05, 0.1, 0.2)]
    return s, p, k


def reference(a, b, pred, gt):
    s = np.array(
        [
            structural_similarity(
                a[i],
                b[i],
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                channel_axis=-1,
                data_range=1.0,
            )
            for i in range(len(a))
        ]
    )
    p = np.array([peak_signal_noise_ratio(a[i], b[i], data_range=1.0) for i in range(len(a))])
    ref = pose_accuracy.bbox_size(gt)
    k = [pose_accuracy.pck(pred, gt, ref, al)["overall"] for al in (0.05, 0.1, 0.2)]
    return s, p, k


def best(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    a, b, pred, gt = data(args.pairs, args.size)
    t_ref, (s_ref, p_ref, k_ref) = best(lambda: reference(a, b, pred, gt), args.repeat)
    print(
        f"CPU threads: torch {torch.get_num_threads()}; {args.pairs} pairs at {args.size}x{args.size}"
    )
    print(f"scikit-image SSIM+PSNR (+PCK): {t_ref:.3f} s")
    for name, dtype in (
        ("float32", torch.float32),
    ):  # the default; float64 exists for bit-level checks
        t, (s, p, k) = best(lambda: ours(a, b, pred, gt, dtype), args.repeat)
        err_s = float(np.abs(s - s_ref).max())
        err_p = float(np.abs(p - p_ref).max())
        assert err_s < 1e-4 and err_p < 1e-3 and np.allclose(k, k_ref), (err_s, err_p)
        print(
            f"PoseLab torch {name}: {t:.3f} s   max |dSSIM| {err_s:.1e}, |dPSNR| {err_p:.1e}   "
            f"ratio (scikit-image / ours) {t_ref / t:.2f}x"
        )


if __name__ == "__main__":
    main()
