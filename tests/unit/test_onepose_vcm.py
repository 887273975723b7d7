"""OnePoseTrans's visual-consistency module (models/onepose/vcm.py) against the equations,
written out here independently: projections of files in the real layouts, the face-token
wrapping, the added image-token attention, zero-embedding unconditional tokens, block scales."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from poselab.models.onepose import vcm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tiny_vcm  # noqa: E402


def naive_attention(q, k, v, heads):
    """softmax(q k^T / sqrt(d)) v per head, written out."""
    b, n, inner = q.shape
    d = inner // heads
    out = torch.zeros_like(q)
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        w = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / d**0.5, dim=-1)
        out[..., sl] = w @ v[..., sl]
    return out


def reference_resampler(sd, x, heads, depth):
    """The perceiver resampler's equations, from the state dict."""

    def ln(t, p):
        return torch.nn.functional.layer_norm(t, t.shape[-1:], sd[p + ".weight"], sd[p + ".bias"])  # noqa: E731

    lat = sd["latents"].expand(x.shape[0], -1, -1)
    x = x @ sd["proj_in.weight"].t() + sd["proj_in.bias"]
    for i in range(depth):
        a = f"layers.{i}.0."
        xn, ln_lat = ln(x, a + "norm1"), ln(lat, a + "norm2")
        q = ln_lat @ sd[a + "to_q.weight"].t()
        kv = torch.cat([xn, ln_lat], 1) @ sd[a + "to_kv.weight"].t()
        k, v = kv.chunk(2, -1)
        lat = lat + naive_attention(q, k, v, heads) @ sd[a + "to_out.weight"].t()
        f = f"layers.{i}.1."
        h = torch.nn.functional.gelu(ln(lat, f + "0") @ sd[f + "1.weight"].t())
        lat = lat + h @ sd[f + "3.weight"].t()
    return ln(lat @ sd["proj_out.weight"].t() + sd["proj_out.bias"], "norm_out")


def test_instantid_file_of_real_size_parses_and_matches_the_equations(tmp_path):
    sd = tiny_vcm.instantid_sd([640, 1280], seed=3)
    path = tiny_vcm.save(sd, tmp_path / "ip-adapter.bin", dtype=torch.float32)
    w = vcm.adapter_weights(torch.load(path, weights_only=True), face=True)
    assert w.kind == "face" and w.projection.config == dict(
        dim=1280, depth=4, heads=20, queries=16, embedding_dim=512, output_dim=2048, ff_mult=4
    )
    assert [t.shape for t in w.to_v] == [(640, 2048), (1280, 2048)] and w.context_dim == 2048
    emb = (
        torch.randn(1, 512, generator=torch.Generator().manual_seed(0)) * 20
    )  # ArcFace norms are ~20
    cond, uncond = w.tokens(emb)
    assert cond.shape == uncond.shape == (1, 16, 2048)
    assert torch.allclose(
        cond, reference_resampler(sd["image_proj"], emb[:, None], 20, 4), atol=1e-4
    )
    # the unconditional face tokens are the resampler's answer to a zero embedding
    assert torch.allclose(
        uncond, reference_resampler(sd["image_proj"], torch.zeros(1, 1, 512), 20, 4), atol=1e-4
    )
    assert not torch.allclose(cond, uncond)


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_ip_adapter_layouts_plain_and_plus(tmp_path, suffix):
    from safetensors.torch import load_file

    dims = [320, 640, 1280]
    load = (
        (lambda p: load_file(str(p)))
        if suffix == ".safetensors"
        else (lambda p: torch.load(p, weights_only=True))
    )
    plain = tiny_vcm.ip_adapter_sd(dims, 768, 1024, seed=1)
    w = vcm.adapter_weights(
        load(tiny_vcm.save(plain, tmp_path / f"ip-adapter_sd15{suffix}", torch.float32))
    )
    assert w.kind == "plain" and w.input_dim == 1024 and w.context_dim == 768
    emb = torch.randn(1, 1024, generator=torch.Generator().manual_seed(1))
    cond, uncond = w.tokens(emb)
    p = plain["image_proj"]
    expect = lambda e: torch.nn.functional.layer_norm(  # noqa: E731
        (e @ p["proj.weight"].t() + p["proj.bias"]).reshape(-1, 4, 768),
        (768,),
        p["norm.weight"],
        p["norm.bias"],
    )
    assert torch.allclose(cond, expect(emb), atol=1e-5) and torch.allclose(
        uncond, expect(torch.zeros(1, 1024)), atol=1e-5
    )
    plus = tiny_vcm.ip_adapter_sd(dims, 768, 1280, plus=True, seed=2)
    w = vcm.adapter_weights(
        load(tiny_vcm.save(plus, tmp_path / f"ip-adapter-plus_sd15{suffix}", torch.float32))
    )
    assert w.kind == "plus" and w.projection.config["heads"] == 12 and w.input_dim == 1280
    hidden = torch.randn(1, 257, 1280, generator=torch.Generator().manual_seed(2))
    assert w.tokens(hidden)[0].shape == (1, 16, 768)
    vcm.check_fits(w, dims, 768, "ip-adapter-plus_sd15")
    with pytest.raises(vcm.VCMFileError, match="768-d text context and the model uses 2048"):
        vcm.check_fits(w, dims, 2048, "x")
    with pytest.raises(vcm.VCMFileError, match="3 cross-attention layers and the model 2"):
        vcm.check_fits(w, dims[:2], 768, "x")
    with pytest.raises(
        vcm.VCMFileError, match="layer 3 is 640 wide where the model's attention is 320"
    ):
        vcm.check_fits(w, [320, 320, 1280], 768, "x")


