"""The InstructPix2Pix paired-data folder (models/editing/pairs.py)."""

import json

import numpy as np
import pytest

from poselab.models.common.files import read_rgb
from poselab.models.editing import pairs as pairs_mod


def test_pairs_folder_roundtrip_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    pairs = [
        (
            rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
            rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
            f"raise arm {i}",
        )
        for i in range(3)
    ]
    pairs_mod.write_pairs_folder(pairs, tmp_path / "d")
    recs = pairs_mod.read_pairs_folder(tmp_path / "d")
    assert [r.instruction for r in recs] == ["raise arm 0", "raise arm 1", "raise arm 2"]
    assert np.array_equal(read_rgb(recs[1].target, (16, 16)), pairs[1][1])
    meta = tmp_path / "d" / "metadata.jsonl"
    rows = [json.loads(line) for line in meta.read_text().splitlines()]
    rows[2]["split"] = "test"
    meta.write_text("\n".join(json.dumps(r) for r in rows))
    assert len(pairs_mod.read_pairs_folder(tmp_path / "d")) == 2  # held-out rows are not trained on
    with pytest.raises(ValueError, match="no metadata.jsonl"):
        pairs_mod.read_pairs_folder(tmp_path)
    (tmp_path / "d" / "metadata.jsonl").write_text(
        json.dumps(
            {"original_image": "missing.png", "edit_prompt": "x", "edited_image": "00000_1.png"}
        )
        + "\n"
    )
    with pytest.raises(ValueError, match="missing.png"):
        pairs_mod.read_pairs_folder(tmp_path / "d")
