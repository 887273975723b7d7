"""Evaluate methods over a folder of pairs: the harness every stage uses to compare with its baseline.

Folder layout (``NAME`` is a pair's file stem; images are .png, .jpg, .jpeg, .webp or .bmp)::

    DIR/
      source/NAME.png            the person before (required): identity is measured against it
      generated/METHOD/NAME.png  each method's result, one subfolder per method (required);
                                 images directly in generated/ count as the method "generated"
      target/NAME.png            optional: the ground-truth photo in the target pose; SSIM, masked
                                 SSIM, PSNR, LPIPS (and FID/KID) need it, at the generated size
      keypoints/NAME.json        optional: the target pose (POSE_KEYPOINT / OpenPose JSON); without
                                 it the pose is extracted from target/NAME (MediaPipe)
      masks/NAME.png             optional: where the person is in the target (white) for masked SSIM

Per (method, pair): ``ssim``, ``masked_ssim``, ``psnr`` (inf for identical images), ``lpips``,
``pck@0.05/0.1/0.2`` and ``oks`` of the pose re-extracted from the result against the target
pose, and ``identity`` (face-embedding cosine, source vs result). A metric that does not apply
is empty in the CSV and null in the JSON. Per method: the means, and FID/KID when asked.

Plain Python (no ComfyUI): the command line is ``scripts/evaluate.py``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ..common.files import atomic_write_image, atomic_write_text, read_rgb
from ..pose.keypoints import PoseFrame, parse_pose_keypoint, scaled_bodies
from . import image_quality, pose_accuracy
from .report import fmt, json_safe, render_table

log = logging.getLogger("poselab")

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
ALPHAS = (0.05, 0.1, 0.2)
COLUMNS = (
    "ssim",
    "masked_ssim",
    "psnr",
    "lpips",
    "pck@0.05",
    "pck@0.1",
    "pck@0.2",
    "oks",
    "identity",
)


class LayoutError(ValueError):
    """The evaluation folder does not follow the documented layout."""


LayoutError.__module__ = "poselab"  # shown by ComfyUI as poselab.LayoutError, not a file path


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    """Write atomically (temp file in the same folder, then rename)."""
    atomic_write_image(path, rgb)


def _images(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS
    }


@dataclass
class Layout:
    root: Path
    sources: dict[str, Path]
    methods: dict[str, dict[str, Path]]
    targets: dict[str, Path] = field(default_factory=dict)
    keypoints: dict[str, Path] = field(default_factory=dict)
    masks: dict[str, Path] = field(default_factory=dict)


def scan(root: Path) -> Layout:
    """Read and check the folder layout (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root} is not a folder")
    sources = _images(root / "source")
    if not sources:
        raise LayoutError(
            f"{root}/source/ holds no images: put each pair's original photo there as NAME.png"
        )
    gen = root / "generated"
    methods = {}
    if gen.is_dir():
        direct = _images(gen)
        if direct:
            methods["generated"] = direct
        for sub in sorted(p for p in gen.iterdir() if p.is_dir()):
            imgs = _images(sub)
            if imgs:
                methods[sub.name] = imgs
    if not methods:
        raise LayoutError(
            f"{root}/generated/ holds no images: put each method's results in generated/METHOD/NAME.png"
        )
    for m, imgs in methods.items():
        unknown = sorted(set(imgs) - set(sources))
        if unknown:
            raise LayoutError(
                f"generated/{m}: {unknown[:5]} have no source/NAME image (names must match)"
            )
    kp = root / "keypoints"
    keypoints = {p.stem: p for p in sorted(kp.glob("*.json"))} if kp.is_dir() else {}
    return Layout(
        root, sources, methods, _images(root / "target"), keypoints, _images(root / "masks")
    )


@dataclass
class Options:
    lpips_weights: str | None = None
    insightface_pack: str | None = None
    inception_weights: str | None = None
    pose: bool = True
    identity: bool = True
    max_match_distance: float = 0.5