def test_bad_adapter_files_are_refused_with_reasons():
    good = tiny_vcm.ip_adapter_sd([320], 768, 1024)
    with pytest.raises(vcm.VCMFileError, match="'image_proj' and 'ip_adapter'"):
        vcm.adapter_weights({"foo": torch.zeros(1)})
    faceid = {
        "image_proj": {"proj.0.weight": torch.zeros(1), "proj.2.weight": torch.zeros(1)},
        "ip_adapter": good["ip_adapter"],
    }
    with pytest.raises(vcm.VCMFileError, match="unsupported IP-Adapter variant"):
        vcm.adapter_weights(faceid)
    gap = {
        "image_proj": good["image_proj"],
        "ip_adapter": {"3.to_k_ip.weight": torch.zeros(320, 768)},
    }
    with pytest.raises(vcm.VCMFileError, match="numbered 1, 3, 5"):
        vcm.adapter_weights(gap)
    bad_shape = {
        "image_proj": dict(good["image_proj"], **{"norm.weight": torch.ones(700)}),
        "ip_adapter": good["ip_adapter"],
    }
    with pytest.raises(vcm.VCMFileError):
        vcm.adapter_weights(bad_shape)


def make_case(seed=0, heads=2, inner=8, ctx=6, text=5, n=7, image_tokens=4, per=2):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    rows = [1, 0]  # ComfyUI's batch: an uncond chunk then a cond chunk, `per` rows each
    b = per * len(rows)
    tokens = vcm.VCMTokens(
        image=(r(1, image_tokens, ctx), r(1, image_tokens, ctx)),
        face=(r(1, 16, ctx), r(1, 16, ctx)),
        subject_pos=3,
    )
    layer = vcm.LayerVCM(
        ip_scale=0.7,
        to_k_ip=r(inner, ctx),
        to_v_ip=r(inner, ctx),
        face_strength=1.0,
        to_v_face=r(inner, ctx),
    )
    return r(b, n, inner), r(b, text, inner), r(b, text, inner), layer, tokens, rows, heads


