"""Deformable GAN generator and discriminator (Siarohin et al., CVPR 2018), plain PyTorch.

Layer for layer after the official Keras code (``conditional_gan.py``, see docs/methods.md §B.2/B.5):

* encoder level 0: 3x3 conv, stride 1; every later level: LeakyReLU(0.2) -> 4x4 conv stride 2
  (no bias) -> InstanceNorm, no norm at the innermost level;
* decoder: ReLU -> 4x4 transposed conv stride 2 (no bias) -> InstanceNorm (+ dropout 0.5 in
  the first three blocks), input = concat(previous, skip) at every level; the last step is
  ReLU -> 3x3 conv -> tanh at full resolution;
* ``warp_skip="mask"`` (the paper's model): two encoders of the same architecture and separate
  weights, appearance on concat(x_a, H_a), pose on H_b. At the first 4 (highest-resolution)
  levels the skip is concat(deformed appearance feature, pose feature), the deformation being
  the 10 part affines + target-frame part masks + max over parts (``parts.warp_parts``);
  deeper levels concatenate plainly;
* ``warp_skip="none"`` (the paper's baseline): one encoder on concat(x_a, H_a, H_b) with
  ordinary U-Net skips;
* ``output="blend"`` (our addition, off by default): the last conv gives a fourth channel, a
  soft mask m = sigmoid(.), and the output is m * tanh(image) + (1 - m) * x_a. Through the
  paper's ReLU-conv-tanh head a generator learns to reproduce unchanged pixels only slowly (even
  a bare conv-ReLU-conv-tanh stack trained to copy its input stays at ~5/255 mean error after
  600 Adam steps), and on same-camera pairs that error on every pixel costs more than the pose
  change itself. With the mask the generator copies what stays, exactly, and draws what moves;
* discriminator (``disc_type='call'``): concat(x_a, H_a, x_b or x^_b, H_b) -> 4x4/s2 conv 64
  (no padding) -> three blocks (LeakyReLU -> 4x4/s2 conv -> IN) 128, 256, 512 -> block to one
  channel without norm: a patch map of logits (the sigmoid lives in the BCE loss).

Keras' 4x4/s2 transposed conv + 1 px crop equals PyTorch's ``ConvTranspose2d(padding=1)``.
InstanceNorm: keras_contrib's default is affine (learned scale and offset), so ``affine=True``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..pose import parts

NUM_JOINTS = 18
WARP_SKIPS = ("mask", "none")
WARP_AGGS = ("max", "avg")
OUTPUTS = ("image", "blend")

# Filters of the paper's two configurations (encoder, decoder; the decoder's last entry is the
# output conv at full resolution). One more level at 256 px.
FILTERS_128 = ((64, 128, 256, 512, 512, 512), (512, 512, 512, 256, 128, 3))
FILTERS_256 = ((64, 128, 256, 512, 512, 512, 512), (512, 512, 512, 512, 256, 128, 3))

# name -> (height, width); the presets users choose in the nodes.
SIZE_PRESETS = {
    "market_128x64": (128, 64),
    "deepfashion_256x256": (256, 256),
    "deepfashion_256x176": (256, 176),
    "test_64x64": (64, 64),
}


@dataclass
class PoseGANConfig:
    """Everything needed to rebuild a model; stored as JSON inside every checkpoint."""

    height: int = 128
    width: int = 64
    width_mult: float = 1.0  # scales every filter count (0.125 for tests); 1.0 is the paper
    warp_skip: str = "mask"
    warp_agg: str = "max"
    warped_levels: int = 4
    heatmap_sigma: float = 6.0
    dropout: float = 0.5
    # loss settings travel with the model so a resumed run trains the same objective
    nn_window: int = 3
    nn_weight: float = -1.0  # -1: the default of the feature space used (losses.DEFAULT_NN_WEIGHT)
    nn_space: str = "vgg"  # "vgg" (block1_conv2 features) or "pixel"
    l1_weight: float = 0.0  # the paper's baseline/DSC-only ablations use pixel L1 with weight 100
    gan_weight: float = 1.0
    torso_mask: str = "ones"  # the paper's code uses an all-ones torso mask inside the GAN
    output: str = "image"  # "blend": a learned mask mixes the generated image with the source (module docstring)
    enc_filters: tuple = field(default=())
    dec_filters: tuple = field(default=())

    def __post_init__(self) -> None:
        self.height, self.width = int(self.height), int(self.width)
        if self.warp_skip not in WARP_SKIPS:
            raise ValueError(f"warp_skip must be one of {WARP_SKIPS}, got {self.warp_skip!r}")
        if self.warp_agg not in WARP_AGGS:
            raise ValueError(f"warp_agg must be one of {WARP_AGGS}, got {self.warp_agg!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.nn_space not in ("vgg", "pixel"):
            raise ValueError(f"nn_space must be 'vgg' or 'pixel', got {self.nn_space!r}")
        if self.width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {self.width_mult}")
        if not self.enc_filters:
            enc, dec = FILTERS_128 if max(self.height, self.width) <= 128 else FILTERS_256
            scale = lambda fs: tuple(max(int(round(f * self.width_mult)), 4) for f in fs)  # noqa: E731
            self.enc_filters = scale(enc)
            self.dec_filters = scale(dec[:-1]) + (3,)
        self.enc_filters = tuple(int(f) for f in self.enc_filters)
        self.dec_filters = tuple(int(f) for f in self.dec_filters)
        if len(self.dec_filters) != len(self.enc_filters):
            raise ValueError("enc_filters and dec_filters must have the same number of levels")
        if self.height < 64 or self.width < 64:
            # the patch discriminator's instance norms need a map larger than 1x1 at 4 halvings
            raise ValueError(f"image size must be at least 64x64, got {self.height}x{self.width}")

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def padded_size(self) -> tuple[int, int]:
        """Size the U-Net runs at: each side rounded up to a multiple of 2^(levels-1)
        (256x176 runs at 256x192; the padding is cropped from the output)."""
        f = 2 ** (len(self.enc_filters) - 1)
        return (-(-self.height // f) * f, -(-self.width // f) * f)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "PoseGANConfig":
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"checkpoint config has unknown fields {sorted(unknown)}: written by a newer PoseLab?"
            )
        return cls(**data)


def _down(cin: int, cout: int, norm: bool) -> nn.Sequential:
    layers = [nn.LeakyReLU(0.2), nn.Conv2d(cin, cout, 4, 2, 1, bias=False)]
    if norm:
        layers.append(nn.InstanceNorm2d(cout, affine=True))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Returns the feature map of every level, highest resolution first."""

    def __init__(self, cin: int, filters: tuple[int, ...]):
        super().__init__()
        self.levels = nn.ModuleList()
        for i, f in enumerate(filters):
            if i == 0:
                self.levels.append(nn.Conv2d(cin, f, 3, 1, 1))
            else:
                self.levels.append(_down(filters[i - 1], f, norm=i < len(filters) - 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for layer in self.levels:
            x = layer(x)
            feats.append(x)
        return feats


class Decoder(nn.Module):
    """U-Net decoder over skips given innermost first; ``skip_channels`` in the same order."""

    def __init__(
        self, skip_channels: list[int], filters: tuple[int, ...], dropout: float, extra_out: int = 0
    ):
        super().__init__()
        self.blocks = nn.ModuleList()
        cin = 0
        for i, (sc, f) in enumerate(zip(skip_channels, filters)):
            cin += sc
            if i == len(filters) - 1:
                # extra_out channels come out raw (the blend mask's logits) after the image's tanh channels
                head = [nn.ReLU(), nn.Conv2d(cin, f + extra_out, 3, 1, 1)]
                self.out = nn.Sequential(*head) if extra_out else nn.Sequential(*head, nn.Tanh())
            else:
                layers = [
                    nn.ReLU(),
                    nn.ConvTranspose2d(cin, f, 4, 2, 1, bias=False),
                    nn.InstanceNorm2d(f, affine=True),
                ]
                if i < 3 and dropout > 0:
                    layers.append(nn.Dropout(dropout))
                self.blocks.append(nn.Sequential(*layers))
            cin = f

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        out = self.blocks[0](skips[0])
        for block, skip in zip(self.blocks[1:], skips[1:]):
            out = block(torch.cat([out, skip], 1))
        return self.out(torch.cat([out, skips[-1]], 1))


class Generator(nn.Module):
    """``forward(x_a, H_a, H_b, affines, masks) -> x^_b`` in [-1, 1].

    x_a ``(B, 3, H, W)`` in [-1, 1]; H_a, H_b ``(B, 18, H, W)`` heatmaps; affines
    ``(B, 10, 2, 3)`` target->source pixel affines of the H x W image; masks ``(B, 10, H, W)``
    target-frame part masks (zero for dropped parts). affines/masks are ignored by the
    ``warp_skip="none"`` baseline (pass None).
    """

    def __init__(self, config: PoseGANConfig):
        super().__init__()
        self.config = config
        enc = config.enc_filters
        if config.warp_skip == "none":
            self.encoder = Encoder(3 + 2 * NUM_JOINTS, enc)
            skip_channels = list(enc)
        else:
            self.app_encoder = Encoder(3 + NUM_JOINTS, enc)
            self.pose_encoder = Encoder(NUM_JOINTS, enc)
            skip_channels = [2 * f for f in enc]
        self.decoder = Decoder(
            skip_channels[::-1],
            config.dec_filters,
            config.dropout,
            extra_out=1 if config.output == "blend" else 0,
        )
        keras_init(self)

    def skips(self, x_a, h_a, h_b, affines=None, masks=None) -> list[torch.Tensor]:
        """Encoder skips, highest resolution first (deformed at the first levels). Inputs must be
        at :attr:`PoseGANConfig.padded_size` (``forward`` pads)."""
        cfg = self.config
        if cfg.warp_skip == "none":
            return self.encoder(torch.cat([x_a, h_a, h_b], 1))
        if affines is None or masks is None:
            raise ValueError(
                "the deformable-skip generator needs the part affines and masks of each pair"
            )
        app = self.app_encoder(torch.cat([x_a, h_a], 1))
        pose = self.pose_encoder(h_b)
        size = tuple(
            x_a.shape[-2:]
        )  # the padded frame; pixel affines are unchanged by padding right/bottom
        out = []
        for i, (fa, fp) in enumerate(zip(app, pose)):
            if i < cfg.warped_levels:
                fa = parts.warp_parts(fa, affines, masks, size, agg=cfg.warp_agg)
            out.append(torch.cat([fa, fp], 1))
        return out

    def forward(self, x_a, h_a, h_b, affines=None, masks=None) -> torch.Tensor:
        h, w = self.config.image_size
        if tuple(x_a.shape[-2:]) != (h, w):
            raise ValueError(
                f"this model works at {h}x{w} (height x width); got inputs of {tuple(x_a.shape[-2:])}"
            )
        ph, pw = self.config.padded_size
        if (ph, pw) != (h, w):
            pad = lambda t: None if t is None else F.pad(t, (0, pw - w, 0, ph - h))  # noqa: E731
            x_a, h_a, h_b, masks = pad(x_a), pad(h_a), pad(h_b), pad(masks)
        out = self.decoder(self.skips(x_a, h_a, h_b, affines, masks)[::-1])
        if self.config.output == "blend":
            mask = torch.sigmoid(out[:, 3:4])
            out = mask * torch.tanh(out[:, :3]) + (1 - mask) * x_a
        return out[..., :h, :w]


class Discriminator(nn.Module):
    """Patch discriminator on concat(x_a, H_a, x_b, H_b); returns logits ``(B, 1, h', w')``."""

    def __init__(self, config: PoseGANConfig, filters: tuple[int, ...] = (64, 128, 256, 512)):
        super().__init__()
        fs = [max(int(round(f * config.width_mult)), 4) for f in filters]
        layers: list[nn.Module] = [nn.Conv2d(2 * (3 + NUM_JOINTS), fs[0], 4, 2, 0)]
        for cin, cout in zip(fs[:-1], fs[1:]):
            layers += [
                nn.LeakyReLU(0.2),
                nn.Conv2d(cin, cout, 4, 2, 1, bias=False),
                nn.InstanceNorm2d(cout, affine=True),
            ]
        layers += [nn.LeakyReLU(0.2), nn.Conv2d(fs[-1], 1, 4, 2, 1, bias=False)]
        self.net = nn.Sequential(*layers)
        keras_init(self)

    def forward(self, x_a, h_a, x_b, h_b) -> torch.Tensor:
        return self.net(torch.cat([x_a, h_a, x_b, h_b], 1))


def keras_init(module: nn.Module) -> nn.Module:
    """Keras' defaults, which the paper's code trains from: Glorot-uniform conv kernels, zero
    biases (PyTorch's own default draws kernels about half as large)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def build(config: PoseGANConfig) -> tuple[Generator, Discriminator]:
    return Generator(config), Discriminator(config)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
