"""Stable-Pose adapter in plain PyTorch: pose masks, the pose-masked ViT, the SD1.5 encoder blocks
(checked against ComfyUI's own ControlNet in a subprocess), layout inference and weight loading."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import load_file

from poselab.models.stable_pose import adapter, masks, pmsa_vit, sd_blocks

TESTS = Path(__file__).resolve().parent.parent

ONE_LEVEL = dict(channel_mult=(1,), num_res_blocks=(1,), transformer_depth=(1,), middle_depth=-1)
TWO_LEVEL = dict(
    channel_mult=(1, 2), num_res_blocks=(1, 1), transformer_depth=(1, 0), middle_depth=1
)


def black(h: int, w: int, b: int = 1) -> torch.Tensor:
    return -torch.ones(b, 3, h, w)


def skeleton_image(seed: int, h: int = 128, w: int = 128) -> torch.Tensor:
    """A few thick coloured strokes on black, [-1, 1], like a rendered pose."""
    gen = torch.Generator().manual_seed(seed)
    img = black(h, w)
    for _ in range(3):
        y0, x0 = (
            int(torch.randint(16, h - 16, (1,), generator=gen)),
            int(torch.randint(16, w - 16, (1,), generator=gen)),
        )
        dy, dx = (torch.randint(-24, 25, (2,), generator=gen)).tolist()
        colour = torch.rand(3, generator=gen) * 2 - 1
        for t in torch.linspace(0, 1, 40):
            y, x = int(y0 + t * dy), int(x0 + t * dx)
            img[0, :, max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3] = colour[:, None, None].clamp(
                min=0.2
            )
    return img


# ----------------------------------------------------------------------------------------- masks
@pytest.mark.parametrize("k", [23, 13])
def test_gaussian_blur_matches_torchvision(k):
    img = torch.rand(2, 3, 40, 52, generator=torch.Generator().manual_seed(k)) * 2 - 1
    ours = masks.gaussian_blur(img, k)
    ref = torchvision.transforms.GaussianBlur(kernel_size=k, sigma=3)(img)
    assert ours.shape == img.shape
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="odd"):
        masks.gaussian_blur(img, 12)


def test_single_pixel_marks_its_cell_and_the_blur_reach():
    y, x = 37, 90
    img = black(128, 128)
    img[0, 0, y, x] = 1.0  # one lit pixel in one channel, like a thin coloured stroke
    train = masks.pose_masks(img, threshold=masks.TRAIN_THRESHOLD)
    assert train.shape == (1, 2, 16, 16) and train.dtype == torch.bool
    for layer, k in enumerate(masks.KERNELS):
        # train threshold: every pixel within the kernel's half-width is marked (all Gaussian
        # weights in the window are positive), so exactly the cells overlapping that square
        r = k // 2
        expect = torch.zeros(16, 16, dtype=torch.bool)
        expect[(y - r) // 8 : (y + r) // 8 + 1, (x - r) // 8 : (x + r) // 8 + 1] = True
        assert torch.equal(train[0, layer], expect), (k, train[0, layer].nonzero().tolist())
    # the wide kernel reaches the neighbouring cells on all four sides, the far corner never
    assert train[0, 0, 3, 11] and train[0, 0, 6, 11] and train[0, 0, 4, 9] and train[0, 0, 4, 12]
    assert not train[0, 0, 0, 0] and not train[0, 0, 15, 15] and not train[0, 0, 4, 8]
    infer = masks.pose_masks(img, threshold=masks.INFER_THRESHOLD)
    assert infer[0, :, y // 8, x // 8].all()
    assert infer.sum() < train.sum()  # a visible glow only, not the whole kernel window
    assert not (infer & ~train).any()


def test_mask_properties_on_skeletons():
    img = torch.cat([skeleton_image(s) for s in range(3)])
    for threshold in (masks.TRAIN_THRESHOLD, masks.INFER_THRESHOLD):
        m = masks.pose_masks(img, threshold=threshold)
        coarse, fine = m[:, 0], m[:, 1]
        assert fine.any(dim=(1, 2)).all()
        assert not (fine & ~coarse).any(), "the coarse (wide) mask must contain the fine one"
        assert (coarse & ~fine).any(), "the wide kernel must reach further than the narrow one"
        assert not coarse.all(dim=(1, 2)).any(), "a few strokes must not mark the whole image"
    train = masks.pose_masks(img, threshold=masks.TRAIN_THRESHOLD)
    infer = masks.pose_masks(img, threshold=masks.INFER_THRESHOLD)
    assert not (infer & ~train).any() and train.sum() > infer.sum()


@pytest.mark.parametrize("threshold", [masks.TRAIN_THRESHOLD, masks.INFER_THRESHOLD])
@pytest.mark.parametrize("size", [(64, 64), (512, 512)])
def test_black_image_gives_empty_masks(threshold, size):
    # A float32 blur of a constant -1 image comes out ~1e-7 above -1 with a 23-tap kernel: the
    # train threshold (> -1) must not read that rounding as pose everywhere.
    m = masks.pose_masks(black(*size, b=2), threshold=threshold)
    assert m.shape == (2, 2, size[0] // 8, size[1] // 8)
    assert not m.any()


def test_pose_masks_reject_sizes_off_the_latent_grid():
    with pytest.raises(ValueError, match="multiple of the latent cell"):
        masks.pose_masks(black(100, 128))
    with pytest.raises(ValueError, match="multiple of the latent cell"):
        masks.pose_masks(black(128, 60))


def test_token_attention_mask_matches_explicit_loop():
    grid = torch.zeros(2, 6, 8, dtype=torch.bool)
    grid[0, 0, 1] = True  # token (0, 0)
    grid[0, 5, 6] = True  # token (2, 3)
    grid[1, 3, 4] = grid[1, 2, 5] = True  # both in token (1, 2)
    allowed = masks.token_attention_mask(grid, patch=2)
    n = 3 * 4
    assert allowed.shape == (2, n, n) and allowed.dtype == torch.bool
    for b in range(2):
        pose = [
            bool(grid[b, 2 * (t // 4) : 2 * (t // 4) + 2, 2 * (t % 4) : 2 * (t % 4) + 2].any())
            for t in range(n)
        ]
        assert sum(pose) == (2 if b == 0 else 1)
        for i in range(n):
            for j in range(n):
                assert bool(allowed[b, i, j]) == (pose[i] or pose[j]), (b, i, j)
    assert not masks.token_attention_mask(torch.zeros(1, 4, 4, dtype=torch.bool)).any()


# -------------------------------------------------------------------------------------- PMSA-ViT
def test_patchify_matches_index_formula():
    c, h, w, p = 3, 4, 6, 2
    x = torch.arange(2 * c * h * w, dtype=torch.float32).view(2, c, h, w)
    tokens = pmsa_vit._Patchify(p)(x)
    assert tokens.shape == (2, (h // p) * (w // p), p * p * c)
    for b in range(2):
        for ch in range(c):
            for i in range(h):
                for j in range(w):
                    n = (i // p) * (w // p) + j // p  # row-major token grid
                    k = ((i % p) * p + j % p) * c + ch  # (p1, p2, c), channel fastest
                    assert tokens[b, n, k] == x[b, ch, i, j]


def test_pmsa_vit_unpatchify_inverts_patchify_on_rectangular_latents():
    # With the convs, norms, projection and transformer taken out, the ViT is patchify -> + position
    # code -> un-patchify, so the difference of two outputs is the difference of the inputs.
    vit = pmsa_vit.PMSAViT(channels=pmsa_vit.REDUCED_CHANNELS, depth=0)
    for i in (0, 2, 3, 4):
        vit.to_patch_embedding[i] = torch.nn.Identity()
    vit.to_out[1] = torch.nn.Identity()
    x = torch.randn(2, pmsa_vit.REDUCED_CHANNELS, 16, 24)
    with torch.no_grad():
        diff = vit(x) - vit(torch.zeros_like(x))
    torch.testing.assert_close(diff, x, atol=1e-5, rtol=0)


def test_pmsa_vit_shapes_and_errors():
    torch.manual_seed(0)
    vit = pmsa_vit.PMSAViT(channels=64, depth=2).eval()
    x = torch.randn(2, 64, 16, 24)
    m = masks.pose_masks(torch.cat([skeleton_image(1, 128, 192), skeleton_image(2, 128, 192)]))
    with torch.no_grad():
        out = vit(x, m)
        free = vit(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, free, atol=1e-4), "masks must change the attention"
    with pytest.raises(ValueError, match="2 layers but got 1"):
        vit(x, m[:, :1])
    with pytest.raises(ValueError, match="multiple of 2"):
        vit(torch.randn(1, 64, 15, 24))
    with pytest.raises(ValueError, match="dim == 128"):
        pmsa_vit.PMSAViT(dim=256)


def test_sincos_2d_closed_form():
    h, w, dim = 3, 5, 16
    pe = pmsa_vit.sincos_2d(h, w, dim)
    assert pe.shape == (h * w, dim)
    q = dim // 4
    for r, c, k in [(0, 0, 0), (2, 4, 1), (1, 3, 3), (2, 1, 2)]:
        n = r * w + c
        omega = 10000.0 ** (-k / (q - 1))
        expect = [
            torch.sin(torch.tensor(c * omega)),
            torch.cos(torch.tensor(c * omega)),
            torch.sin(torch.tensor(r * omega)),
            torch.cos(torch.tensor(r * omega)),
        ]
        for part, value in enumerate(expect):
            assert abs(float(pe[n, part * q + k]) - float(value)) < 1e-6, (r, c, k, part)
    with pytest.raises(ValueError, match="divisible by 4"):
        pmsa_vit.sincos_2d(2, 2, 10)


def test_masked_attention_isolates_background_tokens():
    """Blocked pairs get the sample's minimum logit, not -inf, so a background token still leaks
    exp(floor - allowed logit) of its value into another background token. That is negligible
    only when the allowed logits stand well above the minimum, which a trained layer learns; the
    setup builds that robustly: keys = queries (scaled x3), the pose token p is a copy of b (so
    b's allowed logit is +|q_b|^2 per head) and a sink token is -b (so the minimum is at most
    -|q_b|^2). Queries and keys read the first half of the features, values the second, and
    the perturbation permutes a's second half: mean, variance and first half stay, so every
    logit (and the floor) is unchanged and only a's value moves. The change at b is then a's
    attention weight times its value change: ~1/3 unmasked (b, p and a share the same key),
    ~exp(-2|q_b|^2) masked."""
    torch.manual_seed(0)
    vit = pmsa_vit.PMSAViT(channels=64, depth=2)
    attn = vit.transformer.layers[0][0]
    dim, inner = vit.dim, attn.to_qkv.weight.shape[0] // 3
    with torch.no_grad():
        wq = attn.to_qkv.weight[:inner].clone() * 3
        wq[:, dim // 2 :] = 0
        wv = attn.to_qkv.weight[2 * inner :].clone()
        wv[:, : dim // 2] = 0
        attn.to_qkv.weight.copy_(torch.cat([wq, wq, wv]))
    grid = torch.zeros(1, 8, 8, dtype=torch.bool)
    grid[0, 2, 2] = True  # token 5 of the 4x4 token grid is the only pose token
    allowed = masks.token_attention_mask(grid, 2)
    b, p, a, sink = 0, 5, 15, 12  # a and b sit in opposite corners of the grid
    x = torch.randn(1, 16, dim)
    half = dim // 2
    x[0, p] = x[0, b]
    x[0, sink] = -x[0, b]
    x[0, a] = x[0, b]
    x[0, a, half:] = x[0, b, half:][torch.randperm(half)]
    x2 = x.clone()
    x2[0, a, half:] = x[0, b, half:][torch.randperm(half)]
    with torch.no_grad():
        masked = (attn(x2, allowed) - attn(x, allowed))[0]
        free = (attn(x2, None) - attn(x, None))[0]
        ref = attn(x, None)[0, b].norm()
    assert free[b].norm() > 0.05 * ref, "unmasked, b attends to a: the setup must be sensitive"
    assert masked[b].norm() < 1e-2 * free[b].norm()
    # the pose token still reads a (pose rows are open), and a reads itself
    assert masked[p].norm() > 0.1 * free[p].norm()


def test_masked_attention_is_per_sample():
    """The blocked-pair floor is each sample's own minimum: a sample's output must not depend on
    what else is in the batch (a batch-wide minimum would change it, checked below)."""
    torch.manual_seed(1)
    attn = pmsa_vit.PMSAViT(channels=64, depth=2).transformer.layers[0][0]
    x = torch.randn(2, 16, 512)
    x[1] *= torch.linspace(0.1, 3, 512)  # a differently spread second sample, its own minimum
    grid = torch.zeros(2, 8, 8, dtype=torch.bool)
    grid[0, 2, 2] = grid[1, 5, 1] = grid[1, 6, 6] = True
    allowed = masks.token_attention_mask(grid, 2)
    with torch.no_grad():
        both = attn(x, allowed)
        alone = [attn(x[i : i + 1], allowed[i : i + 1]) for i in range(2)]
        qkv = attn.to_qkv(attn.norm(x)).chunk(3, dim=-1)
        q, k = (t.view(2, 16, attn.heads, -1).transpose(1, 2) for t in qkv[:2])
        floors = ((q @ k.transpose(-1, -2)) * attn.scale).amin(dim=(1, 2, 3))
    assert abs(float(floors[0] - floors[1])) > 0.1, "the samples must have different minima"
    for i in range(2):
        torch.testing.assert_close(both[i : i + 1], alone[i], atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------ SD blocks
def test_timestep_embedding_closed_form_and_block_shapes():
    t = torch.tensor([0.0, 1.0, 981.0])
    emb = sd_blocks.timestep_embedding(t, 8)
    assert emb.shape == (3, 8)
    for i, ti in enumerate(t.tolist()):
        for k in range(4):  # LDM order: cosines first, then sines
            f = math.exp(-math.log(10000.0) * k / 4)
            assert abs(float(emb[i, k]) - math.cos(ti * f)) < 1e-4
            assert abs(float(emb[i, 4 + k]) - math.sin(ti * f)) < 1e-4
    x = torch.randn(1, 64, 8, 12)
    assert sd_blocks.Downsample(64)(x).shape == (1, 64, 4, 6)
    block = sd_blocks.ResBlock(64, 128, 96)
    assert block(x, torch.randn(1, 128)).shape == (1, 96, 8, 12)
    st = sd_blocks.SpatialTransformer(64, 4, 1, 32)
    assert st(x, torch.randn(1, 5, 32)).shape == x.shape


# --------------------------------------------------------------------------------------- adapter
def perturb_zero_convs(model: adapter.StablePoseAdapter, seed: int = 0) -> None:
    """Give every zero-initialised conv random weights, as training would."""
    gen = torch.Generator().manual_seed(seed)
    convs = [z[0] for z in model.zero_convs] + [model.feature_extractor.zero_convs[0]]
    if model.middle_block is not None:
        convs.append(model.middle_block_out[0])
    convs += [
        layer.out_layers[3]
        for block in model.input_blocks
        for layer in block
        if isinstance(layer, adapter.AttnResBlock)
    ]
    with torch.no_grad():
        for conv in convs:
            conv.weight.copy_(
                torch.randn(conv.weight.shape, generator=gen) / conv.weight[0].numel() ** 0.5
            )
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen) * 0.02)


def inputs(batch: int = 2, h: int = 16, w: int = 16, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, h, w, generator=gen)
    t = torch.tensor([999.0, 10.0][:batch])
    ctx = torch.randn(batch, 77, 768, generator=gen)
    hint = (
        torch.cat([skeleton_image(seed + i, 8 * h, 8 * w) for i in range(batch)]) * 0.5 + 0.5
    )  # [0, 1]
    return x, hint, t, ctx


@pytest.fixture(scope="module")
def two_level():
    torch.manual_seed(0)
    return adapter.StablePoseAdapter(adapter.StablePoseConfig(**TWO_LEVEL)).eval()


@pytest.mark.parametrize("layout", ["one", "two"])
def test_fresh_adapter_outputs_zero_residuals_shaped_like_unet_skips(layout, two_level):
    if layout == "one":
        torch.manual_seed(0)
        model = adapter.StablePoseAdapter(adapter.StablePoseConfig(**ONE_LEVEL)).eval()
        expect_out, expect_mid = [(320, 16, 16), (320, 16, 16)], []
    else:
        model = two_level
        expect_out = [(320, 16, 16), (320, 16, 16), (320, 8, 8), (640, 8, 8)]
        expect_mid = [(640, 8, 8)]
    with torch.no_grad():
        res = model(*inputs())
    assert set(res) == {"output", "middle"}
    assert [tuple(r.shape[1:]) for r in res["output"]] == expect_out
    assert [tuple(r.shape[1:]) for r in res["middle"]] == expect_mid
    assert all(r.shape[0] == 2 and not r.any() for r in res["output"] + res["middle"])
    # plain NCHW residuals: a channels-last view leaking out of the transformer made every later
    # conv and GroupNorm slower
    assert all(r.is_contiguous() for r in res["output"] + res["middle"])
    assert isinstance(
        model.input_blocks[1][0], adapter.AttnResBlock
    )  # inject_layers=(1,) by default


def test_trained_adapter_depends_on_pose_hint_and_masks():
    torch.manual_seed(0)
    model = adapter.StablePoseAdapter(adapter.StablePoseConfig(**TWO_LEVEL)).eval()
    perturb_zero_convs(model)
    x, hint, t, ctx = inputs(batch=1)
    other = skeleton_image(7) * 0.5 + 0.5
    with torch.no_grad():
        a = model(x, hint, t, ctx)
        b = model(x, other, t, ctx)
        given = model(x, hint, t, ctx, masks=model.masks_for(hint))
        open_masks = model(x, hint, t, ctx, masks=torch.ones(1, 2, 16, 16, dtype=torch.bool))
    assert all(r.abs().max() > 0 for r in a["output"] + a["middle"])
    # block 0 is the input conv alone; the pose enters at block 1 and flows down from there
    torch.testing.assert_close(a["output"][0], b["output"][0])
    for ra, rb in zip(a["output"][1:] + a["middle"], b["output"][1:] + b["middle"]):
        assert (ra - rb).abs().max() > 1e-3 * ra.abs().max()
    for ra, rg in zip(a["output"] + a["middle"], given["output"] + given["middle"]):
        torch.testing.assert_close(ra, rg)
    assert (open_masks["output"][1] - a["output"][1]).abs().max() > 1e-4 * a["output"][
        1
    ].abs().max()


def test_adapter_batch_independence():
    torch.manual_seed(0)
    model = adapter.StablePoseAdapter(adapter.StablePoseConfig(**ONE_LEVEL)).eval()
    perturb_zero_convs(model, seed=3)
    x, hint, t, ctx = inputs(seed=5)
    with torch.no_grad():
        both = model(x, hint, t, ctx)
        for i in range(
            2
        ):  # each alone: a batch-wide floor would change the one with the higher minimum
            alone = model(x[i : i + 1], hint[i : i + 1], t[i : i + 1], ctx[i : i + 1])
            for rb, r1 in zip(both["output"], alone["output"]):
                torch.testing.assert_close(rb[i : i + 1], r1, atol=1e-5, rtol=1e-4)


def test_open_rows_unmask_only_those_rows():
    """Stable-Pose's sampler gives the unconditional CFG half open masks (same pose image)."""
    torch.manual_seed(0)
    model = adapter.StablePoseAdapter(adapter.StablePoseConfig(**ONE_LEVEL)).eval()
    perturb_zero_convs(model, seed=4)
    x, hint, t, ctx = inputs(seed=6)
    rows = torch.tensor([False, True])
    with torch.no_grad():
        mixed = model(x, hint, t, ctx, open_rows=rows)
        masked = model(x, hint, t, ctx)
        opened = model(x, hint, t, ctx, masks=torch.ones(2, 2, 16, 16, dtype=torch.bool))
    for rm, rk, ro in zip(mixed["output"], masked["output"], opened["output"]):
        torch.testing.assert_close(rm[:1], rk[:1], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(rm[1:], ro[1:], atol=1e-5, rtol=1e-4)
    assert (mixed["output"][1][1] - masked["output"][1][1]).abs().max() > 1e-4


@pytest.mark.parametrize(
    "cfg",
    [ONE_LEVEL, TWO_LEVEL, {}, dict(TWO_LEVEL, middle_depth=0, mlp_dim=256, context_dim=1024)],
    ids=["one-level", "two-level", "sd15", "variant"],
)
def test_infer_config_round_trips(cfg):
    config = adapter.StablePoseConfig(**cfg)
    with torch.device("meta"):  # shapes only: the full SD1.5 layout costs no memory
        sd = adapter.StablePoseAdapter(config).state_dict()
    assert adapter.infer_config(sd) == config
    prefixed = adapter.strip_prefix(
        {f"stable_pose_adapter.{k}": v for k, v in sd.items()}
        | {"model.x": sd["time_embed.0.bias"]}
    )
    assert adapter.infer_config(prefixed) == config
    with pytest.raises(ValueError, match="no input_blocks.0.0.weight"):
        adapter.infer_config({"foo.weight": torch.zeros(1)})


def test_sd15_default_layout_is_the_paper_adapter():
    with torch.device("meta"):
        model = adapter.StablePoseAdapter()
    n = sum(p.numel() for p in model.parameters())
    assert 360e6 < n < 370e6
    assert len(model.input_blocks) == 12 and model.middle_block is not None  # 12 skips + middle
    vit = model.input_blocks[1][0].attn_layer
    assert vit.depth == 2 and vit.transformer.layers[0][0].heads == 8


def test_adapter_from_state_dict_accepts_the_checkpoint_forms():
    torch.manual_seed(0)
    model = adapter.StablePoseAdapter(adapter.StablePoseConfig(**ONE_LEVEL)).eval()
    perturb_zero_convs(model, seed=1)
    sd = model.state_dict()
    x, hint, t, ctx = inputs(batch=1, h=8, w=8)
    with torch.no_grad():
        ref = model(x, hint, t, ctx)["output"][-1]
    forms = {
        "bare": sd,
        "prefixed": {f"stable_pose_adapter.{k}": v for k, v in sd.items()}
        | {"model.diffusion_model.out.0.weight": torch.ones(4)},
        "lightning": {
            "state_dict": {f"stable_pose_adapter.{k}": v for k, v in sd.items()},
            "epoch": 3,
        },
        "wrapped-bare": {"state_dict": dict(sd)},
    }
    for name, form in forms.items():
        loaded = adapter.adapter_from_state_dict(form).eval()
        assert loaded.config == model.config, name
        with torch.no_grad():
            torch.testing.assert_close(loaded(x, hint, t, ctx)["output"][-1], ref, msg=name)


def test_adapter_from_state_dict_rejects_wrong_files():
    torch.manual_seed(0)
    with torch.device("meta"):
        sd = adapter.StablePoseAdapter(adapter.StablePoseConfig(**ONE_LEVEL)).state_dict()
        plain = adapter.StablePoseAdapter(
            adapter.StablePoseConfig(**ONE_LEVEL, inject_layers=())
        ).state_dict()
    sd = {k: torch.zeros(v.shape) for k, v in sd.items()}
    # a ControlNet: the same encoder keys, a hint block, no pose branch
    controlnet = {
        k: torch.zeros(v.shape) for k, v in plain.items() if not k.startswith("feature_extractor.")
    }
    controlnet["input_hint_block.0.weight"] = torch.zeros(16, 3, 3, 3)
    with pytest.raises(ValueError, match="feature_extractor"):
        adapter.adapter_from_state_dict(controlnet)
    missing = dict(sd)
    del missing["input_blocks.1.1.proj_out.weight"]
    with pytest.raises(ValueError, match="missing.*input_blocks.1.1.proj_out.weight"):
        adapter.adapter_from_state_dict(missing)
    extra = dict(sd) | {"input_blocks.1.0.stray.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="unexpected"):
        adapter.adapter_from_state_dict(extra)


def test_hint_must_be_eight_times_the_latent(two_level):
    x, hint, t, ctx = inputs(batch=1)
    with pytest.raises(ValueError, match="not 8x the latent"):
        two_level(x, hint[..., :64], t, ctx)
    with pytest.raises(ValueError, match="not 8x the latent"):
        two_level(x[..., :8, :], hint, t, ctx)


def test_adapter_for_unet_copies_encoder_and_stays_a_no_op():
    torch.manual_seed(4)
    # a UNet encoder (one level and a middle block, to stay small): the SD blocks of an adapter
    # without the pose block, random weights
    layout = dict(ONE_LEVEL, middle_depth=0)
    donor = adapter.StablePoseAdapter(adapter.StablePoseConfig(**layout, inject_layers=()))
    with torch.no_grad():
        for p in donor.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    unet = {
        f"diffusion_model.{k}": v
        for k, v in donor.state_dict().items()
        if k.startswith(("input_blocks.", "time_embed.", "middle_block."))
    }
    unet["diffusion_model.out.2.weight"] = torch.zeros(4, 320, 3, 3)  # decoder keys are ignored
    model = adapter.adapter_for_unet(unet).eval()
    assert model.config == adapter.StablePoseConfig(
        **layout
    )  # the pose block at layer 1, as the paper
    own = model.state_dict()
    copied = [k for k in own if f"diffusion_model.{k}" in unet]
    # every UNet encoder weight has a same-named adapter weight, except the ResBlock GroupNorms
    # that the AttnResBlock (no affine norm around its convs) replaces
    left = {k[len("diffusion_model.") :] for k in unet} - set(copied)
    assert left == {"out.2.weight"} | {
        f"input_blocks.1.0.{n}.{leaf}"
        for n in ("in_layers.0", "out_layers.0")
        for leaf in ("weight", "bias")
    }
    for k in copied:
        torch.testing.assert_close(own[k], unet[f"diffusion_model.{k}"], msg=k)
    for k, v in own.items():
        if k.startswith(("zero_convs.", "middle_block_out.", "feature_extractor.zero_convs.")):
            assert not v.any(), k
    with torch.no_grad():
        res = model(*inputs(batch=1, h=8, w=8))
    assert len(res["output"]) == 2 and len(res["middle"]) == 1
    assert all(not r.any() for r in res["output"] + res["middle"])
    assert adapter.adapter_for_unet(unet, inject_layers=()).config.inject_layers == ()


# ---------------------------------------------------------------------- ComfyUI's own ControlNet
def test_sd_encoder_matches_comfyui_controlnet(tmp_path):
    """Our SD1.5 encoder blocks, time embedding and zero convs against ComfyUI's ControlNet with
    the same weights. The reference zeroes its hint block's last conv, so both sides compute the
    bare encoder; our pose branch is left out (inject_layers=()) and its zero conv is unused."""
    out = tmp_path / "reference.safetensors"
    subprocess.run(
        [sys.executable, str(TESTS / "stable_pose_reference.py"), str(out)], check=True, timeout=180
    )
    data = load_file(str(out))
    ref_sd = {k[3:]: v for k, v in data.items() if k.startswith("sd.")}
    model = adapter.StablePoseAdapter(
        adapter.StablePoseConfig(**TWO_LEVEL, inject_layers=())
    ).eval()
    own = model.state_dict()
    shared = {k: ref_sd[k] for k in own if k in ref_sd}
    unshared = sorted(set(own) - set(shared))
    assert unshared and all(k.startswith("feature_extractor.") for k in unshared), unshared
    assert all(k.startswith("input_hint_block.") for k in set(ref_sd) - set(own))
    model.load_state_dict(shared, strict=False)
    with torch.no_grad():
        res = model(data["in.x"], data["in.hint"], data["in.timesteps"], data["in.context"])
    n_out = len([k for k in data if k.startswith("out.output.")])
    assert len(res["output"]) == n_out == 4 and len(res["middle"]) == 1
    for kind in ("output", "middle"):
        for i, ours in enumerate(res[kind]):
            ref = data[f"out.{kind}.{i}"]
            assert ours.shape == ref.shape, (kind, i)
            assert ref.abs().max() > 1.0  # random zero convs: a real comparison, not zeros vs zeros
            err = float((ours - ref).abs().max() / ref.abs().max())
            assert err < 1e-4, (kind, i, err)
