"""Pose-extraction accuracy on the shared, annotated photos (PCK@0.1 and OKS against human labels).

    python scripts/eval_pose_accuracy.py [--backend mediapipe|single] [--min-score 0.3] [--data DIR]

Metrics come from models/metrics/pose_accuracy.py. For each photo the detector's people are
matched one-to-one to the annotated people (``match_people``: Hungarian on the mean
size-normalised distance of the joints both have, gated at 0.5); detections matched to
nobody are ignored, because the datasets do not annotate everyone in a photo. An annotated
person left unmatched scores 0 on all its joints. Only joints OpenPose-18 shares with the
dataset's skeleton are scored (models/pose/datasets.py). A joint is correct (PCK@0.1) when it
was detected within 0.1 x the person's size (longer side of the box; of the annotated-joint
extent for MPII, head_top included). OKS uses COCO's per-joint sigmas (the neck takes the
shoulders' 0.079) with the box area as the scale. "largest" scores only the largest annotated person per photo.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import pack  # noqa: E402,F401  (the repo root as the package poselab, as ComfyUI imports it)

from poselab.models.metrics import pose_accuracy as metrics  # noqa: E402
from poselab.models.pose import datasets  # noqa: E402
from poselab.models.pose.keypoints import OPENPOSE18_NAMES, PoseFrame  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("POSELAB_SHARED", REPO.parent / "shared")) / "data" / "poses"
THRESHOLD = 0.1

def evaluate(detect, annotations: list[dict], data_dir: Path, thr: float = THRESHOLD) -> dict:
    """Score ``detect(image_rgb) -> PoseFrame`` on every annotated photo."""
    import cv2

    per_joint_hits = {"all": np.zeros(18), "largest": np.zeros(18)}
    per_joint_count = {"all": np.zeros(18), "largest": np.zeros(18)}
    oks_values = {"all": [], "largest": []}
    images = []
    seconds = 0.0
    for entry in annotations:
        bgr = cv2.imread(str(data_dir / entry["image"]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read {data_dir / entry['image']}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        t0 = time.perf_counter()
        frame: PoseFrame = detect(rgb)
        seconds += time.perf_counter() - t0
        gts = datasets.load_annotated_people(entry)
        preds = [p.body for p in frame.people]
        pairs = {g: p for g, p in metrics.match_people(preds, [g.body for g in gts]) if p is not None}
        largest = int(np.argmax([g.size for g in gts]))
        img_hits = []
        for i, g in enumerate(gts):
            pred = preds[pairs[i]] if i in pairs else np.zeros((18, 3), np.float32)
            ann = np.flatnonzero(g.body[:, 2] > 0)
            hits = metrics.pck(pred, g.body, g.size, thr)["per_joint"][ann]
            o = float(metrics.oks(pred, g.body, g.area)[0])
            for key in ("all", "largest") if i == largest else ("all",):
                per_joint_hits[key][ann] += hits
                per_joint_count[key][ann] += 1
                oks_values[key].append(o)
            img_hits.append(float(hits.mean()) if len(hits) else 0.0)
        images.append({"image": entry["image"], "detected": len(preds), "annotated": len(gts),
                       "matched": len(pairs), "pck_per_person": img_hits})
    out = {"threshold": thr, "seconds": seconds, "images": images}
    for key in ("all", "largest"):
        cnt = per_joint_count[key]
        out[key] = {
            "pck": float(per_joint_hits[key].sum() / cnt.sum()),
            "oks": float(np.mean(oks_values[key])),
            "people": len(oks_values[key]),
            "per_joint": {OPENPOSE18_NAMES[j]: float(per_joint_hits[key][j] / cnt[j]) for j in range(18) if cnt[j] > 0},
        }
    return out


def make_detector(backend: str, min_score: float):
    from poselab.models.pose import detect_mediapipe

    if backend == "mediapipe":
        det = detect_mediapipe.MediaPipePoseDetector(min_score=min_score)
        return lambda rgb: det(rgb, max_people=10)
    if backend == "single":
        return lambda rgb: detect_mediapipe.single_call(rgb, min_score=min_score)
    raise ValueError(f"unknown backend {backend!r}: use mediapipe or single")


def format_table(results: dict[str, dict]) -> str:
    names = list(results)
    joints = [n for n in OPENPOSE18_NAMES if n in results[names[0]]["all"]["per_joint"]]
    head = f"{'PCK@0.1':<16}" + "".join(f"{n + ' all':>16}{n + ' largest':>18}" for n in names)
    lines = [head]
    for j in joints:
        lines.append(f"{j:<16}" + "".join(
            f"{r['all']['per_joint'][j]:>16.3f}{r['largest']['per_joint'].get(j, float('nan')):>18.3f}" for r in results.values()))
    lines.append(f"{'OVERALL PCK':<16}" + "".join(f"{r['all']['pck']:>16.3f}{r['largest']['pck']:>18.3f}" for r in results.values()))
    lines.append(f"{'OKS':<16}" + "".join(f"{r['all']['oks']:>16.3f}{r['largest']['oks']:>18.3f}" for r in results.values()))
    lines.append(f"{'people':<16}" + "".join(f"{r['all']['people']:>16d}{r['largest']['people']:>18d}" for r in results.values()))
    lines.append(f"{'seconds':<16}" + "".join(f"{r['seconds']:>16.1f}{'':>18}" for r in results.values()))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", action="append", choices=["mediapipe", "single"],
                    help="repeatable; default: both mediapipe (multi-person) and single (one call)")
    ap.add_argument("--min-score", type=float, default=0.1, help="the node's default")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--per-image", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    annotations = json.loads((args.data / "keypoints.json").read_text())
    results = {}
    for backend in args.backend or ["mediapipe", "single"]:
        results[backend] = evaluate(make_detector(backend, args.min_score), annotations, args.data)
        if args.per_image:
            for im in results[backend]["images"]:
                print(backend, im)
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
