"""Synthetic paired people and the dataset-folder layout (write, read back, real-data conventions)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from poselab.models.common.files import unique_path
from poselab.models.pose.keypoints import J
from poselab.models.posegan import dataset, networks, synthetic


def test_pairs_are_deterministic_and_seed_dependent():
    a = synthetic.make_pair(11, (128, 64))
    b = synthetic.make_pair(11, (128, 64))
    c = synthetic.make_pair(12, (128, 64))
    assert np.array_equal(a.source, b.source) and np.array_equal(a.target, b.target)
    assert np.array_equal(a.target_body, b.target_body) and a.instruction == b.instruction
    assert not np.array_equal(a.source, c.source)
    assert a.source.shape == (128, 64, 3) and a.source.dtype == np.uint8


@pytest.mark.parametrize("seed", range(6))
def test_keypoints_lie_on_the_drawn_person_and_the_background_is_shared(seed):
    p = synthetic.make_pair(seed, (256, 176))
    for img, body, mask in ((p.source, p.source_body, p.source_mask), (p.target, p.target_body, p.target_mask)):
        assert (body[:, 2] > 0).all(), "the whole person is on the canvas"
        for name in ("nose", "neck", "right_shoulder", "left_elbow", "right_wrist", "left_hip", "right_knee", "left_ankle", "right_eye"):
            x, y = body[J[name], :2]
            assert mask[int(round(y)), int(round(x))] > 0.5, f"{name} at ({x:.1f}, {y:.1f}) is not on the person"
        # right joints are on the image's left for a person facing the camera
        assert body[J["right_shoulder"], 0] < body[J["left_shoulder"], 0]
        assert body[J["right_eye"], 0] < body[J["left_eye"], 0]
    # same camera and background: pixels outside both people are identical
    outside = (p.source_mask == 0) & (p.target_mask == 0)
    assert outside.mean() > 0.3
    assert np.array_equal(p.source[outside], p.target[outside])
    assert not np.array_equal(p.source, p.target)


def test_named_poses_and_instructions():
    p = synthetic.make_pair(3, (128, 64), source_pose="standing", target_pose="arms_raised")
    assert (p.source_pose, p.target_pose) == ("standing", "arms_raised")
    assert "raise both arms" in p.instruction or "lift both arms" in p.instruction
    # arms raised: both wrists above the head's nose; standing: wrists below the hips
    t, s = p.target_body, p.source_body
    assert t[J["right_wrist"], 1] < t[J["nose"], 1] and t[J["left_wrist"], 1] < t[J["nose"], 1]
    assert s[J["right_wrist"], 1] > s[J["neck"], 1]
    sit = synthetic.make_pair(3, (128, 64), source_pose="standing", target_pose="sitting")
    # sitting foreshortens the thighs: knees much closer to the hips than when standing
    thigh = lambda b: np.linalg.norm(b[J["right_knee"], :2] - b[J["right_hip"], :2])  # noqa: E731
    assert thigh(sit.target_body) < 0.6 * thigh(sit.source_body)
    with pytest.raises(ValueError, match="unknown pose"):
        synthetic.make_pair(0, (64, 64), target_pose="moonwalk")
    with pytest.raises(ValueError, match="at least 16x16"):
        synthetic.make_pair(0, (8, 8))


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
    assert np.abs(sb[:, :2] - p.source_body[:, :2]).max() <= 0.5 + 1e-6  # integer pixels, as the original CSVs
    rows = dataset.metadata_rows(root)
    assert len(rows) == 5 and rows[0]["edit_prompt"] == pairs[0].instruction
    assert all((root / r["original_image"]).is_file() and (root / r["edited_image"]).is_file() for r in rows)
    with pytest.raises(FileExistsError, match="never overwritten"):
        dataset.write_dataset(root, pairs)
    assert unique_path(root).name == "syn_1"  # what the dataset node writes to instead
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging folder left behind"


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
    assert s["x_a"].shape == (3, 64, 64) and s["h_a"].shape == (18, 64, 64) and s["masks"].shape == (10, 64, 64)
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
    (tmp_path / "annotation-train.csv").write_text("name:keypoints_y:keypoints_x\na.png: [1, 2]: [3, 4]\n")
    with pytest.raises(ValueError, match="18 y and 18 x"):
        dataset.FolderPairs(tmp_path)


def test_still_torso_pairs_move_only_limbs_and_head():
    for seed in range(4):
        p = synthetic.make_pair(seed, (128, 64), still_torso=True)
        assert p.source_pose in synthetic.STILL_TORSO_POSES and p.target_pose in synthetic.STILL_TORSO_POSES
        torso = [J[n] for n in ("neck", "right_shoulder", "left_shoulder", "right_hip", "left_hip")]
        np.testing.assert_allclose(p.source_body[torso, :2], p.target_body[torso, :2], atol=1e-4)
    assert "sitting" not in synthetic.STILL_TORSO_POSES
    with pytest.raises(ValueError, match="pelvis drop"):
        synthetic.make_pair(0, (64, 64), target_pose="sitting", still_torso=True)
