"""Losses of the Deformable GAN: adversarial (BCE), nearest-neighbour (NN) and pixel L1.

* Adversarial: BCE on the discriminator's patch map (logits here, so the sigmoid of the
  Keras model is inside ``binary_cross_entropy_with_logits``, which is numerically safer).
* NN loss (Siarohin et al. eq. 5): for every position p of the *generated* feature map, the
  minimum over q in an n x n window around p of ``sum_channels |real(q) - fake(p)|``; then the
  mean over positions and batch. The real map is padded with -10000 so that positions outside
  the image never win (as in the official ``nn_loss``). Features: VGG19 ``block1_conv2``
  (``features[:4]`` of torchvision's vgg19: conv-relu-conv-relu) when VGG weights are
  available, else the image itself (a pixel-space NN loss, which keeps the tolerance to small
  misalignments but not the texture/edge sensitivity of the features).

Feature scale: the paper's weight 0.01 was tuned for Keras' Caffe-style VGG input (BGR,
0..255 minus the mean). torchvision's input ((x - mean) / std, std ~ 0.226) is ~58x smaller
and the first two conv layers are close to linear in it, so the same balance needs ~58x the
weight: :data:`DEFAULT_NN_WEIGHT` ``["vgg"] = 0.6``. In pixel space (3 channels in [-1, 1])
we match the L1 baseline's balance (weight 100 on a per-channel mean): ``100 / 3 ~ 33``.

The TPAMI extension's offset-smoothness term is not implemented: the official code has no
offsets and its exact formulation could not be verified (docs/methods.md §B.6).
"""

from __future__ import annotations

import logging
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

log = logging.getLogger("poselab")

PAD_VALUE = -10000.0
DEFAULT_NN_WEIGHT = {"vgg": 0.6, "pixel": 33.0}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision vgg19 state-dict keys of block1 (features.0 = conv1_1, features.2 = conv1_2)
VGG_KEYS = ("features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias")


def nn_loss(fake: torch.Tensor, real: torch.Tensor, window: int = 3) -> torch.Tensor:
    """Nearest-neighbour L1 between feature maps ``(B, C, H, W)`` (see module docstring)."""
    if fake.shape != real.shape:
        raise ValueError(
            f"nn_loss: fake {tuple(fake.shape)} and real {tuple(real.shape)} must have the same shape"
        )
    if window < 1 or window % 2 == 0:
        raise ValueError(
            f"nn_loss window must be an odd positive size (3 or 5 in the paper), got {window}"
        )
    if window == 1:
        return (fake - real).abs().sum(1).mean()
    r = window // 2
    h, w = real.shape[-2:]
    padded = F.pad(real, (r, r, r, r), value=PAD_VALUE)
    best = None
    for dy in range(window):
        for dx in range(window):
            dist = (padded[:, :, dy : dy + h, dx : dx + w] - fake).abs().sum(1)
            best = dist if best is None else torch.minimum(best, dist)
    return best.mean()


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


class VGGBlock1(nn.Module):
    """VGG19 up to ``block1_conv2`` (+ReLU); takes images in [-1, 1]. Frozen."""

    def __init__(self, state: dict[str, torch.Tensor]):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1)
        self.conv2 = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv1.weight.data.copy_(state["features.0.weight"])
        self.conv1.bias.data.copy_(state["features.0.bias"])
        self.conv2.weight.data.copy_(state["features.2.weight"])
        self.conv2.bias.data.copy_(state["features.2.bias"])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = ((x + 1) / 2 - self.mean) / self.std
        return F.relu(self.conv2(F.relu(self.conv1(x))))


def load_vgg_block1(path: str | os.PathLike) -> VGGBlock1:
    """Read block1 of a torchvision VGG19 state dict (.safetensors, or .pth/.pt read with
    ``weights_only=True``). Only the four block1 tensors are needed; a file with just those works."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            keys = set(f.keys())
            missing = [k for k in VGG_KEYS if k not in keys]
            if missing:
                raise ValueError(f"{path}: not a torchvision VGG19 state dict (missing {missing})")
            state = {k: f.get_tensor(k) for k in VGG_KEYS}
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        missing = [k for k in VGG_KEYS if k not in state]
        if missing:
            raise ValueError(f"{path}: not a torchvision VGG19 state dict (missing {missing})")
    shapes = {k: tuple(state[k].shape) for k in VGG_KEYS}
    expect = {
        VGG_KEYS[0]: (64, 3, 3, 3),
        VGG_KEYS[1]: (64,),
        VGG_KEYS[2]: (64, 64, 3, 3),
        VGG_KEYS[3]: (64,),
    }
    if shapes != expect:
        raise ValueError(
            f"{path}: VGG block1 tensors have shapes {shapes}, expected {expect} (is it VGG19/VGG16?)"
        )
    return VGGBlock1({k: state[k].float() for k in VGG_KEYS})


class GeneratorLoss(nn.Module):
    """L_G = gan_weight * BCE(D(fake), 1) + nn_weight * NN(phi(fake), phi(real)) + l1_weight * L1.

    ``features`` is a VGGBlock1 or None (pixel space). ``space`` in the returned terms says which
    one was used, so the trainer can report it.
    """

    def __init__(
        self,
        nn_weight: float,
        nn_window: int,
        l1_weight: float,
        gan_weight: float,
        features: nn.Module | None,
    ):
        super().__init__()
        self.nn_weight, self.nn_window = float(nn_weight), int(nn_window)
        self.l1_weight, self.gan_weight = float(l1_weight), float(gan_weight)
        self.features = features
        self.space = "vgg" if features is not None else "pixel"

    def forward(
        self, fake: torch.Tensor, real: torch.Tensor, d_fake_logits: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict]:
        terms = {}
        total = fake.new_zeros(())
        if self.gan_weight > 0 and d_fake_logits is not None:
            terms["g_gan"] = gan_loss(d_fake_logits, True)
            total = total + self.gan_weight * terms["g_gan"]
        if self.nn_weight > 0:
            if self.features is not None:
                terms["g_nn"] = nn_loss(self.features(fake), self.features(real), self.nn_window)
            else:
                terms["g_nn"] = nn_loss(fake, real, self.nn_window)
            total = total + self.nn_weight * terms["g_nn"]
        if self.l1_weight > 0:
            terms["g_l1"] = (fake - real).abs().mean()
            total = total + self.l1_weight * terms["g_l1"]
        terms["g_total"] = total
        return total, {k: float(v.detach()) for k, v in terms.items()}


def discriminator_loss(d_real_logits: torch.Tensor, d_fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE with real -> 1, fake -> 0, averaged over the two halves (Keras' GAN trains D on both)."""
    return 0.5 * (gan_loss(d_real_logits, True) + gan_loss(d_fake_logits, False))
