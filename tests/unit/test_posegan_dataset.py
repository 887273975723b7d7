"""The pose-transfer dataset-folder layout: write, read back, real-data conventions, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from poselab.models.common.files import unique_path
from poselab.models.pose import synthetic
from poselab.models.pose.keypoints import J
from poselab.models.posegan import dataset, networks


def test_dataset_folder_round_trip(tmp_path):
    pairs = synthetic.make_pairs(5, seed=0, size=(128, 64))
    root = tmp_path / "syn"
    summary = dataset.write_dataset(root, pairs, test_fraction=0.4, info={"seed": 0})
    assert summary["train_pairs"] == 3 and summary["test_pairs"] == 2
    header = (root / "annotation-train.csv").read_text().splitlines()[0]
    assert header == "name:keypoints_y:keypoints_x"
    assert (root / "pairs-test.csv").read_text().splitlines()[0] == "from,to"
    train = dataset.FolderPairs(root, "train")
    test = dataset.FolderPairs(root, "test")
    assert len(train) == 3 and len(test) == 2
    src, sb, tgt, tb = test[1]
    p = pairs[4]
    assert np.array_equal(src, p.source) and np.array_equal(tgt, p.target)  # PNG is lossless
    assert (
        np.abs(sb[:, :2] - p.source_body[:, :2]).max() <= 0.5 + 1e-6
    )  # integer pixels, as the original CSVs
    rows = dataset.metadata_rows(root)
    assert len(rows) == 5 and rows[0]["edit_prompt"] == pairs[0].instruction
    assert all(
        (root / r["original_image"]).is_file() and (root / r["edited_image"]).is_file()
        for r in rows
    )
    with pytest.raises(FileExistsError, match="never overwritten"):
        dataset.write_dataset(root, pairs)
    assert unique_path(root).name == "syn_1"  # what the dataset node writes to instead
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], (
        "no staging folder left behind"
    )


def test_reads_the_original_market_layout_with_missing_joints(tmp_path):
    """Market-1501's files: market-annotation-train.csv (': ' separated, -1 = missing) and
    market-pairs-train.csv whose pairs may name images filtered out of the annotations."""
    p = synthetic.make_pair(0, (128, 64))
    (tmp_path / "train").mkdir()
    import cv2

    cv2.imwrite(str(tmp_path / "train" / "0002_c1s1_000451_03.jpg"), p.source[..., ::-1])
    cv2.imwrite(str(tmp_path / "train" / "0002_c1s1_000551_01.jpg"), p.target[..., ::-1])
    ys, xs = dataset.keypoint_strings(p.source_body)
    y = json.loads(ys)
    x = json.loads(xs)
    y[J["left_wrist"]] = -1
    x[J["left_wrist"]] = -1
    (tmp_path / "market-annotation-train.csv").write_text(
        "name:keypoints_y:keypoints_x\n"
        f"0002_c1s1_000451_03.jpg: {y}: {x}\n"
        f"0002_c1s1_000551_01.jpg: {dataset.keypoint_strings(p.target_body)[0]}: {dataset.keypoint_strings(p.target_body)[1]}\n"
    )
    (tmp_path / "market-pairs-train.csv").write_text(
        "from,to\n0002_c1s1_000451_03.jpg,0002_c1s1_000551_01.jpg\n0002_c1s1_000451_03.jpg,0003_c1s1_000001_01.jpg\n"
    )
    data = dataset.FolderPairs(tmp_path, "train")
    assert len(data) == 1 and data.skipped == 1
    src, sb, _, _ = data[0]
    assert sb[J["left_wrist"], 2] == 0 and sb[J["right_wrist"], 2] == 1
    # a model-size sample: 128x64 images stay, and a 64x64 model gets resized inputs and keypoints
    cfg = networks.PoseGANConfig(height=64, width=64, width_mult=0.0625)
    s = dataset.make_sample(data[0], cfg)
    assert (
        s["x_a"].shape == (3, 64, 64)
        and s["h_a"].shape == (18, 64, 64)
        and s["masks"].shape == (10, 64, 64)
    )
    assert float(s["x_a"].min()) >= -1 and float(s["x_a"].max()) <= 1
    assert s["h_a"][J["left_wrist"]].max() == 0


def test_bad_dataset_folders_have_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dataset.FolderPairs(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="annotation"):
        dataset.FolderPairs(tmp_path)
    (tmp_path / "annotation-train.csv").write_text("image,x,y\n")
    (tmp_path / "pairs-train.csv").write_text("from,to\n")
    with pytest.raises(ValueError, match="name:keypoints_y:keypoints_x"):
        dataset.FolderPairs(tmp_path)
    (tmp_path / "annotation-train.csv").write_text(
        "name:keypoints_y:keypoints_x\na.png: [1, 2]: [3, 4]\n"
    )
    with pytest.raises(ValueError, match="18 y and 18 x"):
        dataset.FolderPairs(tmp_path)
