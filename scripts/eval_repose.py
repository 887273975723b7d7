"""Acceptance of the classical part-warp repose on the shared repose pairs.

    python scripts/eval_repose.py [--data DIR] [--out DIR] [--mask pose|selfie] [--retarget]

For each pair of ``pairs.json`` the source and target photos' poses are extracted (MediaPipe,
the pack's default detector), the source person is reposed into the target pose, and the
output's pose is extracted again. ``same_person`` pairs use the target pose as it is (same
camera, same canvas: the target photo is the ground truth); ``pose_reference`` pairs first
align the target pose to the source person (torso centre and scale; ``--retarget`` also gives
it the source person's bone lengths), as the target photo only supplies the pose.

Reported per pair, over the joints present in both the target and the source pose:
* before: mean distance source pose -> target pose (what doing nothing scores);
* after: mean distance output pose -> target pose, over those joints the output's pose has;
* both in pixels and divided by the target's torso scale, plus the fraction of those joints
  found again in the output (a repose that destroys the person loses joints).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import pack  # noqa: E402,F401  (the repo root as the package poselab, as ComfyUI imports it)

from poselab.models.common.files import read_rgb  # noqa: E402
from poselab.models.pose import parts  # noqa: E402
from poselab.models.pose.detect_mediapipe import MediaPipePoseDetector  # noqa: E402
from poselab.models.repose import part_warp  # noqa: E402
from poselab.models.segmentation import masks  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("POSELAB_SHARED", REPO.parent / "shared")) / "data" / "poses"


def nearest_person(bodies: list[np.ndarray], ref: np.ndarray) -> np.ndarray | None:
    """The body whose shared joints lie closest to ``ref`` (the output may show bystanders too)."""
    best, best_d = None, np.inf
    for body in bodies:
        both = (body[:, 2] > 0) & (ref[:, 2] > 0)
        if both.sum() < 3:
            continue
        d = float(np.linalg.norm(body[both, :2] - ref[both, :2], axis=1).mean())
        if d < best_d:
            best, best_d = body, d
    return best


def keypoint_errors(src: np.ndarray, out: np.ndarray | None, tgt: np.ndarray) -> dict:
    joints = (tgt[:, 2] > 0) & (src[:, 2] > 0)
    scale = max(parts.torso_scale(tgt), 1e-6)
    before = float(np.linalg.norm(src[joints, :2] - tgt[joints, :2], axis=1).mean())
    found = joints & (out[:, 2] > 0) if out is not None else np.zeros_like(joints)
    after = (
        float(np.linalg.norm(out[found, :2] - tgt[found, :2], axis=1).mean())
        if found.any()
        else float("inf")
    )
    return {
        "joints": int(joints.sum()),
        "found_fraction": float(found.sum() / max(joints.sum(), 1)),
        "before_px": before,
        "after_px": after,
        "before_norm": before / scale,
        "after_norm": after / scale,
        "torso_scale": scale,
    }


def evaluate(
    data: Path = DEFAULT_DATA,
    out_dir: Path | None = None,
    mask_model: str = "pose",
    retarget: bool = False,
) -> list[dict]:
    """One row of numbers per pair (see the module docstring)."""
    detector = MediaPipePoseDetector()
    pairs = json.loads((data / "pairs.json").read_text())
    results = []
    for i, pair in enumerate(pairs):
        source, target = read_rgb(data / pair["source"]), read_rgb(data / pair["target"])
        src_frame, tgt_frame = detector(source, max_people=3), detector(target, max_people=3)
        if not src_frame.people or not tgt_frame.people:
            raise RuntimeError(
                f"pair {i}: no person detected in {'source' if not src_frame.people else 'target'}"
            )
        # the detector puts the largest (main) person first
        src_bodies = [p.body for p in src_frame.people]
        src, tgt = src_bodies[0], tgt_frame.people[0].body
        if pair["kind"] == "same_person" and source.shape == target.shape:
            goal = tgt
        elif retarget:
            from poselab.models.pose.retarget import retarget_body

            goal = retarget_body(src, tgt, anchor="source")
        else:
            goal = part_warp.align_to_source(tgt, src)
        t0 = time.perf_counter()
        mask = masks.person_mask_mediapipe(source, src_bodies, 0, model=mask_model)
        t1 = time.perf_counter()
        result = part_warp.repose_person(source, src, goal, mask)
        t2 = time.perf_counter()
        out_frame = detector(result.image, max_people=3)
        out = nearest_person([p.body for p in out_frame.people], goal)
        row = {
            "pair": i,
            "source": pair["source"],
            "target": pair["target"],
            "kind": pair["kind"],
            **keypoint_errors(src, out, goal),
            "mask_s": t1 - t0,
            "repose_s": t2 - t1,
        }
        results.append(row)
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(
                str(out_dir / f"repose_pair{i}.png"), cv2.cvtColor(result.image, cv2.COLOR_RGB2BGR)
            )
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="folder with pairs.json and the photos"
    )
    ap.add_argument("--out", type=Path, default=None, help="write the reposed images here")
    ap.add_argument(
        "--mask",
        choices=masks.MEDIAPIPE_MODELS,
        default="pose",
        help="MediaPipe model for the person mask",
    )
    ap.add_argument(
        "--retarget",
        action="store_true",
        help="pose_reference pairs: retarget bone lengths instead of aligning",
    )
    args = ap.parse_args()
    rows = evaluate(args.data, args.out, args.mask, args.retarget)
    print(
        f"{'pair':<5}{'kind':<16}{'joints':>7}{'found':>7}{'before px':>11}{'after px':>10}{'before/st':>11}{'after/st':>10}{'mask s':>8}{'repose s':>9}"
    )
    for r in rows:
        print(
            f"{r['pair']:<5}{r['kind']:<16}{r['joints']:>7}{r['found_fraction']:>7.2f}{r['before_px']:>11.1f}{r['after_px']:>10.1f}"
            f"{r['before_norm']:>11.3f}{r['after_norm']:>10.3f}{r['mask_s']:>8.2f}{r['repose_s']:>9.2f}"
        )
    better = sum(r["after_px"] < r["before_px"] for r in rows)
    print(
        f"closer to the target after repose: {better}/{len(rows)} pairs; "
        f"mean before/st {np.mean([r['before_norm'] for r in rows]):.3f}, after/st {np.mean([r['after_norm'] for r in rows]):.3f}"
    )


if __name__ == "__main__":
    main()
