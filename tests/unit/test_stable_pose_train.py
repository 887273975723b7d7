"""The Stable-Pose training loop (models/stable_pose/train.py) on a toy problem where the clean
latent is a function of the pose, so only an adapter that reads the pose can predict the noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_common_lora_training import ddpm_alphas  # SD's scaled-linear schedule

from poselab.models.pose.keypoints import Person, PoseFrame
from poselab.models.pose.render import render_coco17_stablepose
from poselab.models.stable_pose import train as sp_train
from poselab.models.stable_pose.adapter import StablePoseAdapter, StablePoseConfig

SIDE = 64  # pixels; latents are 8x8


def random_hints(n: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        body = np.zeros((18, 3), np.float32)
        body[:, :2] = rng.uniform(6, SIDE - 6, (18, 2))
        body[:, 2] = 1
        out.append(
            render_coco17_stablepose(
                PoseFrame(SIDE, SIDE, [Person(body=body)]), SIDE, SIDE, line_width=4
            )
        )
    return torch.from_numpy(np.stack(out).astype(np.float32) / 255).movedim(-1, 1)


def toy_data(n: int, seed: int) -> sp_train.PoseData:
    hints = random_hints(n, seed)
    pooled = torch.nn.functional.avg_pool2d(hints, 8) * 2 - 1  # the "image" is the blurred skeleton
    latents = torch.cat([pooled, pooled.mean(1, keepdim=True)], dim=1) * 2
    text = torch.zeros(n, 77, 8)
    return sp_train.PoseData(latents=latents, hints=hints, text=text, null_text=text[:1])


class FrozenToyUNet(torch.nn.Module):
    """eps = A(x_t) + B(sum of the adapter's residuals); A and B random and frozen."""

    def __init__(self, channels: int):
        super().__init__()
        torch.manual_seed(5)
        self.a = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.b = torch.nn.Conv2d(channels, 4, 1)
        self.requires_grad_(False)

    def forward(self, x, t, context, control):
        return self.a(x) + self.b(sum(control["output"]))


def tiny_adapter() -> StablePoseAdapter:
    torch.manual_seed(0)
    return StablePoseAdapter(
        StablePoseConfig(
            model_channels=32,
            channel_mult=(1,),
            num_res_blocks=(1,),
            transformer_depth=(0,),
            middle_depth=-1,
            context_dim=8,
            inject_channels=32,
        )
    )


def test_pose_weighted_mse_weights_inside_the_mask():
    pred = torch.zeros(1, 4, 2, 2)
    target = torch.ones(1, 4, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    # one of four cells weighted 5, the others 1: mean weight (5 + 3) / 4
    assert sp_train.pose_weighted_mse(pred, target, mask, 5.0).item() == pytest.approx(2.0)
    assert sp_train.pose_weighted_mse(pred, target, mask, 1.0).item() == pytest.approx(1.0)


def test_training_learns_to_read_the_pose():
    unet = FrozenToyUNet(32)
    adapter = tiny_adapter()
    ac = ddpm_alphas()
    cfg = sp_train.TrainConfig(steps=150, batch_size=8, lr=1e-3, seed=0, eval_samples=4)
    result = sp_train.train_adapter(
        unet, adapter, toy_data(48, 0), ac, cfg, eval_data=toy_data(12, 1)
    )
    assert all(np.isfinite(result.losses))
    assert result.eval_after < 0.7 * result.eval_before, result
    # Handing every held-out sample another sample's pose must hurt: the adapter uses the pose.
    assert result.eval_wrong_pose > 1.2 * result.eval_after, result
    assert not any(p.requires_grad for p in unet.parameters())


def test_bad_data_and_settings_are_refused():
    data = toy_data(2, 0)
    with pytest.raises(ValueError, match="equally many"):
        sp_train.PoseData(
            latents=data.latents, hints=data.hints[:1], text=data.text, null_text=data.null_text
        )
    with pytest.raises(ValueError, match="8x the latent"):
        sp_train.PoseData(
            latents=data.latents,
            hints=data.hints[..., :32, :32],
            text=data.text,
            null_text=data.null_text,
        )
    with pytest.raises(ValueError, match="text_dropout"):
        sp_train.train_adapter(
            FrozenToyUNet(32),
            tiny_adapter(),
            data,
            torch.ones(1000),
            sp_train.TrainConfig(steps=1, text_dropout=1.0),
        )


def test_saved_adapter_reloads_with_its_layout(tmp_path):
    from safetensors import safe_open

    from poselab.models.stable_pose.adapter import adapter_from_state_dict

    adapter = tiny_adapter()
    path = sp_train.save_adapter(adapter, tmp_path / "a.safetensors", {"step": 3})
    with safe_open(str(path), "pt") as f:
        sd = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    again = adapter_from_state_dict(sd)
    # (context_dim is not in the weights of an adapter without cross-attention; everything else is)
    assert (
        again.config.channel_mult == adapter.config.channel_mult
        and again.config.inject_layers == (1,)
    )
    for k, v in adapter.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k
    assert meta["step"] == "3" and "model_channels" in meta["config"]
    assert not list(tmp_path.glob("*.tmp*")), "atomic write left a temp file"
