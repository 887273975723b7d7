"""Pose-extraction accuracy on the shared, annotated photos (PCK@0.1 and OKS against human labels).

    python scripts/eval_pose_accuracy.py [--backend multi|single|reference] [--match greedy|hungarian]
                                         [--min-score 0.1] [--data DIR ...] [--per-image]

Both annotated sets by default: ``shared/data/poses`` (MPII, AI Challenger, CrowdPose; 10 photos,
18 people) and ``shared/data`` (``photos/`` + ``keypoints.json``: COCO and MPI-INF-3DHP; 8 photos,
13 people), 18 photos and 31 people in all. Metrics come from models/metrics/pose_accuracy.py.

Matching detections to annotated people (detections matched to nobody are ignored: the datasets
do not annotate everyone; an annotated person left unmatched scores 0 on all its joints):

* ``greedy`` (issue 9's rule, the default): annotated people, largest first, each take the unused
  detection with the most joints inside the PCK threshold (ties: the smaller mean distance);
* ``hungarian``: ``match_people``, Hungarian on the mean size-normalised distance of the joints
  both have, gated at 0.5.

Only joints OpenPose-18 shares with the dataset's skeleton are scored (models/pose/datasets.py).
A joint is correct (PCK@0.1) when it was detected within 0.1 x the person's size (longer side of
the box; of the annotated-joint extent where there is no box). OKS uses COCO's per-joint sigmas
(the neck takes the shoulders' 0.079) with the box area as the scale. "largest" scores only the
largest annotated person per photo.

Backends: ``multi`` the pack's default extractor (models/pose/detect_mediapipe.py, no mediapipe
needed), ``single`` the port's one-person pipeline (best detection only), ``reference`` one call of
``mp.solutions.pose`` from the mediapipe 0.10.21 wheel (the oracle; needs mediapipe installed).
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

from poselab.models.common.files import read_rgb  # noqa: E402
from poselab.models.metrics import pose_accuracy as metrics  # noqa: E402
from poselab.models.pose import datasets  # noqa: E402
from poselab.models.pose.keypoints import OPENPOSE18_NAMES, PoseFrame  # noqa: E402

SHARED_DATA = Path(os.environ.get("POSELAB_SHARED", REPO.parent / "shared")) / "data"
DEFAULT_DATA = (SHARED_DATA / "poses", SHARED_DATA)  # each holds a keypoints.json
THRESHOLD = 0.1
MATCHING = ("greedy", "hungarian")


def greedy_match(preds: list[np.ndarray], gts: list, thr: float) -> dict[int, int]:
    """Annotated person index -> detection index, largest annotated person first, each taking the
    unused detection with the most joints within ``thr`` x its size (ties: smaller mean distance)."""
    pairs: dict[int, int] = {}
    used: set[int] = set()
    for gi in sorted(range(len(gts)), key=lambda i: -gts[i].size):
        g = gts[gi]
        ann = g.body[:, 2] > 0
        best, best_key = None, None
        for pj, p in enumerate(preds):
            if pj in used:
                continue
            both = ann & (p[:, 2] > 0)
            dist = np.linalg.norm(p[:, :2] - g.body[:, :2], axis=1)
            hits = int((both & (dist <= thr * g.size)).sum())
            mean = float(dist[both].mean()) if both.any() else np.inf
            key = (hits, -mean)
            if hits > 0 and (best_key is None or key > best_key):
                best, best_key = pj, key
        if best is not None:
            pairs[gi] = best
            used.add(best)
    return pairs


def load_sets(folders) -> list[tuple[dict, Path]]:
    """``(annotation entry, folder its image path is relative to)`` for every annotated photo."""
    out = []
    for folder in folders:
        folder = Path(folder)
        for entry in json.loads((folder / "keypoints.json").read_text()):
            out.append((entry, folder))
    return out


def detect_all(detect, entries: list[tuple[dict, Path]]) -> tuple[list[PoseFrame], float]:
    """``detect(image_rgb) -> PoseFrame`` on every annotated photo, and the seconds it took."""
    frames, seconds = [], 0.0
    for entry, data_dir in entries:
        rgb = read_rgb(data_dir / entry["image"])
        t0 = time.perf_counter()
        frames.append(detect(rgb))
        seconds += time.perf_counter() - t0
    return frames, seconds


def score(
    frames: list[PoseFrame],
    entries: list[tuple[dict, Path]],
    thr: float = THRESHOLD,
    match: str = "greedy",
    seconds: float = 0.0,
) -> dict:
    """PCK / OKS of detected frames against the annotations (see the module docstring)."""
    if match not in MATCHING:
        raise ValueError(f"unknown matching {match!r}: use one of {MATCHING}")
    per_joint_hits = {"all": np.zeros(18), "largest": np.zeros(18)}
    per_joint_count = {"all": np.zeros(18), "largest": np.zeros(18)}
    oks_values = {"all": [], "largest": []}
    images = []
    for frame, (entry, _) in zip(frames, entries):
        gts = datasets.load_annotated_people(entry)
        preds = [p.body for p in frame.people]
        if match == "greedy":
            pairs = greedy_match(preds, gts, thr)
        else:
            pairs = {
                g: p for g, p in metrics.match_people(preds, [g.body for g in gts]) if p is not None
            }
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
            img_hits.append(round(float(hits.mean()), 3) if len(hits) else 0.0)
        images.append(
            {
                "image": entry["image"],
                "detected": len(preds),
                "annotated": len(gts),
                "matched": len(pairs),
                "pck_per_person": img_hits,
                "pck_largest": img_hits[largest],
            }
        )
    out = {"threshold": thr, "match": match, "seconds": seconds, "images": images}
    for key in ("all", "largest"):
        cnt = per_joint_count[key]
        out[key] = {
            "pck": float(per_joint_hits[key].sum() / cnt.sum()),
            "oks": float(np.mean(oks_values[key])),
            "people": len(oks_values[key]),
            "per_joint": {
                OPENPOSE18_NAMES[j]: float(per_joint_hits[key][j] / cnt[j])
                for j in range(18)
                if cnt[j] > 0
            },
        }
    return out


def evaluate(
    detect, entries: list[tuple[dict, Path]], thr: float = THRESHOLD, match: str = "greedy"
) -> dict:
    frames, seconds = detect_all(detect, entries)
    return score(frames, entries, thr, match, seconds)


def make_detector(backend: str, min_score: float, **options):
    if backend == "multi":
        from poselab.models.pose import detect_mediapipe

        det = detect_mediapipe.MediaPipePoseDetector(min_score=min_score, **options)
        return lambda rgb: det(rgb, max_people=10)
    if backend == "single":
        from poselab.models.pose import detect_mediapipe

        return lambda rgb: detect_mediapipe.single_call(rgb, min_score=min_score)
    if backend == "reference":
        return reference_detector(min_score)
    raise ValueError(f"unknown backend {backend!r}: use multi, single or reference")


def reference_detector(min_score: float):
    """One ``mp.solutions.pose`` call (mediapipe 0.10.21, the parity oracle) per image."""
    import mediapipe as mp

    from poselab.models.pose.keypoints import Person, mediapipe33_to_openpose18

    graph = mp.solutions.pose.Pose(
        static_image_mode=True, model_complexity=1, min_detection_confidence=0.5
    )

    def detect(rgb):
        h, w = rgb.shape[:2]
        frame = PoseFrame(width=w, height=h)
        res = graph.process(rgb)
        if res.pose_landmarks is not None:
            lm = np.array(
                [(p.x * w, p.y * h, p.visibility) for p in res.pose_landmarks.landmark], np.float32
            )
            body = mediapipe33_to_openpose18(lm)
            body[body[:, 2] <= min_score] = 0.0
            frame.people.append(Person(body=body))
        return frame

    return detect


def format_table(results: dict[str, dict]) -> str:
    names = list(results)
    joints = [n for n in OPENPOSE18_NAMES if n in results[names[0]]["all"]["per_joint"]]
    head = f"{'PCK@0.1':<16}" + "".join(f"{n + ' all':>18}{n + ' largest':>22}" for n in names)
    lines = [head]
    for j in joints:
        lines.append(
            f"{j:<16}"
            + "".join(
                f"{r['all']['per_joint'][j]:>18.3f}{r['largest']['per_joint'].get(j, float('nan')):>22.3f}"
                for r in results.values()
            )
        )
    lines.append(
        f"{'OVERALL PCK':<16}"
        + "".join(f"{r['all']['pck']:>18.3f}{r['largest']['pck']:>22.3f}" for r in results.values())
    )
    lines.append(
        f"{'OKS':<16}"
        + "".join(f"{r['all']['oks']:>18.3f}{r['largest']['oks']:>22.3f}" for r in results.values())
    )
    lines.append(
        f"{'people':<16}"
        + "".join(
            f"{r['all']['people']:>18d}{r['largest']['people']:>22d}" for r in results.values()
        )
    )
    lines.append(
        f"{'seconds':<16}" + "".join(f"{r['seconds']:>18.1f}{'':>22}" for r in results.values())
    )
    return "\n".join(lines)


def format_images(results: dict[str, dict]) -> str:
    names = list(results)
    first = results[names[0]]["images"]
    lines = [
        f"{'image':<46}{'people':>7}"
        + "".join(f"{n + ' found':>16}{n + ' PCK/person':>34}" for n in names)
    ]
    for k, im in enumerate(first):
        row = f"{im['image'][-45:]:<46}{im['annotated']:>7}"
        for n in names:
            r = results[n]["images"][k]
            row += f"{r['detected']:>16}{' '.join(f'{v:.2f}' for v in r['pck_per_person']):>34}"
        lines.append(row)
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--backend",
        action="append",
        choices=["multi", "single", "reference"],
        help="repeatable; default: multi and single",
    )
    ap.add_argument("--match", choices=MATCHING, action="append", help="repeatable; default: both")
    ap.add_argument("--min-score", type=float, default=0.1, help="the node's default")
    ap.add_argument(
        "--data",
        type=Path,
        action="append",
        help="folder(s) with a keypoints.json (default: both shared sets)",
    )
    ap.add_argument("--per-image", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    entries = load_sets(args.data or DEFAULT_DATA)
    results = {}
    for backend in args.backend or ["multi", "single"]:
        frames, seconds = detect_all(make_detector(backend, args.min_score), entries)
        for match in args.match or MATCHING:
            results[f"{backend}/{match}"] = score(frames, entries, match=match, seconds=seconds)
    print(format_table(results))
    if args.per_image:
        print(format_images(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
