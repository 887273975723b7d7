"""Deformable GAN networks, losses and checkpoints: shapes, the feature warp inside the
generator, the NN loss semantics, VGG loading, safetensors round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from poselab.models.pose import parts, synthetic
from poselab.models.posegan import checkpoint, dataset, losses, networks


def tiny(h=64, w=64, **kw) -> networks.PoseGANConfig:
    return networks.PoseGANConfig(height=h, width=w, width_mult=0.0625, **kw)


def pair_batch(config, pairs):
    return dataset.collate(
        [dataset.make_sample(dataset.MemoryPairs(pairs)[i], config) for i in range(len(pairs))]
    )


@pytest.fixture(scope="module")
def pairs64():
    return synthetic.make_pairs(2, seed=3, size=(64, 64))


def test_paper_filters_per_size_and_width_multiplier():
    assert networks.PoseGANConfig(height=128, width=64).enc_filters == (64, 128, 256, 512, 512, 512)
    assert networks.PoseGANConfig(height=128, width=64).dec_filters == (512, 512, 512, 256, 128, 3)
    big = networks.PoseGANConfig(height=256, width=256)
    assert big.enc_filters == (64, 128, 256, 512, 512, 512, 512)
    assert big.dec_filters == (512, 512, 512, 512, 256, 128, 3)
    small = networks.PoseGANConfig(height=128, width=64, width_mult=0.125)
    assert small.enc_filters == (8, 16, 32, 64, 64, 64) and small.dec_filters[-1] == 3
    # 256x176 runs padded to a multiple of 2^6
    assert networks.PoseGANConfig(height=256, width=176).padded_size == (256, 192)
    with pytest.raises(ValueError, match="warp_skip"):
        networks.PoseGANConfig(warp_skip="stn")


@pytest.mark.parametrize("size", [(128, 64), (256, 176)])
def test_generator_and_discriminator_shapes(size):
    cfg = tiny(*size)
    pairs = synthetic.make_pairs(2, seed=1, size=size)
    b = pair_batch(cfg, pairs)
    g, d = networks.build(cfg)
    g.eval()
    with torch.no_grad():
        out = g(b["x_a"], b["h_a"], b["h_b"], b["affines"], b["masks"])
        logits = d(b["x_a"], b["h_a"], out, b["h_b"])
    assert out.shape == (2, 3, *size)
    assert out.abs().max() <= 1.0
    assert logits.shape[:2] == (2, 1) and logits.shape[2] >= 1 and logits.shape[3] >= 1
    # the baseline ignores the geometry and has one encoder
    base = networks.Generator(tiny(*size, warp_skip="none")).eval()
    assert not hasattr(base, "app_encoder")
    with torch.no_grad():
        assert base(b["x_a"], b["h_a"], b["h_b"]).shape == (2, 3, *size)
    with pytest.raises(ValueError, match="affines and masks"):
        g(b["x_a"], b["h_a"], b["h_b"])


def test_identity_pose_pair_leaves_features_unchanged(pairs64):
    """Same source and target pose: every part affine is the identity, so the deformed skip at
    each warped level is the max over parts of (feature x mask), i.e. relu(feature) where some
    part does not cover the pixel (the paper's max aggregation with zeros outside masks)."""
    cfg = tiny()
    p = pairs64[0]
    item = (p.source, p.source_body, p.source, p.source_body)
    b = dataset.collate([dataset.make_sample(item, cfg)])
    assert torch.allclose(b["affines"][0, :, :, :2], torch.eye(2).expand(10, 2, 2), atol=1e-5)
    g = networks.Generator(cfg).eval()
    with torch.no_grad():
        app = g.app_encoder(torch.cat([b["x_a"], b["h_a"]], 1))
        skips = g.skips(b["x_a"], b["h_a"], b["h_b"], b["affines"], b["masks"])
    for level, (fa, sk) in enumerate(zip(app, skips)):
        warped = sk[:, : fa.shape[1]]
        if level < cfg.warped_levels:
            torch.testing.assert_close(warped, F.relu(fa), atol=1e-5, rtol=1e-4)
        else:
            torch.testing.assert_close(warped, fa)  # deeper levels: plain concatenation


def test_translated_pose_moves_features_by_the_shift_at_every_level(pairs64):
    """Target = source moved 8 px right: the deformed appearance features at a target pixel are
    the source features 8 px to the left (4 px at half resolution, 2 at quarter, ...)."""
    cfg = tiny()
    p = pairs64[0]
    tgt = p.source_body.copy()
    tgt[:, 0] += 8
    b = dataset.collate([dataset.make_sample((p.source, p.source_body, p.source, tgt), cfg)])
    g = networks.Generator(cfg).eval()
    with torch.no_grad():
        app = g.app_encoder(torch.cat([b["x_a"], b["h_a"]], 1))
        skips = g.skips(b["x_a"], b["h_a"], b["h_b"], b["affines"], b["masks"])
    for level in range(3):
        s = 8 // 2**level
        fa = F.relu(app[level])
        warped = skips[level][:, : fa.shape[1]]
        # torso mask is all ones: every pixel is sampled from the source shifted by s
        torch.testing.assert_close(warped[..., :, s:], fa[..., :, :-s], atol=1e-4, rtol=1e-3)
        assert not torch.allclose(warped, fa, atol=1e-3)


def test_missing_target_joint_drops_the_part():
    cfg = tiny()
    p = synthetic.make_pair(5, (64, 64))
    tgt = p.target_body.copy()
    tgt[synthetic.J["left_wrist"]] = 0
    s = dataset.pose_inputs(p.source_body, tgt, cfg)
    fore = parts.PART_NAMES.index("left_forearm")
    assert s["masks"][fore].sum() == 0
    assert s["masks"][parts.PART_NAMES.index("right_forearm")].sum() > 0
    assert (
        s["h_b"][synthetic.J["left_wrist"]].max() == 0
        and s["h_a"][synthetic.J["left_wrist"]].max() > 0.9
    )


def test_nn_loss_tolerates_small_shifts_and_ignores_the_border():
    torch.manual_seed(0)
    real = torch.rand(2, 3, 16, 16)
    assert losses.nn_loss(real, real, 3) == 0
    shifted = torch.roll(real, shifts=1, dims=-1)
    # a 1-px shift: every pixel but the wrapped-around first column finds its exact match in the
    # 3x3 window, so the NN loss is at most 1/16 of what the plain L1 of that column would be
    plain = (shifted - real).abs().sum(1)
    assert float(plain.mean()) > 0.5
    assert float(losses.nn_loss(shifted, real, 3)) <= float(plain[..., 0].mean()) / 16 + 1e-6
    # window 1 is the plain per-pixel L1 summed over channels
    fake = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(losses.nn_loss(fake, real, 1), (fake - real).abs().sum(1).mean())
    # the -10000 padding never wins: the 3x3 loss is at most the plain one and still positive
    assert 0 < float(losses.nn_loss(fake, real, 3)) <= float(losses.nn_loss(fake, real, 1))
    with pytest.raises(ValueError, match="odd"):
        losses.nn_loss(fake, real, 4)


def _fake_vgg_state():
    g = torch.Generator().manual_seed(0)
    return {
        "features.0.weight": torch.randn(64, 3, 3, 3, generator=g) * 0.1,
        "features.0.bias": torch.zeros(64),
        "features.2.weight": torch.randn(64, 64, 3, 3, generator=g) * 0.05,
        "features.2.bias": torch.zeros(64),
        "classifier.0.weight": torch.zeros(2, 2),  # other keys of a full state dict are ignored
    }


def test_vgg_block1_loads_safetensors_and_pth(tmp_path):
    state = _fake_vgg_state()
    save_file(state, tmp_path / "vgg19.safetensors")
    torch.save(state, tmp_path / "vgg19.pth")
    x = torch.rand(1, 3, 20, 24) * 2 - 1
    a = losses.load_vgg_block1(tmp_path / "vgg19.safetensors")(x)
    b = losses.load_vgg_block1(tmp_path / "vgg19.pth")(x)
    assert a.shape == (1, 64, 20, 24) and (a >= 0).all()
    torch.testing.assert_close(a, b)
    assert not any(
        p.requires_grad for p in losses.load_vgg_block1(tmp_path / "vgg19.pth").parameters()
    )
    bad = dict(state, **{"features.2.weight": torch.zeros(64, 32, 3, 3)})
    save_file(bad, tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="shapes"):
        losses.load_vgg_block1(tmp_path / "bad.safetensors")
    save_file({"x": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="not a torchvision VGG19"):
        losses.load_vgg_block1(tmp_path / "other.safetensors")


def test_generator_loss_reports_its_feature_space(tmp_path):
    save_file(_fake_vgg_state(), tmp_path / "vgg.safetensors")
    fake, real = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    with_vgg = losses.GeneratorLoss(
        0.6, 3, 0.0, 1.0, losses.load_vgg_block1(tmp_path / "vgg.safetensors")
    )
    pixel = losses.GeneratorLoss(33.0, 3, 100.0, 1.0, None)
    assert with_vgg.space == "vgg" and pixel.space == "pixel"
    _, t1 = with_vgg(fake, real, torch.zeros(1, 1, 2, 2))
    _, t2 = pixel(fake, real, torch.zeros(1, 1, 2, 2))
    assert "g_l1" not in t1 and t2["g_l1"] > 0
    assert t1["g_nn"] != t2["g_nn"]
    assert abs(t1["g_gan"] - float(np.log(2))) < 1e-5  # BCE(logit 0, 1) = ln 2


def test_model_checkpoint_round_trip_is_exact_and_atomic(tmp_path, pairs64):
    cfg = tiny(l1_weight=100.0)
    g = networks.Generator(cfg).eval()
    path = checkpoint.save_model(tmp_path / "m.safetensors", g, step=7, info={"note": "x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temp file left
    g2, meta = checkpoint.load_model(path)
    assert meta["config"] == cfg and meta["step"] == 7 and meta["info"] == {"note": "x"}
    b = pair_batch(cfg, pairs64)
    with torch.no_grad():
        torch.testing.assert_close(
            g(b["x_a"], b["h_a"], b["h_b"], b["affines"], b["masks"]),
            g2(b["x_a"], b["h_a"], b["h_b"], b["affines"], b["masks"]),
            rtol=0,
            atol=0,
        )
    save_file(
        {"w": torch.zeros(1)}, tmp_path / "foreign.safetensors", metadata={"config": json.dumps({})}
    )
    with pytest.raises(ValueError, match="not a PoseLab Deformable-GAN checkpoint"):
        checkpoint.load_model(tmp_path / "foreign.safetensors")


def test_blend_head_copies_the_source_where_its_mask_is_closed_and_round_trips(tmp_path, pairs64):
    cfg = tiny(h=64, w=64, output="blend")
    g = networks.Generator(cfg).eval()
    head = g.decoder.out[1]
    assert head.out_channels == 4 and not isinstance(
        g.decoder.out[-1], torch.nn.Tanh
    )  # mask logits stay raw
    b = pair_batch(cfg, pairs64)
    args = (b["x_a"], b["h_a"], b["h_b"], b["affines"], b["masks"])
    with torch.no_grad():
        head.weight[3].zero_()
        head.bias[3] = -40.0  # mask closed everywhere: the source comes through unchanged
        torch.testing.assert_close(g(*args), b["x_a"], rtol=0, atol=1e-6)
        head.bias[3] = 40.0  # mask open: the generated image, in tanh's range
        out = g(*args)
    assert not torch.allclose(out, b["x_a"], atol=1e-2) and out.abs().max() <= 1
    g2, meta = checkpoint.load_model(
        checkpoint.save_model(tmp_path / "b.safetensors", g, step=1, info={})
    )
    assert meta["config"].output == "blend"
    with torch.no_grad():
        torch.testing.assert_close(g2(*args), out, rtol=0, atol=0)
    with pytest.raises(ValueError, match="output must be one of"):
        tiny(output="residual")