class Evaluator:
    """Computes the metrics of one (method, pair); loads each model once."""

    def __init__(self, layout: Layout, options: Options):
        self.layout, self.opt = layout, options
        self._detector = None
        self._target_pose: dict[str, PoseFrame | None] = {}
        self.lpips = None
        if options.lpips_weights:
            from .lpips_metric import get_lpips

            self.lpips = get_lpips(options.lpips_weights)
        self.embedder = None
        if options.identity:
            from .identity import get_embedder

            self.embedder = get_embedder(options.insightface_pack)

    def detector(self):
        if self._detector is None:
            from ..pose.detect_mediapipe import MediaPipePoseDetector

            self._detector = MediaPipePoseDetector()
        return self._detector

    def target_bodies(self, name: str, width: int, height: int) -> list[np.ndarray] | None:
        """Target people in the result's pixels: from keypoints/NAME.json, else extracted from target/NAME."""
        if name not in self._target_pose:
            frame: PoseFrame | None = None
            if name in self.layout.keypoints:
                frames = parse_pose_keypoint(self.layout.keypoints[name].read_text())
                frame = frames[0] if frames else None
            elif name in self.layout.targets:
                frame = self.detector()(read_rgb(self.layout.targets[name]))
            self._target_pose[name] = frame
        frame = self._target_pose[name]
        if frame is None:
            return None
        return scaled_bodies(frame, width, height)

    def pair(self, method: str, name: str) -> dict:
        lay = self.layout
        out = read_rgb(lay.methods[method][name])
        row: dict = {
            "method": method,
            "pair": name,
            **{c: float("nan") for c in COLUMNS},
            "note": "",
        }
        notes = []
        if name in lay.targets:
            tgt = read_rgb(lay.targets[name])
            if tgt.shape != out.shape:
                notes.append(
                    f"target {tgt.shape[1]}x{tgt.shape[0]} != result {out.shape[1]}x{out.shape[0]}: no image metrics"
                )
            else:
                a = torch.from_numpy(out).float()[None] / 255.0
                b = torch.from_numpy(tgt).float()[None] / 255.0
                row["ssim"] = image_quality.ssim(a, b).item()
                row["psnr"] = image_quality.psnr(a, b).item()
                if name in lay.masks:
                    m = cv2.imread(str(lay.masks[name]), cv2.IMREAD_GRAYSCALE)
                    if m is None or m.shape != out.shape[:2]:
                        notes.append("mask unreadable or of another size: no masked SSIM")
                    else:
                        row["masked_ssim"] = image_quality.masked_ssim(
                            a, b, torch.from_numpy(m).float()[None] / 255.0
                        ).item()
                if self.lpips is not None:
                    row["lpips"] = self.lpips(a, b).item()
        if self.opt.pose:
            gt = self.target_bodies(name, out.shape[1], out.shape[0])
            if gt:
                pred = [p.body.astype(np.float64) for p in self.detector()(out).people]
                r = pose_accuracy.pose_accuracy(
                    pred, gt, ALPHAS, max_distance=self.opt.max_match_distance
                )
                for a in ALPHAS:
                    row[f"pck@{a}"] = r["pck"][a]["overall"]
                row["oks"] = r["oks_mean"]
        if self.embedder is not None:
            from .identity import identity_similarity

            res = identity_similarity(read_rgb(lay.sources[name]), out, self.embedder)
            row["identity"] = res["similarity"]
            row["embedder"] = res["embedder"]
            if not (res["face_in_source"] and res["face_in_result"]):
                notes.append("no face in " + ("source" if not res["face_in_source"] else "result"))
        row["note"] = "; ".join(notes)
        return row


def _mean(rows: list[dict], key: str) -> float:
    vals = np.asarray([r[key] for r in rows], np.float64)
    vals = vals[~np.isnan(vals)]
    return float(vals.mean()) if len(vals) else float("nan")


def summarize(rows: list[dict]) -> dict[str, dict]:
    methods: dict[str, dict] = {}
    for m in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == m]
        methods[m] = {c: _mean(mine, c) for c in COLUMNS}
        methods[m]["pairs"] = len(mine)
        methods[m]["pairs_with_target"] = sum(not math.isnan(r["ssim"]) for r in mine)
    return methods


