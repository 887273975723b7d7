"""PoseLab evaluation command: the metric nodes' numbers over a folder of pairs.

    python scripts/evaluate.py run DIR [--out OUT] [--lpips-weights F] [--insightface DIR]
                                       [--inception-weights F] [--no-pose] [--no-identity]
    python scripts/evaluate.py prepare-pairs DIR [--pairs pairs.json] [--methods identity,part_warp]

``run`` writes OUT/metrics.csv (one row per method and pair), OUT/summary.json (means per
method and every row) and OUT/report.png, and prints the table. ``prepare-pairs`` turns the
shared repose pairs (``pairs.json``) into that layout with the identity baseline (result =
source) and the embedded-default part-warp repose, so ``run`` compares them.

(The pack's folder is usually named with a hyphen, so ``python -m`` cannot address it; this
script imports the folder as the package ``poselab`` the way ComfyUI does.)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import pack  # noqa: E402,F401  (the repo root as the package poselab, as ComfyUI imports it)

from poselab.models.common.files import read_rgb  # noqa: E402
from poselab.models.metrics import evaluate as ev  # noqa: E402
from poselab.models.pose.keypoints import J, Person, PoseFrame, empty_body, to_pose_keypoint  # noqa: E402

DEFAULT_PAIRS = (
    Path(os.environ.get("POSELAB_SHARED", REPO.parent / "shared")) / "data" / "poses" / "pairs.json"
)
LAYOUT_HELP = ev.__doc__.split("Per (method, pair)")[0].split("Folder layout")[1]


def gt_body(entry: dict, person: int = 0) -> np.ndarray | None:
    """Human annotation of a keypoints.json entry as an OpenPose-18 body (the joints both
    formats share; MPII/AIC/CrowdPose have no eyes or ears, and their neck/thorax is not
    OpenPose's shoulder midpoint, so those stay missing)."""
    names = entry["joint_names"]
    if person >= len(entry["people"]):
        return None
    kps = np.asarray(entry["people"][person]["keypoints"], np.float32)
    body = empty_body()
    for i, name in enumerate(names):
        if name in J and name != "neck" and kps[i, 2] > 0:
            body[J[name]] = (kps[i, 0], kps[i, 1], 1.0)
    return body


def prepare_pairs(out: Path, pairs_path: Path, methods: list[str]) -> None:
    from poselab.models.pose.detect_mediapipe import MediaPipePoseDetector
    from poselab.models.repose import part_warp
    from poselab.models.segmentation import masks

    data = pairs_path.parent
    pairs = json.loads(pairs_path.read_text())
    annotations = {e["image"]: e for e in json.loads((data / "keypoints.json").read_text())}
    detector = MediaPipePoseDetector()
    for i, pair in enumerate(pairs):
        name = f"pair{i:02d}_{pair['kind']}"
        source, target = read_rgb(data / pair["source"]), read_rgb(data / pair["target"])
        h, w = source.shape[:2]
        src_frame, tgt_frame = detector(source, max_people=3), detector(target, max_people=3)
        if not src_frame.people or not tgt_frame.people:
            raise SystemExit(
                f"{name}: no person detected in the {'source' if not src_frame.people else 'target'}"
            )
        src, tgt = src_frame.people[0].body, tgt_frame.people[0].body
        same = pair["kind"] == "same_person" and source.shape == target.shape
        goal = tgt if same else part_warp.align_to_source(tgt, src)
        # Ground truth for scoring: the human annotations; a pose_reference target is first
        # aligned to the source person, exactly as the method's goal is.
        gt_src, gt_tgt = gt_body(annotations[pair["source"]]), gt_body(annotations[pair["target"]])
        truth = gt_tgt if same else part_warp.align_to_source(gt_tgt, gt_src)
        ev.write_rgb(out / "source" / f"{name}.png", source)
        if same:  # only then is the target photo the ground truth of the result
            ev.write_rgb(out / "target" / f"{name}.png", target)
            tmask = masks.person_mask_mediapipe(target, [p.body for p in tgt_frame.people], 0)
            ev.write_rgb(
                out / "masks" / f"{name}.png",
                np.repeat((tmask[:, :, None] > 0.5).astype(np.uint8) * 255, 3, 2),
            )
        (out / "keypoints").mkdir(parents=True, exist_ok=True)
        (out / "keypoints" / f"{name}.json").write_text(
            json.dumps(to_pose_keypoint([PoseFrame(w, h, [Person(body=truth)])]))
        )
        if "identity" in methods:
            ev.write_rgb(out / "generated" / "identity" / f"{name}.png", source)
        if "part_warp" in methods:
            smask = masks.person_mask_mediapipe(source, [p.body for p in src_frame.people], 0)
            t0 = time.perf_counter()
            result = part_warp.repose_person(source, src, goal, smask)
            ev.write_rgb(out / "generated" / "part_warp" / f"{name}.png", result.image)
            print(f"{name}: part_warp repose {time.perf_counter() - t0:.2f}s", flush=True)
    print(f"wrote {len(pairs)} pairs to {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "run",
        help="evaluate a folder of pairs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluate every method in a folder of pairs.\n\nFolder layout" + LAYOUT_HELP,
    )
    r.add_argument("folder", type=Path)
    r.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write metrics.csv, summary.json, report.png (default FOLDER/eval)",
    )
    r.add_argument(
        "--lpips-weights",
        default=None,
        help="torchvision AlexNet/VGG16/SqueezeNet state dict for LPIPS (e.g. ComfyUI/models/lpips/alexnet-owt-7be5be79.pth)",
    )
    r.add_argument(
        "--insightface",
        default=None,
        help="insightface pack folder (det + recognition .onnx) for ArcFace identity; default: MTCNN+HOG fallback",
    )
    r.add_argument(
        "--inception-weights",
        default=None,
        help="Inception-v3 state dict for FID/KID of results vs targets",
    )
    r.add_argument("--no-pose", action="store_true", help="skip pose accuracy (no MediaPipe)")
    r.add_argument("--no-identity", action="store_true", help="skip identity similarity")
    r.add_argument(
        "--max-match-distance",
        type=float,
        default=0.5,
        help="person matching gate (mean joint distance / person size)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser(
        "prepare-pairs",
        help="build the folder layout from pairs.json (identity baseline and part-warp repose)",
    )
    p.add_argument("folder", type=Path)
    p.add_argument(
        "--pairs",
        type=Path,
        default=DEFAULT_PAIRS,
        help="pairs.json (next to keypoints.json and the photos)",
    )
    p.add_argument(
        "--methods", default="identity,part_warp", help="comma-separated: identity, part_warp"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if args.command == "prepare-pairs":
        prepare_pairs(
            args.folder, args.pairs, [m.strip() for m in args.methods.split(",") if m.strip()]
        )
        return 0
    for flag, path in (
        ("--lpips-weights", args.lpips_weights),
        ("--inception-weights", args.inception_weights),
        ("--insightface", args.insightface),
    ):
        if path and not os.path.exists(path):
            raise SystemExit(f"{flag}: {path} does not exist")
    opts = ev.Options(
        lpips_weights=args.lpips_weights,
        insightface_pack=args.insightface,
        inception_weights=args.inception_weights,
        pose=not args.no_pose,
        identity=not args.no_identity,
        max_match_distance=args.max_match_distance,
    )
    out = args.out or (args.folder / "eval")
    try:
        result = ev.run(args.folder, out, opts, progress=not args.quiet)
    except ev.LayoutError as exc:
        raise SystemExit(f"error: {exc}\n\nFolder layout{LAYOUT_HELP}")
    print(result["table"])
    print(f"identity embedder: {', '.join(result['embedder']) or 'off'}")
    print(f"wrote {out / 'metrics.csv'}, {out / 'summary.json'}, {out / 'report.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
