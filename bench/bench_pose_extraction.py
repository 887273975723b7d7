"""Pose extraction speed at 512x512: the port of MediaPipe's models (models/mediapipe_port) against
the reference mediapipe 0.10.21 and controlnet-aux OpenPose, measured in one run.

    python bench/bench_pose_extraction.py [--repeats 2] [--device cpu|cuda] [--gpu-batch 64]

Printed per method: seconds per image (wall clock and process CPU time; the CPU time is what the
work costs even when other jobs share the machine), people found per image, and the ratio to the
reference measured in the same run:

* "one person": MediaPipe's own pipeline (best detection, landmarks, no mask) on photos of one
  person: the port (onnxruntime and torch executors) vs ``mp.solutions.pose`` (static images);
* "multi-person": the pack's default extractor (body; then with hands and face) on photos of
  two or three people, vs one ``mp.solutions.pose`` call (one person) and vs ``mp.solutions.holistic``
  (one person with hands and face), the closest the reference can do;
* controlnet-aux OpenPose (body network with random weights in the real file format: real ones
  cannot be downloaded here; with random weights it finds nobody, so its hand/face stages never
  run and real OpenPose with hands is slower than measured).

``--device cuda``: the port on the GPU (torch executor, TF32 off), plus images per second for a
batch of ``--gpu-batch`` images at 512x512 through the multi-person extractor. The photos are the
shared annotated ones, centre-cropped and resized to 512x512.
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
ONE_PERSON = ("004645041.jpg", "060754485.jpg", "052475643.jpg")
GROUPS = (
    "ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg",
    "106848.jpg",
    "054d9ce9201beffc76e5ff2169d2af2f027002ca.jpg",
    "103319.jpg",
)


def square_512(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(
            f"cannot read {path} (set POSELAB_SHARED to the shared data folder)"
        )
    h, w = bgr.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return cv2.cvtColor(
        cv2.resize(bgr[y0 : y0 + s, x0 : x0 + s], (512, 512), interpolation=cv2.INTER_AREA),
        cv2.COLOR_BGR2RGB,
    )


def rate(fn, images: list[np.ndarray], repeats: int) -> tuple[float, float, float]:
    """(wall s/image, CPU s/image, people/image) after one warm-up call."""
    fn(images[0])
    people = 0
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        for img in images:
            people += fn(img)
    n = repeats * len(images)
    return (time.perf_counter() - w0) / n, (time.process_time() - c0) / n, people / n


def reference():
    """The mediapipe 0.10.21 solutions, or None when mediapipe (the dev oracle) is not installed."""
    try:
        import mediapipe as mp
    except ImportError:
        return None
    pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1)
    holistic = mp.solutions.holistic.Holistic(static_image_mode=True, model_complexity=1)
    return {
        "pose": lambda im: int(pose.process(im).pose_landmarks is not None),
        "holistic": lambda im: int(holistic.process(im).pose_landmarks is not None),
    }


def with_backend(backend: str, fn):
    def run(im):
        old = os.environ.get("POSELAB_MEDIAPIPE_BACKEND")
        os.environ["POSELAB_MEDIAPIPE_BACKEND"] = backend
        try:
            return fn(im)
        finally:
            if old is None:
                del os.environ["POSELAB_MEDIAPIPE_BACKEND"]
            else:
                os.environ["POSELAB_MEDIAPIPE_BACKEND"] = old

    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--gpu-batch", type=int, default=64)
    ap.add_argument("--no-openpose", action="store_true")
    args = ap.parse_args(argv)
    import torch

    solo = [square_512(DATA / n) for n in ONE_PERSON]
    groups = [square_512(DATA / n) for n in GROUPS]
    dev = args.device
    single = lambda im: len(detect_mediapipe.single_call(im, device=dev).people)  # noqa: E731
    body = detect_mediapipe.MediaPipePoseDetector(device=dev)
    full = detect_mediapipe.MediaPipePoseDetector(hands=True, face=True, device=dev)
    ref = reference()
    rows: dict[str, tuple] = {}
    backends = ["torch"] if dev != "cpu" else ["onnxruntime", "torch"]
    for b in backends:
        rows[f"one person: port ({b})"] = rate(with_backend(b, single), solo, args.repeats)
    if ref:
        rows["one person: mediapipe 0.10.21 (reference)"] = rate(ref["pose"], solo, args.repeats)
    for b in backends:
        rows[f"multi-person: port body ({b})"] = rate(
            with_backend(b, lambda im: len(body(im).people)), groups, args.repeats
        )
        rows[f"multi-person: port + hands + face ({b})"] = rate(
            with_backend(b, lambda im: len(full(im).people)), groups, args.repeats
        )
    if ref:
        rows["multi-person: mediapipe pose (1 person)"] = rate(ref["pose"], groups, args.repeats)
        rows["multi-person: mediapipe holistic (1 person)"] = rate(
            ref["holistic"], groups, args.repeats
        )
    if not args.no_openpose:
        with tempfile.TemporaryDirectory(prefix="poselab-bench-openpose-") as tmp:
            paths = detect_openpose.write_random_weights(tmp)
            op = detect_openpose.OpenPoseDetector(
                paths[detect_openpose.BODY_FILE], detect_resolution=512
            )
            rows["multi-person: openpose body (random weights)"] = rate(
                lambda im: len(op(im, hands=False, face=False).people), groups, args.repeats
            )

    print(
        f"device {dev}, {os.cpu_count()} CPU cores visible, torch threads {torch.get_num_threads()}; "
        f"{len(solo)} one-person and {len(groups)} group photos x {args.repeats} repeats at 512x512"
    )
    print(f"{'method':<48}{'s/image':>9}{'CPU s/img':>11}{'people/img':>12}{'x reference':>13}")
    for name, (wall, cpu, ppl) in rows.items():
        base = None
        if ref:
            base = rows[
                "one person: mediapipe 0.10.21 (reference)"
                if name.startswith("one")
                else "multi-person: mediapipe pose (1 person)"
            ][0]
        ratio = f"{wall / base:.2f}" if base else "-"
        print(f"{name:<48}{wall:>9.3f}{cpu:>11.3f}{ppl:>12.2f}{ratio:>13}")
    if dev != "cpu" and torch.cuda.is_available():
        batch = [groups[i % len(groups)] for i in range(args.gpu_batch)]
        body.detect_batch(batch[:4])
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = body.detect_batch(batch)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        print(
            f"GPU batch of {len(batch)} at 512x512, multi-person body: {len(batch) / dt:.1f} images/s "
            f"({sum(len(f.people) for f, _ in out) / len(batch):.2f} people/image)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