def fid_kid_per_method(layout: Layout, weights: str) -> dict[str, dict]:
    """FID/KID of each method's results against the target photos (same names, at least 2)."""
    from .fid_kid import fid_from_features, get_inception, kid_from_features

    net = get_inception(weights)

    out = {}
    for m, imgs in layout.methods.items():
        names = [n for n in imgs if n in layout.targets]
        if len(names) < 2:
            continue
        fa = np.concatenate(
            [net(torch.from_numpy(read_rgb(imgs[n])).float()[None] / 255.0) for n in names]
        )
        fb = np.concatenate(
            [
                net(torch.from_numpy(read_rgb(layout.targets[n])).float()[None] / 255.0)
                for n in names
            ]
        )
        kid, kid_std = kid_from_features(fa, fb)
        out[m] = {"fid": fid_from_features(fa, fb), "kid": kid, "kid_std": kid_std, "n": len(names)}
    return out


def write_csv(path: Path, rows: list[dict]) -> None:
    cols = ["method", "pair", *COLUMNS, "embedder", "note"]
    text = io.StringIO()
    w = csv.writer(text)
    w.writerow(cols)
    for r in rows:
        vals = []
        for c in cols:
            v = r.get(c, "")
            if isinstance(v, float):
                v = "" if math.isnan(v) else ("inf" if math.isinf(v) else f"{v:.6g}")
            vals.append(v)
        w.writerow(vals)
    atomic_write_text(path, text.getvalue())


def table(summary: dict[str, dict], lpips: bool) -> tuple[list[str], list[list]]:
    cols = (
        ["ssim", "masked_ssim", "psnr"]
        + (["lpips"] if lpips else [])
        + ["pck@0.05", "pck@0.1", "pck@0.2", "oks", "identity"]
    )
    header = ["method", "pairs (w/ target)"] + [
        c.upper() if c in ("ssim", "psnr", "oks") else c for c in cols
    ]
    # image metrics exist only for pairs with a target photo: say over how many
    rows = [
        [m, f"{s['pairs']} ({s['pairs_with_target']})"] + [s[c] for c in cols]
        for m, s in summary.items()
    ]
    return header, rows


def text_table(header: list[str], rows: list[list]) -> str:
    cells = [header] + [[c if isinstance(c, str) else fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in cells
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def run(root: Path, out: Path, options: Options, progress: bool = True) -> dict:
    """Evaluate every (method, pair) of ``root``; write ``metrics.csv``, ``summary.json`` and
    ``report.png`` to ``out``; return the summary."""
    layout = scan(root)
    ev = Evaluator(layout, options)
    jobs = [(m, n) for m, imgs in layout.methods.items() for n in imgs]
    try:
        from tqdm import tqdm

        it = tqdm(jobs, desc="evaluating", unit="pair", disable=not progress)
    except ImportError:  # the progress bar is a nicety
        it = jobs
    rows = [ev.pair(m, n) for m, n in it]
    summary = summarize(rows)
    fidkid = (
        fid_kid_per_method(layout, options.inception_weights) if options.inception_weights else {}
    )
    for m, v in fidkid.items():
        summary[m].update(v)
    out = Path(out)
    write_csv(out / "metrics.csv", rows)
    embedders = sorted({r.get("embedder") for r in rows if r.get("embedder")})
    doc = {
        "folder": str(layout.root),
        "methods": summary,
        "embedder": embedders,
        "lpips_weights": options.lpips_weights,
        "inception_weights": options.inception_weights,
        "ssim_protocol": "gaussian sigma=1.5, population covariance, data_range=1 (scikit-image compatible)",
        "pck_reference": "max(width, height) of the target person's joint box",
        "rows": rows,
    }
    atomic_write_text(out / "summary.json", json.dumps(json_safe(doc), indent=1))
    header, trows = table(summary, options.lpips_weights is not None)
    bars = [(f"{m} PCK@0.1", s["pck@0.1"]) for m, s in summary.items()] + [
        (f"{m} SSIM", s["ssim"]) for m, s in summary.items()
    ]
    note = f"identity embedder: {', '.join(embedders) or 'off'}; image metrics over pairs with a target photo"
    write_rgb(
        out / "report.png",
        render_table(f"Evaluation of {layout.root.name}", header, trows, bars=bars, note=note),
    )
    return {
        "summary": summary,
        "rows": rows,
        "table": text_table(header, trows),
        "embedder": embedders,
    }