def test_patch_equals_the_equations():
    q, k, v, layer, tokens, rows, heads = make_case()
    att = lambda a, b_, c: naive_attention(a, b_, c, heads)  # noqa: E731
    got = vcm.vcm_cross_attention(q, k, v, layer, tokens, att, att, rows)
    expect = torch.empty_like(got)
    for i in range(q.shape[0]):
        cond = rows[i // 2] == 0
        face = tokens.face[0 if cond else 1][0]  # (16, ctx)
        image = tokens.image[0 if cond else 1][0]
        fv = face @ layer.to_v_face.t()  # (16, inner)
        wrapped = (torch.softmax(fv, dim=0) * fv).mean(0) * 16 * 4  # the reference's formula
        vi = v[i].clone()
        vi[3] = wrapped
        text_out = naive_attention(q[i : i + 1], k[i : i + 1], vi[None], heads)
        ip_out = naive_attention(
            q[i : i + 1],
            (image @ layer.to_k_ip.t())[None],
            (image @ layer.to_v_ip.t())[None],
            heads,
        )
        expect[i] = (text_out + 0.7 * ip_out)[0]
    assert torch.allclose(got, expect, atol=1e-5)


def test_wrapping_changes_only_the_subject_value_row_and_uncond_rows_use_zero_embedding_tokens():
    q, k, v, layer, tokens, rows, heads = make_case(seed=1)
    seen = {}

    def spy(a, b_, c):
        seen["v"] = c
        return naive_attention(a, b_, c, heads)

    layer.ip_scale = 0.0
    vcm.vcm_cross_attention(q, k, v, layer, tokens, spy, spy, rows)
    changed = (seen["v"] != v).any(dim=-1)  # (B, L): which value rows changed
    assert changed[:, 3].all() and not changed[:, :3].any() and not changed[:, 4:].any()
    # rows 0-1 are the uncond chunk: their value is the uncond (zero-embedding) face tokens' value
    assert torch.allclose(seen["v"][0, 3], vcm.face_value(tokens.face[1], layer.to_v_face)[0, 0])
    assert torch.allclose(seen["v"][2, 3], vcm.face_value(tokens.face[0], layer.to_v_face)[0, 0])
    # half strength blends
    layer.face_strength = 0.5
    vcm.vcm_cross_attention(q, k, v, layer, tokens, spy, spy, rows)
    assert torch.allclose(
        seen["v"][2, 3], 0.5 * v[2, 3] + 0.5 * vcm.face_value(tokens.face[0], layer.to_v_face)[0, 0]
    )
    # the image-token branch of an uncond row attends to the uncond tokens
    layer.face_strength, layer.ip_scale = 0.0, 1.0
    keys = []
    vcm.vcm_cross_attention(
        q,
        k,
        v,
        layer,
        tokens,
        lambda a, b_, c: naive_attention(a, b_, c, heads),
        lambda a, b_, c: (keys.append(b_), naive_attention(a, b_, c, heads))[1],
        rows,
    )
    assert torch.allclose(keys[0][0], tokens.image[1][0] @ layer.to_k_ip.t())
    assert torch.allclose(keys[0][3], tokens.image[0][0] @ layer.to_k_ip.t())


def test_all_scales_zero_is_the_plain_attention_exactly():
    q, k, v, layer, tokens, rows, heads = make_case(seed=2)
    layer.ip_scale, layer.face_strength = 0.0, 0.0

    def att(a, b_, c):
        return (
            torch.nn.functional.scaled_dot_product_attention(  # noqa: E731
                a.view(4, 7, heads, -1).transpose(1, 2),
                b_.view(4, 5, heads, -1).transpose(1, 2),
                c.view(4, 5, heads, -1).transpose(1, 2),
            )
            .transpose(1, 2)
            .reshape(4, 7, -1)
        )

    assert not layer.active(tokens)
    assert torch.equal(
        vcm.vcm_cross_attention(q, k, v, layer, tokens, att, att, rows), att(q, k, v)
    )
    # no face found: the wrapping is off whatever its strength
    layer.face_strength = 1.0
    assert not layer.active(vcm.VCMTokens(image=tokens.image, face=None, subject_pos=3))


def test_block_scales_follow_the_first_decoder_level_with_attention():
    sdxl = {0: 10, 1: 10, 2: 10, 3: 2, 4: 2, 5: 2, 6: 0, 7: 0, 8: 0}
    assert vcm.block_scales(sdxl, 3, 1.0, 0.4, 0.0) == {("output", 0): 0.4, ("output", 1): 1.0}
    sd15 = {0: 0, 1: 0, 2: 0, **{i: 1 for i in range(3, 12)}}
    assert vcm.block_scales(sd15, 3, 1.0, 0.4, 0.0) == {("output", 3): 0.4, ("output", 4): 1.0}
    assert vcm.block_scales({0: 0}, 1, 1.0, 0.4, 0.0) == {}
