"""Trainer mechanics on a tiny model: logs, samples, atomic checkpoints, exact resume after an
interruption, the VGG/pixel loss note; and the crop/paste transfer of a larger photo."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from safetensors import safe_open

from poselab.models.pose import synthetic
from poselab.models.pose.keypoints import J
from poselab.models.posegan import checkpoint, dataset, networks, trainer, transfer


def cfg64(**kw):
    return networks.PoseGANConfig(height=64, width=64, width_mult=0.0625, heatmap_sigma=3.0, **kw)


@pytest.fixture(scope="module")
def data64():
    return dataset.MemoryPairs(synthetic.make_pairs(6, seed=0, size=(64, 64)))


def settings(steps, **kw):
    return trainer.TrainSettings(
        steps=steps, batch_size=2, log_every=1, sample_every=2, checkpoint_every=100, **kw
    )


def weights(path):
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def test_run_writes_logs_samples_and_a_loadable_model(tmp_path, data64):
    res = trainer.train(
        cfg64(), data64, tmp_path / "run", settings(3), model_path=tmp_path / "m.safetensors"
    )
    assert res["steps"] == 3 and res["finished"]
    # no VGG weights given: the NN loss falls back to pixels, and says so
    assert res["nn_space"] == "pixel" and "no VGG19 weights" in res["loss_note"]
    with open(tmp_path / "run" / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(float(r["d_loss"]) > 0 and float(r["g_nn"]) > 0 for r in rows)
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == [
        "step_000002.png",
        "step_000003.png",
    ]
    assert res["loss_curve"].shape == (320, 512, 3) and res["loss_curve"].std() > 5
    gen, meta = checkpoint.load_model(tmp_path / "m.safetensors")
    assert meta["step"] == 3 and meta["config"].nn_space == "pixel" and meta["info"]["finished"]
    assert not [p for p in tmp_path.rglob("*.tmp")], "temporary checkpoint files left behind"


def test_interrupted_then_resumed_run_equals_an_uninterrupted_one(tmp_path, data64):
    full = trainer.train(cfg64(), data64, tmp_path / "full", settings(5))

    class Cancel(KeyboardInterrupt):
        pass

    def cancel_at_3(done, total):
        if done == 3:
            raise Cancel()

    with pytest.raises(Cancel):
        trainer.train(cfg64(), data64, tmp_path / "cut", settings(5), progress=cancel_at_3)
    # the interruption saved a checkpoint at the last completed step
    assert checkpoint.read_model_metadata(tmp_path / "cut" / "model.safetensors")["step"] == 3
    with safe_open(str(tmp_path / "cut" / "state.safetensors"), framework="pt") as f:
        assert f.metadata()["step"] == "3" and any(k.startswith("opt_d.") for k in f.keys())
    resumed = trainer.train(cfg64(), data64, tmp_path / "cut", settings(5), resume=True)
    assert resumed["steps"] == 5
    a, b = weights(full["model_path"]), weights(resumed["model_path"])
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    with open(tmp_path / "cut" / "losses.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4, 5]
    # resuming with another architecture is refused with a clear message
    with pytest.raises(ValueError, match="different configuration"):
        trainer.train(cfg64(warp_skip="none"), data64, tmp_path / "cut", settings(6), resume=True)


def test_vgg_features_are_used_when_given(tmp_path, data64):
    """The nearest-neighbour loss is computed on the given VGG's features: other VGG weights give
    another loss on the same first step (same seed, same batch), and without VGG pixels are used."""
    from poselab.models.posegan.losses import VGGBlock1

    def vgg(seed: int) -> VGGBlock1:
        g = torch.Generator().manual_seed(seed)
        return VGGBlock1(
            {
                "features.0.weight": torch.randn(64, 3, 3, 3, generator=g) * 0.1,
                "features.0.bias": torch.zeros(64),
                "features.2.weight": torch.randn(64, 64, 3, 3, generator=g) * 0.05,
                "features.2.bias": torch.zeros(64),
            }
        )

    runs = {
        name: trainer.train(cfg64(), data64, tmp_path / name, settings(1), vgg=v)
        for name, v in (("a", vgg(0)), ("a_again", vgg(0)), ("b", vgg(1)), ("pixels", None))
    }
    first = {name: r["loss_rows"][0]["g_nn"] for name, r in runs.items()}
    assert runs["a"]["nn_space"] == "vgg" and runs["a"]["nn_weight"] == 0.6
    assert "VGG19 block1_conv2" in runs["a"]["loss_note"] and runs["pixels"]["nn_space"] == "pixel"
    assert first["a"] == first["a_again"]  # deterministic: differences below come from the features
    assert first["a"] != first["b"] and first["a"] != first["pixels"], first


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="steps"):
        trainer.TrainSettings(steps=0)
    with pytest.raises(ValueError, match="batch size"):
        trainer.TrainSettings(batch_size=0)


# ---------------------------------------------------------------------------------- transfer


@pytest.fixture(scope="module")
def photo():
    """A 'photo': a 256x176 synthetic person pasted into a larger 300x400 canvas, with its pose."""
    p = synthetic.make_pair(21, (256, 176), source_pose="standing", target_pose="arms_out")
    canvas = np.full((300, 400, 3), 90, np.uint8)
    canvas[30:286, 150:326] = p.source
    shift = np.array([150, 30], np.float32)
    src, tgt = p.source_body.copy(), p.target_body.copy()
    src[:, :2] += shift
    tgt[:, :2] += shift
    return canvas, src, tgt


def test_transfer_crops_around_the_person_and_pastes_back(photo):
    canvas, src, tgt = photo
    gen = networks.Generator(networks.PoseGANConfig(height=128, width=64, width_mult=0.0625)).eval()
    crop = transfer.transfer_one(gen, canvas, src, tgt, output="crop")
    assert crop.image.shape == (128, 64, 3) and crop.mask.shape == (128, 64)
    x0, y0, w, h = crop.box
    assert abs(w / h - 0.5) < 1e-6  # the model's aspect
    both = np.concatenate([src[:, :2], tgt[:, :2]])
    assert (
        x0 < both[:, 0].min()
        and x0 + w > both[:, 0].max()
        and y0 < both[:, 1].min()
        and y0 + h > both[:, 1].max()
    )
    assert crop.mask.mean() > 0.05
    pasted = transfer.transfer_one(gen, canvas, src, tgt, output="paste")
    assert pasted.image.shape == canvas.shape and pasted.mask.shape == canvas.shape[:2]
    ys, xs = np.mgrid[:300, :400]
    far = (xs < x0 - 2) | (xs > x0 + w + 2) | (ys < y0 - 2) | (ys > y0 + h + 2)
    assert np.array_equal(pasted.image[far], canvas[far])  # untouched outside the crop box
    inside = (xs > x0 + 0.1 * w) & (xs < x0 + 0.9 * w) & (ys > y0 + 0.1 * h) & (ys < y0 + 0.9 * h)
    assert (
        np.abs(pasted.image[inside].astype(int) - canvas[inside]).mean() > 5
    )  # replaced by the generator
    # the part mask marks the target's arms, held out to the sides
    wrist = tgt[J["left_wrist"], :2].round().astype(int)
    assert pasted.mask[wrist[1], wrist[0] - 3] == 1


def test_target_from_another_canvas_is_fitted_to_the_source_person(photo):
    _, src, tgt = photo
    small = tgt.copy()
    small[:, :2] = (small[:, :2] - [150, 30]) * 0.5  # the same pose on a half-size 88x128 canvas
    fitted = transfer.target_in_source_canvas(src, small, (400, 300), (88, 128))
    hips = [J["right_hip"], J["left_hip"]]
    np.testing.assert_allclose(fitted[hips, :2].mean(0), src[hips, :2].mean(0), atol=1e-3)
    assert abs(np.ptp(fitted[:, 1]) - np.ptp(tgt[:, 1])) < 0.15 * np.ptp(tgt[:, 1])
    with pytest.raises(ValueError, match="at least two joints"):
        transfer.transfer_one(
            networks.Generator(cfg64()).eval(),
            np.zeros((64, 64, 3), np.uint8),
            src,
            np.zeros((18, 3), np.float32),
        )


def test_command_line_trains_and_prints_the_comparison(tmp_path, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    import train_posegan

    rc = train_posegan.main(
        [
            "--synthetic",
            "4",
            "--size",
            "test_64x64",
            "--width-mult",
            "0.0625",
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--run-dir",
            str(tmp_path / "run"),
            "--eval",
            "4",
            "--eval-json",
            str(tmp_path / "eval.json"),
            "--still-torso",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "| identity |" in out and "| part_warp |" in out and "| model |" in out
    import json

    table = json.loads((tmp_path / "eval.json").read_text())
    assert set(table) == {"identity", "part_warp", "model"} and table["model"]["n"] == 4
    assert (tmp_path / "run" / "model.safetensors").is_file()
