"""Paired pose-transfer data: the dataset-folder layout (write and read) and model inputs.

Folder layout, the one of the Market-1501 / DeepFashion pose-transfer repositories
(Siarohin et al.'s ``pose-gan``, PATN, ...), plus the InstructPix2Pix metadata::

    <root>/train/*.png, <root>/test/*.png          images (any size; resized to the model's)
    <root>/annotation-train.csv                    name:keypoints_y:keypoints_x   (':' separated)
    <root>/pairs-train.csv                         from,to
    <root>/annotation-test.csv, pairs-test.csv
    <root>/masks/<split>/*.png                     person masks (synthetic data only)
    <root>/metadata.jsonl                          {"original_image", "edit_prompt", "edited_image"}
    <root>/poselab_dataset.json                    how it was made (generator, seed, size, counts)

Keypoints are OpenPose-18 in index order, y and x lists as JSON, ``-1`` for a missing joint.
The reader also accepts the original names (``market-annotation-train.csv``,
``fasion-resize-pairs-test.csv``, ...): any ``*annotation-<split>.csv`` / ``*pairs-<split>.csv``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from ..common.files import atomic_write_image, is_inside, read_rgb
from ..pose import heatmaps, parts
from ..pose.keypoints import NUM_BODY
from .networks import PoseGANConfig

MISSING = -1
INFO_FILE = "poselab_dataset.json"


# ------------------------------------------------------------------------------ writing


def keypoint_strings(body: np.ndarray) -> tuple[str, str]:
    """(y list, x list) JSON strings of an OpenPose-18 body, ``-1`` where missing (rounded to ints
    as in the original annotation files)."""
    b = np.asarray(body, np.float32)
    ys = [int(round(float(y))) if c > 0 else MISSING for _, y, c in b]
    xs = [int(round(float(x))) if c > 0 else MISSING for x, _, c in b]
    return json.dumps(ys), json.dumps(xs)


def write_dataset(
    root: os.PathLike, pairs: Sequence, test_fraction: float = 0.1, info: dict | None = None
) -> dict:
    """Write synthetic pairs (``synthetic.SyntheticPair``) as a dataset folder. ``root`` must not
    exist yet (the caller picks a free name). The last ``test_fraction`` of the pairs is the test
    split. Returns a summary (counts, paths)."""
    root = Path(root)
    if root.exists():
        raise FileExistsError(
            f"dataset folder {root} already exists: choose a new name (datasets are never overwritten)"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}-"))
    n_test = int(round(len(pairs) * test_fraction)) if len(pairs) > 1 else 0
    splits = {"train": pairs[: len(pairs) - n_test], "test": pairs[len(pairs) - n_test :]}
    meta_lines = []
    try:
        for split, items in splits.items():
            (staging / split).mkdir()
            (staging / "masks" / split).mkdir(parents=True)
            ann = ["name:keypoints_y:keypoints_x"]
            rows = ["from,to"]
            for i, pair in enumerate(items):
                names = []
                for tag, img, body, mask in (
                    ("a", pair.source, pair.source_body, pair.source_mask),
                    ("b", pair.target, pair.target_body, pair.target_mask),
                ):
                    name = f"{split}_{i:06d}_{tag}.png"
                    atomic_write_image(staging / split / name, img)
                    atomic_write_image(
                        staging / "masks" / split / name,
                        np.clip(mask * 255 + 0.5, 0, 255).astype(np.uint8),
                    )
                    ys, xs = keypoint_strings(body)
                    ann.append(f"{name}: {ys}: {xs}")
                    names.append(name)
                rows.append(f"{names[0]},{names[1]}")
                meta_lines.append(
                    json.dumps(
                        {
                            "original_image": f"{split}/{names[0]}",
                            "edit_prompt": pair.instruction,
                            "edited_image": f"{split}/{names[1]}",
                            "split": split,
                            "source_pose": pair.source_pose,
                            "target_pose": pair.target_pose,
                        }
                    )
                )
            (staging / f"annotation-{split}.csv").write_text("\n".join(ann) + "\n")
            (staging / f"pairs-{split}.csv").write_text("\n".join(rows) + "\n")
        (staging / "metadata.jsonl").write_text("\n".join(meta_lines) + "\n")
        summary = dict(info or {}, train_pairs=len(splits["train"]), test_pairs=len(splits["test"]))
        (staging / INFO_FILE).write_text(json.dumps(summary, indent=2) + "\n")
        os.replace(staging, root)  # the folder appears complete or not at all
    except BaseException:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dict(summary, root=str(root))


# ------------------------------------------------------------------------------ reading


def parse_keypoints(ys: str, xs: str, where: str = "") -> np.ndarray:
    """(y list, x list) strings -> ``(18, 3)`` body in pixels, score 0 where ``-1``."""
    try:
        y = np.asarray(json.loads(ys), np.float32)
        x = np.asarray(json.loads(xs), np.float32)
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{where}: keypoints must be JSON lists like [12, -1, ...] ({exc})"
        ) from None
    if y.shape != (NUM_BODY,) or x.shape != (NUM_BODY,):
        raise ValueError(
            f"{where}: expected {NUM_BODY} y and {NUM_BODY} x values (OpenPose-18), got {y.size} and {x.size}"
        )
    body = np.zeros((NUM_BODY, 3), np.float32)
    present = (y != MISSING) & (x != MISSING)
    body[present, 0] = x[present]
    body[present, 1] = y[present]
    body[present, 2] = 1.0
    return body


def read_annotations(path: os.PathLike) -> dict[str, np.ndarray]:
    text = Path(path).read_text()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or [c.strip() for c in lines[0].split(":")] != [
        "name",
        "keypoints_y",
        "keypoints_x",
    ]:
        raise ValueError(
            f"{path}: the first line must be 'name:keypoints_y:keypoints_x' (Market-1501 pose-transfer layout)"
        )
    out = {}
    for n, line in enumerate(lines[1:], start=2):
        cols = line.split(":")
        if len(cols) != 3:
            raise ValueError(f"{path}:{n}: expected 'name: [y...]: [x...]', got {line[:80]!r}")
        out[cols[0].strip()] = parse_keypoints(cols[1], cols[2], f"{path}:{n}")
    return out


def read_pairs(path: os.PathLike) -> list[tuple[str, str]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"from", "to"} <= {
            c.strip() for c in reader.fieldnames
        }:
            raise ValueError(f"{path}: expected a CSV with columns 'from,to'")
        return [(row["from"].strip(), row["to"].strip()) for row in reader]


def _find(root: Path, pattern: str, what: str) -> Path:
    hits = sorted(root.glob(pattern))
    if not hits:
        raise FileNotFoundError(
            f"{root}: no {what} ({pattern}); a dataset folder needs annotation-<split>.csv, pairs-<split>.csv and <split>/ images"
        )
    return hits[0]


@dataclass
class PairRecord:
    source_path: Path
    target_path: Path
    source_body: np.ndarray
    target_body: np.ndarray


class FolderPairs:
    """Pairs of a dataset folder split, loaded lazily: ``dataset[i] -> (src uint8, src_body, tgt uint8, tgt_body)``."""

    def __init__(
        self, root: os.PathLike, split: str = "train", images_dir: os.PathLike | None = None
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset folder {self.root} does not exist")
        ann = read_annotations(
            _find(self.root, f"*annotation-{split}.csv", f"{split} annotation CSV")
        )
        pair_list = read_pairs(_find(self.root, f"*pairs-{split}.csv", f"{split} pairs CSV"))
        img_dir = Path(images_dir) if images_dir else self.root / split
        self.records: list[PairRecord] = []
        skipped = 0
        for a, b in pair_list:
            if a not in ann or b not in ann:
                skipped += (
                    1  # the original pair lists reference images filtered out of the annotations
                )
                continue
            for name in (a, b):
                # names come from the user's CSV: never let one reach outside the dataset folder
                if not is_inside(self.root, img_dir / name):
                    raise ValueError(
                        f"{self.root.name}: the pairs CSV names '{name}', which is not an image "
                        f"inside the dataset's {img_dir.name}/ folder"
                    )
            self.records.append(PairRecord(img_dir / a, img_dir / b, ann[a], ann[b]))
        if not self.records:
            raise ValueError(
                f"{self.root}: no usable {split} pairs (every pair names an image missing from the annotations)"
            )
        self.skipped = skipped

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        r = self.records[i]
        return read_rgb(r.source_path), r.source_body, read_rgb(r.target_path), r.target_body


class MemoryPairs:
    """Synthetic pairs held in memory, same item interface as :class:`FolderPairs`."""

    def __init__(self, pairs: Sequence):
        self.pairs = list(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int):
        p = self.pairs[i]
        return p.source, p.source_body, p.target, p.target_body


# ------------------------------------------------------------------------------ model inputs


def resize_pair_item(
    img: np.ndarray, body: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image to ``size=(h, w)`` and scale its keypoints (integer pixel centres)."""
    h, w = size
    ih, iw = img.shape[:2]
    if (ih, iw) == (h, w):
        return img, body
    out = cv2.resize(
        img, (w, h), interpolation=cv2.INTER_AREA if ih * iw > h * w else cv2.INTER_LINEAR
    )
    b = body.copy()
    present = b[:, 2] > 0
    b[present, 0] = (b[present, 0] + 0.5) * w / iw - 0.5
    b[present, 1] = (b[present, 1] + 0.5) * h / ih - 0.5
    return out, b


