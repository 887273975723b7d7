"""LoRA trainer pieces on a small pure-PyTorch stand-in for the IP2P UNet (the real ComfyUI UNet
is trained in tests/integration/test_editing_server.py)."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from poselab.models.editing import lora_train


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.to_q, self.to_k, self.to_v = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
        self.to_out = nn.Sequential(nn.Linear(c, c))


class TinyIP2PUNet(nn.Module):
    """8 latent channels in (4 for a text-to-image stand-in), 4 out, text context attended through
    to_q/to_k/to_v/to_out.0."""

    def __init__(self, c=16, ctx=8, in_channels=8):
        super().__init__()
        self.inp = nn.Conv2d(in_channels, c, 3, padding=1)
        self.ctx = nn.Linear(ctx, c)
        self.attn = Block(c)
        self.out = nn.Conv2d(c, 4, 3, padding=1)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x, timesteps, context):
        h = self.inp(x) + (timesteps.float() / 1000).view(-1, 1, 1, 1)
        b, c, hh, ww = h.shape
        seq = h.flatten(2).transpose(1, 2)
        ctx = self.ctx(context)
        q, k, v = self.attn.to_q(seq), self.attn.to_k(ctx), self.attn.to_v(ctx)
        a = torch.softmax(q @ k.transpose(1, 2) / c ** 0.5, -1) @ v
        seq = seq + self.attn.to_out(a)
        return self.out(seq.transpose(1, 2).reshape(b, c, hh, ww))


def tiny_data(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randn(n, 4, 8, 8, generator=g)
    return lora_train.TrainData(
        target_latents=0.5 * src.flip(-1), source_latents=src,
        text=torch.randn(n, 4, 8, generator=g), null_text=torch.zeros(1, 4, 8))


def ddpm_alphas():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2  # SD's scaled-linear schedule
    return torch.cumprod(1 - betas, 0)


def test_ddpm_forward_noising_matches_definition():
    ac = ddpm_alphas()
    x0, eps = torch.ones(2, 4, 2, 2), torch.full((2, 4, 2, 2), 2.0)
    xt = lora_train.ddpm_noise(x0, torch.tensor([0, 999]), eps, ac)
    assert torch.allclose(xt[0], ac[0].sqrt() + 2 * (1 - ac[0]).sqrt())
    assert torch.allclose(xt[1], ac[999].sqrt() + 2 * (1 - ac[999]).sqrt())
    assert float(ac[999]) < 0.01  # the last step is almost pure noise


def test_training_lowers_fixed_set_loss_and_leaves_unet_untouched(tmp_path):
    torch.manual_seed(0)
    unet = TinyIP2PUNet()
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    lora = lora_train.LoRASet(lora_train.find_target_linears(unet, lora_train.DEFAULT_TARGETS), rank=4, alpha=4)
    assert sorted(lora.names) == ["attn.to_k", "attn.to_out.0", "attn.to_q", "attn.to_v"]
    saved = []
    cfg = lora_train.TrainConfig(steps=40, batch_size=4, grad_accum=2, lr=3e-2, save_every=20, seed=1)
    handle = lora.attach()
    try:
        res = lora_train.train_lora(unet, lora, tiny_data(), ddpm_alphas(), cfg, save_checkpoint=lambda s: (
            saved.append(s), str(lora_train.save_lora(lora.comfy_state_dict(), tmp_path / f"l{s}.safetensors")))[1])
    finally:
        handle.remove()
    assert res.eval_after < 0.9 * res.eval_before
    assert len(res.losses) == 40 and saved == [20, 40]
    assert all(lora.deltas[i].down.dtype == torch.float32 for i in range(4))  # fp32 master weights
    for k, v in unet.state_dict().items():
        assert torch.equal(v, before[k])  # only the LoRA trained; the hooks are removed


def test_comfy_key_format_and_atomic_unique_save(tmp_path):
    from safetensors.torch import load_file

    unet = TinyIP2PUNet()
    lora = lora_train.LoRASet(lora_train.find_target_linears(unet, ["to_q"]), rank=2, alpha=1.0)
    sd = lora.comfy_state_dict()
    assert set(sd) == {"diffusion_model.attn.to_q.lora_down.weight", "diffusion_model.attn.to_q.lora_up.weight",
                       "diffusion_model.attn.to_q.alpha"}
    assert sd["diffusion_model.attn.to_q.lora_down.weight"].shape == (2, 16)
    p1 = lora_train.save_lora(sd, lora_train.free_lora_path(tmp_path, "pose"))
    p2 = lora_train.save_lora(sd, lora_train.free_lora_path(tmp_path, "pose"))
    assert p1.name == "pose.safetensors" and p2.name == "pose_0001.safetensors"
    assert float(load_file(p1)["diffusion_model.attn.to_q.alpha"]) == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pose.safetensors", "pose_0001.safetensors"]  # no temp file left


def test_dropout_replaces_text_and_zeroes_image():
    seen = {}

    def unet(x, t, ctx):
        seen["x"], seen["ctx"] = x, ctx
        return torch.zeros(x.shape[0], 4, *x.shape[2:])

    data = tiny_data(2)
    lora_train.ip2p_loss(unet, data, torch.tensor([0, 1]), torch.tensor([10, 10]), torch.zeros(2, 4, 8, 8),
                         ddpm_alphas(), drop_text=torch.tensor([True, False]), drop_image=torch.tensor([False, True]))
    assert torch.equal(seen["ctx"][0], data.null_text[0]) and torch.equal(seen["ctx"][1], data.text[1])
    assert torch.equal(seen["x"][0, 4:], data.source_latents[0]) and not seen["x"][1, 4:].any()


def test_pairs_folder_roundtrip_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    pairs = [(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
              f"raise arm {i}") for i in range(3)]
    lora_train.write_pairs_folder(pairs, tmp_path / "d")
    recs = lora_train.read_pairs_folder(tmp_path / "d")
    assert [r.instruction for r in recs] == ["raise arm 0", "raise arm 1", "raise arm 2"]
    assert np.array_equal(lora_train.load_rgb(recs[1].target, (16, 16)), pairs[1][1])
    meta = tmp_path / "d" / "metadata.jsonl"
    rows = [json.loads(line) for line in meta.read_text().splitlines()]
    rows[2]["split"] = "test"
    meta.write_text("\n".join(json.dumps(r) for r in rows))
    assert len(lora_train.read_pairs_folder(tmp_path / "d")) == 2  # held-out rows are not trained on
    with pytest.raises(ValueError, match="no metadata.jsonl"):
        lora_train.read_pairs_folder(tmp_path)
    (tmp_path / "d" / "metadata.jsonl").write_text(json.dumps({"original_image": "missing.png", "edit_prompt": "x",
                                                               "edited_image": "00000_1.png"}) + "\n")
    with pytest.raises(ValueError, match="missing.png"):
        lora_train.read_pairs_folder(tmp_path / "d")
    with pytest.raises(ValueError, match="only Linear"):
        lora_train.find_target_linears(TinyIP2PUNet(), ["inp"])
