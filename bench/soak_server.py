"""Soak: many mixed prompts against one real ComfyUI server; no failure but the intended ones,
and no memory growth after warm-up.

    python bench/soak_server.py [--prompts 1000] [--sample-every 50] [--warmup 100]

The mix (in a fixed, seeded order): pose extraction on a small photo, the part-warp repose
(the main job), image metrics, pose rendering and heatmaps, and bad requests interleaved: a
malformed pose JSON, a pose far off its canvas, a dataset path outside ComfyUI's folders, a
missing model file. Every prompt differs from the last of its kind (so ComfyUI's cache does not
skip the work). The server's resident memory (RSS, with its children) is sampled every
``--sample-every`` prompts; the slope after ``--warmup`` prompts is fitted by least squares and
printed as MB per 1000 prompts. Exit status 1 when an unexpected failure happened or the RSS grew
by more than ``--max-growth-mb`` after warm-up.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import comfy_host  # noqa: E402


def _pose(dx: float, canvas: int = 256) -> str:
    body = []
    for i in range(18):
        body += [80.0 + dx + 3 * i, 40.0 + 10 * i, 1.0]
    return json.dumps(
        [{"people": [{"pose_keypoints_2d": body}], "canvas_width": canvas, "canvas_height": canvas}]
    )


def _extract(i: int) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "soak.png"}},
        "2": {
            "class_type": "PoseLabExtractPose",
            "inputs": {
                "image": ["1", 0],
                "backend": "mediapipe",
                "max_people": 2,
                "min_score": 0.1 + (i % 50) * 1e-4,
            },
        },
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 1]}},
    }


def _repose(i: int) -> dict:
    prompt = json.loads((REPO / "workflows" / "api" / "repose_to_named_pose.json").read_text())
    prompt["1"]["inputs"]["image"] = "soak.png"
    prompt["4"]["inputs"]["feather"] = 1.0 + (i % 50) * 0.01
    return prompt


def _metrics(i: int) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "soak.png"}},
        "2": {
            "class_type": "ImageBlur",
            "inputs": {"image": ["1", 0], "blur_radius": 1 + i % 5, "sigma": 1.0},
        },
        "3": {
            "class_type": "PoseLabImageMetrics",
            "inputs": {"image": ["2", 0], "reference": ["1", 0]},
        },
    }


def _render(i: int) -> dict:
    return {
        "1": {
            "class_type": "PoseLabLoadPoseJSON",
            "inputs": {"json_text": _pose(i % 40), "file": "(none)"},
        },
        "2": {
            "class_type": "PoseLabRenderPose",
            "inputs": {
                "pose": ["1", 0],
                "style": "openpose",
                "width": 0,
                "height": 0,
                "hands_and_face": True,
            },
        },
        "3": {
            "class_type": "PoseLabPoseHeatmaps",
            "inputs": {"pose": ["1", 0], "sigma": 4.0, "person": -1},
        },
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }


def _bad(i: int) -> dict:
    kind = i % 4
    if kind == 0:  # malformed JSON
        pose = {
            "class_type": "PoseLabLoadPoseJSON",
            "inputs": {"json_text": "{broken" + str(i), "file": "(none)"},
        }
    elif kind == 1:  # far off its canvas
        pose = {
            "class_type": "PoseLabLoadPoseJSON",
            "inputs": {"json_text": _pose(1e7 + i), "file": "(none)"},
        }
    if kind in (0, 1):
        return {
            "1": pose,
            "2": {
                "class_type": "PoseLabSavePoseJSON",
                "inputs": {"pose": ["1", 0], "filename_prefix": f"soak/bad_{i}"},
            },
        }
    if kind == 2:  # a dataset outside ComfyUI's folders
        return {
            "1": {
                "class_type": "PoseLabTrainPoseGAN",
                "inputs": {
                    "dataset": f"/etc/soak{i}",
                    "size": "market_128x64",
                    "steps": 1,
                    "batch_size": 1,
                    "learning_rate": 2e-4,
                    "seed": 0,
                    "resume": False,
                    "checkpoint_name": "soak",
                    "warp_skip": "mask",
                    "width_mult": 0.0625,
                    "output": "blend",
                    "nn_window": "3",
                    "l1_weight": 0.0,
                    "vgg_weights": "(none: pixel-space NN loss)",
                    "sample_every": 1000,
                    "checkpoint_every": 1000,
                },
            },
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        }
    return {  # a missing model file
        "1": {"class_type": "LoadImage", "inputs": {"image": "soak.png"}},
        "2": {
            "class_type": "PoseLabImageMetrics",
            "inputs": {
                "image": ["1", 0],
                "reference": ["1", 0],
                "lpips_weights": f"missing_{i}.pth",
            },
        },
    }


MIX = [
    ("extract", _extract, 0.15),
    ("repose", _repose, 0.1),
    ("metrics", _metrics, 0.2),
    ("render", _render, 0.25),
    ("bad", _bad, 0.3),
]


def rss_mb(proc: psutil.Process) -> float:
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--sample-every", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--max-growth-mb", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    kinds = rng.choices([m[0] for m in MIX], weights=[m[2] for m in MIX], k=args.prompts)
    builders = {name: fn for name, fn, _ in MIX}
    samples: list[tuple[int, float]] = []
    unexpected: list[str] = []
    counts = {name: 0 for name, _, _ in MIX}
    seconds = {name: 0.0 for name, _, _ in MIX}
    with (
        tempfile.TemporaryDirectory(prefix="poselab-soak-") as base,
        comfy_host.running_server(Path(base)) as server,
    ):
        photo = (
            Image.open(REPO / "assets" / "samples" / "cameraman.png")
            .convert("RGB")
            .resize((256, 256))
        )
        photo.save(server.base_dir / "input" / "soak.png")
        proc = psutil.Process(server.process.pid)
        info = server.object_info()
        start = time.time()
        for i, kind in enumerate(kinds):
            t0 = time.time()
            try:
                entry = server.run(comfy_host.fill_defaults(builders[kind](i), info), timeout=600)
                failed = comfy_host.execution_error(entry)
            except comfy_host.PromptRejected as exc:
                failed = f"rejected: {exc}"
            seconds[kind] += time.time() - t0
            counts[kind] += 1
            if (failed is None) == (kind == "bad"):
                unexpected.append(
                    f"prompt {i} ({kind}): {'succeeded' if failed is None else failed}"
                )
            if (i + 1) % args.sample_every == 0:
                samples.append((i + 1, rss_mb(proc)))
                print(
                    f"[soak] {i + 1}/{len(kinds)} prompts, {time.time() - start:.0f} s, server RSS "
                    f"{samples[-1][1]:.0f} MB, unexpected {len(unexpected)}",
                    flush=True,
                )
    after = [(n, m) for n, m in samples if n >= args.warmup]
    growth = after[-1][1] - after[0][1] if len(after) >= 2 else 0.0
    slope = (
        float(np.polyfit([n for n, _ in after], [m for _, m in after], 1)[0] * 1000)
        if len(after) >= 3
        else 0.0
    )
    print("\nkind      prompts  mean s")
    for name, _, _ in MIX:
        print(f"{name:9s} {counts[name]:7d}  {seconds[name] / max(counts[name], 1):6.2f}")
    print(f"\nRSS samples (prompt, MB): {[(n, round(m)) for n, m in samples]}")
    print(
        f"after warm-up ({args.warmup} prompts): growth {growth:+.1f} MB, least-squares slope {slope:+.1f} MB "
        f"per 1000 prompts"
    )
    print(f"unexpected outcomes: {len(unexpected)}")
    for line in unexpected[:20]:
        print("  " + line[:300])
    ok = not unexpected and growth < args.max_growth_mb
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
