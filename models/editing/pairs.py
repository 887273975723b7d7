"""InstructPix2Pix paired data on disk: a folder with ``metadata.jsonl`` rows naming a source image,
an instruction and the edited image (the layout of the InstructPix2Pix dataset and of PoseLab
Synthetic Pairs), read for the IP2P LoRA trainer."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..common.files import atomic_write_text, is_inside

METADATA = "metadata.jsonl"


@dataclass
class PairRecord:
    source: Path
    target: Path
    instruction: str


def read_pairs_folder(folder: os.PathLike) -> list[PairRecord]:
    """InstructPix2Pix layout: ``metadata.jsonl`` rows ``{original_image, edit_prompt, edited_image}``
    (``input_image``/``edit``/``output_image`` are accepted too), paths relative to the folder.
    Rows with a ``split`` other than "train" are held out."""
    folder = Path(folder)
    meta = folder / METADATA
    if not meta.is_file():
        raise ValueError(
            f"{folder} has no {METADATA}: expected rows like "
            '{"original_image": "a.png", "edit_prompt": "raise the arms", "edited_image": "b.png"}'
        )
    records = []
    for i, line in enumerate(meta.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{meta} line {i} is not JSON: {exc}") from None
        if row.get("split", "train") != "train":  # e.g. PoseLab Synthetic Pairs' held-out test rows
            continue
        src = row.get("original_image", row.get("input_image"))
        tgt = row.get("edited_image", row.get("output_image"))
        text = row.get("edit_prompt", row.get("edit"))
        if not (src and tgt and isinstance(text, str)):
            raise ValueError(f"{meta} line {i} needs original_image, edit_prompt and edited_image")
        rec = PairRecord(folder / src, folder / tgt, text)
        for name, p in ((src, rec.source), (tgt, rec.target)):
            # the same words whether or not the file exists elsewhere: nothing outside is revealed
            if not (is_inside(folder, p) and p.is_file()):
                raise ValueError(
                    f"{METADATA} line {i} names '{name}', which is not a file inside the data folder"
                )
        records.append(rec)
    if not records:
        raise ValueError(f"{meta} lists no pairs")
    return records


def write_pairs_folder(pairs, folder: os.PathLike) -> Path:
    """Write ``(source uint8 HxWx3, target, instruction)`` triples in the InstructPix2Pix layout."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (src, tgt, text) in enumerate(pairs):
        a, b = f"{i:05d}_0.png", f"{i:05d}_1.png"
        cv2.imwrite(str(folder / a), cv2.cvtColor(np.asarray(src), cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(folder / b), cv2.cvtColor(np.asarray(tgt), cv2.COLOR_RGB2BGR))
        rows.append(json.dumps({"original_image": a, "edit_prompt": text, "edited_image": b}))
    atomic_write_text(folder / METADATA, "\n".join(rows) + "\n")
    return folder
