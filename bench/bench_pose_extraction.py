"""Pose extraction speed on the CPU at 512x512: our multi-person MediaPipe path, one MediaPipe
call (single person), and controlnet-aux OpenPose (body network, random weights in the real
file format, detect_resolution 512), measured in one run and printed as images/second and ratios.

    python bench/bench_pose_extraction.py [--images 4] [--repeats 2]

OpenPose runs with random weights because the real ones cannot be downloaded here; its cost is
the network's (the same dense convolutions whatever the values), but with random weights it
finds nobody, so its per-person hand/face stages never run: real OpenPose with hands is slower
than measured. The photos are the shared annotated ones, centre-cropped and resized to 512x512.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import pack  # noqa: E402,F401  (the repo root as the package poselab, as ComfyUI imports it)

from poselab.models.pose import detect_mediapipe, detect_openpose  # noqa: E402

DATA = Path(os.environ.get("POSELAB_SHARED", REPO.parent / "shared")) / "data" / "poses"
PHOTOS = ("ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg", "106848.jpg", "004645041.jpg",
          "fa436c914fe4a8ec1ec5474af4d3820b84d17561.jpg", "103319.jpg", "052475643.jpg")


def square_512(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read {path} (set POSELAB_SHARED to the shared data folder)")
    h, w = bgr.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return cv2.cvtColor(cv2.resize(bgr[y0:y0 + s, x0:x0 + s], (512, 512), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def rate(fn, images: list[np.ndarray], repeats: int) -> tuple[float, float]:
    """(images per second, mean people per image) after one warm-up call."""
    fn(images[0])
    people = 0
    t0 = time.perf_counter()
    for _ in range(repeats):
        for img in images:
            people += len(fn(img).people)
    dt = time.perf_counter() - t0
    n = repeats * len(images)
    return n / dt, people / n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=3, help="how many shared photos (max %d)" % len(PHOTOS))
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    images = [square_512(DATA / name) for name in PHOTOS[: max(1, min(args.images, len(PHOTOS)))]]

    import torch

    multi = detect_mediapipe.MediaPipePoseDetector()
    results = {}
    results["mediapipe multi-person (ours)"] = rate(lambda im: multi(im, max_people=10), images, args.repeats)
    results["mediapipe single call"] = rate(detect_mediapipe.single_call, images, args.repeats)
    with tempfile.TemporaryDirectory(prefix="poselab-bench-openpose-") as tmp:
        t0 = time.perf_counter()
        paths = detect_openpose.write_random_weights(tmp)
        write_s = time.perf_counter() - t0
        op = detect_openpose.OpenPoseDetector(paths[detect_openpose.BODY_FILE], detect_resolution=512)
        results["controlnet-aux openpose (body)"] = rate(lambda im: op(im, hands=False, face=False), images, args.repeats)

    print(f"CPU, {os.cpu_count()} cores visible, torch threads {torch.get_num_threads()}; "
          f"{len(images)} photos x {args.repeats} repeats at 512x512 (openpose weight files written in {write_s:.1f}s)")
    print(f"{'method':<34}{'images/s':>10}{'s/image':>10}{'people/image':>14}")
    for name, (ips, ppl) in results.items():
        print(f"{name:<34}{ips:>10.2f}{1 / ips:>10.3f}{ppl:>14.2f}")
    ours = results["mediapipe multi-person (ours)"][0]
    print(f"ratio ours / openpose:     {ours / results['controlnet-aux openpose (body)'][0]:.2f}x the speed")
    print(f"ratio ours / single call:  {ours / results['mediapipe single call'][0]:.3f}x the speed "
          f"({results['mediapipe single call'][0] / ours:.1f}x slower for multi-person)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