def image_to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, H, W) in [-1, 1] (the paper's pixel range)."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 127.5 - 1.0


def tensor_to_image(t: torch.Tensor) -> np.ndarray:
    """float (3, H, W) in [-1, 1] -> uint8 (H, W, 3)."""
    arr = ((t.detach().float().cpu().clamp(-1, 1) + 1) * 127.5 + 0.5).permute(1, 2, 0).numpy()
    return arr.astype(np.uint8)


def pose_inputs(
    src_body: np.ndarray, tgt_body: np.ndarray, config: PoseGANConfig
) -> dict[str, torch.Tensor]:
    """Heatmaps of both poses and the part affines/masks of the pair, at the model's size."""
    h, w = config.image_size
    affines, valid = parts.part_affines(src_body, tgt_body)
    masks = parts.part_masks(tgt_body, h, w, torso=config.torso_mask, valid=valid)
    return {
        "h_a": torch.from_numpy(
            heatmaps.gaussian_heatmaps(src_body, h, w, sigma=config.heatmap_sigma)
        ),
        "h_b": torch.from_numpy(
            heatmaps.gaussian_heatmaps(tgt_body, h, w, sigma=config.heatmap_sigma)
        ),
        "affines": torch.from_numpy(affines),
        "masks": torch.from_numpy(masks),
    }


def make_sample(item, config: PoseGANConfig) -> dict[str, torch.Tensor]:
    """One training/evaluation sample (each image resized to the model's size with its keypoints)."""
    src, src_body, tgt, tgt_body = item
    src, src_body = resize_pair_item(src, src_body, config.image_size)
    tgt, tgt_body = resize_pair_item(tgt, tgt_body, config.image_size)
    sample = pose_inputs(src_body, tgt_body, config)
    sample["x_a"] = image_to_tensor(src)
    sample["x_b"] = image_to_tensor(tgt)
    return sample


def collate(samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


class SampleCache:
    """Model inputs of a dataset, computed once per item (small datasets fit in memory: a
    64x64 pair is ~0.2 MB of float tensors); ``max_items`` bounds it for large folders."""

    def __init__(self, dataset, config: PoseGANConfig, max_items: int = 4096):
        self.dataset, self.config, self.max_items = dataset, config, max_items
        self._cache: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def get(self, i: int) -> dict[str, torch.Tensor]:
        s = self._cache.get(i)
        if s is None:
            s = make_sample(self.dataset[i], self.config)
            if len(self._cache) < self.max_items:
                self._cache[i] = s
        return s

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        return collate([self.get(int(i)) for i in indices])


def metadata_rows(root: os.PathLike) -> list[dict]:
    """The InstructPix2Pix rows of a dataset folder (for the instruction-edit trainer)."""
    path = Path(root) / "metadata.jsonl"
    rows = []
    with open(path) as f:
        for n, line in enumerate(io.StringIO(f.read()), start=1):
            if line.strip():
                row = json.loads(line)
                if not {"original_image", "edit_prompt", "edited_image"} <= set(row):
                    raise ValueError(f"{path}:{n}: needs original_image, edit_prompt, edited_image")
                rows.append(row)
    return rows
