"""The Stable-Pose adapter (Wang et al., NeurIPS 2024; docs/methods.md §C), plain PyTorch.

A ControlNet-shaped trainable copy of the SD1.5 encoder. Differences from ControlNet: no hint at
the input conv; a small conv stack turns the skeleton image into features at the latent grid, and
input block 1 is an ``AttnResBlock`` (conv -> + time -> PMSA-ViT -> GroupNorm -> + pose features ->
zero conv -> residual). Each input block and the middle block end in a zero 1x1 conv whose output
is added to the frozen UNet's matching skip, which is exactly ComfyUI's ControlNet contract:
``forward(x, hint, timesteps, context)`` returns ``{"output": [...], "middle": [...]}``, so
``comfy.controlnet.ControlNet`` can carry this module and core "Apply ControlNet" applies it.

Keys follow the released checkpoints (``stable_pose_adapter.`` prefix stripped), and the layout
is read back from a state dict, so adapters for any SD1.5-family UNet depth load without a config.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .masks import INFER_THRESHOLD, KERNELS, pose_masks
from .pmsa_vit import PMSAViT
from .sd_blocks import Downsample, ResBlock, SpatialTransformer, TimestepBlock, timestep_embedding

CHECKPOINT_PREFIX = "stable_pose_adapter."


@dataclass
class StablePoseConfig:
    in_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: tuple[int, ...] = (2, 2, 2, 2)
    transformer_depth: tuple[int, ...] = (1, 1, 1, 0)  # SD1.5: no attention at the 8x8 level
    middle_depth: int = 1  # -1: the UNet has no middle block
    context_dim: int = 768
    num_heads: int = 8
    cond_channels: int = 3
    inject_channels: int = 192
    inject_layers: tuple[int, ...] = (1,)
    kernels: tuple[int, ...] = KERNELS  # one pose mask per PMSA-ViT layer, coarse first
    mlp_dim: int = 512

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StablePoseConfig":
        known = {
            k: (tuple(v) if isinstance(v, list) else v)
            for k, v in d.items()
            if k in cls.__dataclass_fields__
        }
        return cls(**known)


class AttnResBlock(nn.Module):
    """Input block 1 of the adapter (reference key names; no GroupNorm before the first conv)."""

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        out_channels: int,
        cond_channels: int,
        vit_depth: int,
        mlp_dim: int,
    ):
        super().__init__()
        self.in_layers = nn.Sequential(
            nn.Identity(), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.attn_layer = PMSAViT(
            channels=out_channels, depth=vit_depth, dim_head=out_channels // 8, mlp_dim=mlp_dim
        )
        self.norm = nn.GroupNorm(32, out_channels, affine=False)
        self.cond_conv = nn.Conv2d(cond_channels, out_channels, 3, padding=1)
        self.out_layers = nn.Sequential(
            nn.Identity(),
            nn.SiLU(),
            nn.Dropout(0.0),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip_connection = (
            nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        )

    def forward(self, x, emb, pose_features, masks):
        h = self.in_layers(x) + self.emb_layers(emb).to(x.dtype)[..., None, None]
        h = self.norm(self.attn_layer(h, masks)) + self.cond_conv(pose_features)
        return self.skip_connection(x) + self.out_layers(h)


class Block(nn.Sequential):
    """An input block: dispatches the timestep, text context and pose inputs to its layers."""

    def forward(self, x, emb, context, pose_features=None, masks=None):
        for layer in self:
            if isinstance(layer, AttnResBlock):
                x = layer(x, emb, pose_features, masks)
            elif isinstance(layer, TimestepBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            else:
                x = layer(x)
        return x


class PoseFeatureExtractor(nn.Module):
    """Skeleton image -> features at the latent grid (3 stride-2 convs), ending in a zero conv."""

    def __init__(self, cond_channels: int, out_channels: int):
        super().__init__()
        chans = [(cond_channels, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1)]
        layers: list[nn.Module] = []
        for cin, cout, stride in chans:
            layers += [nn.Conv2d(cin, cout, 3, padding=1, stride=stride), nn.SiLU()]
        self.pre_extractor = nn.Sequential(*layers)
        self.extractors = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(128, out_channels, 3, padding=1, stride=2), nn.SiLU())]
        )
        self.zero_convs = nn.ModuleList([nn.Conv2d(out_channels, out_channels, 3, padding=1)])

    def forward(self, pose_image):
        return self.zero_convs[0](self.extractors[0](self.pre_extractor(pose_image)))


def _zero_conv(channels: int) -> nn.Sequential:
    conv = nn.Conv2d(channels, channels, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return nn.Sequential(conv)


class StablePoseAdapter(nn.Module):
    def __init__(self, config: StablePoseConfig | None = None):
        super().__init__()
        cfg = self.config = config or StablePoseConfig()
        mc = cfg.model_channels
        emb_ch = mc * 4
        self.mask_threshold = INFER_THRESHOLD
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
        self.feature_extractor = PoseFeatureExtractor(cfg.cond_channels, cfg.inject_channels)
        self.input_blocks = nn.ModuleList([Block(nn.Conv2d(cfg.in_channels, mc, 3, padding=1))])
        self.zero_convs = nn.ModuleList([_zero_conv(mc)])
        ch = mc
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks[level]):
                out = mult * mc
                if len(self.input_blocks) in cfg.inject_layers:
                    layers: list[nn.Module] = [
                        AttnResBlock(
                            ch, emb_ch, out, cfg.inject_channels, len(cfg.kernels), cfg.mlp_dim
                        )
                    ]
                else:
                    layers = [ResBlock(ch, emb_ch, out)]
                ch = out
                if cfg.transformer_depth[level] > 0:
                    layers.append(
                        SpatialTransformer(
                            ch, cfg.num_heads, cfg.transformer_depth[level], cfg.context_dim
                        )
                    )
                self.input_blocks.append(Block(*layers))
                self.zero_convs.append(_zero_conv(ch))
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(Block(Downsample(ch)))
                self.zero_convs.append(_zero_conv(ch))
        if cfg.middle_depth >= 0:
            mid: list[nn.Module] = [ResBlock(ch, emb_ch)]
            if cfg.middle_depth > 0:
                mid.append(SpatialTransformer(ch, cfg.num_heads, cfg.middle_depth, cfg.context_dim))
            mid.append(ResBlock(ch, emb_ch))
            self.middle_block = Block(*mid)
            self.middle_block_out = _zero_conv(ch)
        else:
            self.middle_block = None
        for zero in (self.feature_extractor.zero_convs[0],):
            nn.init.zeros_(zero.weight)
            nn.init.zeros_(zero.bias)
        for (
            block
        ) in self.input_blocks:  # the AttnResBlock's last conv starts at zero, as in ResBlocks
            for layer in block:
                if isinstance(layer, AttnResBlock):
                    nn.init.zeros_(layer.out_layers[3].weight)
                    nn.init.zeros_(layer.out_layers[3].bias)

    @property
    def dtype(self) -> torch.dtype:  # read by comfy.controlnet.ControlNet
        return next(self.parameters()).dtype

    def masks_for(self, hint: torch.Tensor) -> torch.Tensor:
        """Pose masks at the latent grid for a ``[0, 1]`` skeleton image batch."""
        return pose_masks(hint[:, :3] * 2 - 1, self.config.kernels, self.mask_threshold)

    def forward(
        self,
        x,
        hint,
        timesteps,
        context,
        masks: torch.Tensor | None = None,
        open_rows: torch.Tensor | None = None,
        **_ignored,
    ):
        """``x``: noisy latent; ``hint``: ``(B, 3, 8h, 8w)`` skeleton image in [0, 1] (ComfyUI's
        control hint); ``masks``: precomputed pose masks, else made from ``hint``; ``open_rows``:
        ``bool (B,)``, rows whose attention is not masked (Stable-Pose's sampler gives the
        unconditional CFG half the pose image but open masks). Returns ComfyUI's control dict: one
        residual per UNet input block (``output``) and the middle."""
        if hint.shape[-2] != x.shape[-2] * 8 or hint.shape[-1] != x.shape[-1] * 8:
            raise ValueError(
                f"pose image {tuple(hint.shape[-2:])} is not 8x the latent {tuple(x.shape[-2:])}"
            )
        if masks is None:
            masks = self.masks_for(hint)
        if open_rows is not None and bool(open_rows.any()):
            masks = masks | open_rows.to(masks.device).view(-1, 1, 1, 1)
        pose = hint[:, :3].to(x.dtype) * 2 - 1
        pose_features = self.feature_extractor(pose)
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels).to(x.dtype))
        outs = []
        h = x
        for block, zero in zip(self.input_blocks, self.zero_convs):
            h = block(h, emb, context, pose_features, masks)
            outs.append(zero(h))
        middle = []
        if self.middle_block is not None:
            middle.append(self.middle_block_out(self.middle_block(h, emb, context)))
        return {"output": outs, "middle": middle}


# ----------------------------------------------------------------------------- layout from weights
def strip_prefix(sd: dict) -> dict:
    """Adapter keys from a bare state dict, a released full checkpoint (``stable_pose_adapter.``)
    or a Lightning ``state_dict`` wrapper."""
    if "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if any(k.startswith(CHECKPOINT_PREFIX) for k in sd):
        return {
            k[len(CHECKPOINT_PREFIX) :]: v for k, v in sd.items() if k.startswith(CHECKPOINT_PREFIX)
        }
    return dict(sd)


def infer_config(sd: dict, unet_prefix: str = "") -> StablePoseConfig:
    """The adapter layout a state dict describes: an adapter's own, or (with ``unet_prefix`` such as
    ``"diffusion_model."``) the SD1.5-family UNet an adapter is to be made for."""
    p = unet_prefix
    conv_in = sd.get(f"{p}input_blocks.0.0.weight")
    if conv_in is None:
        raise ValueError(
            "not a Stable-Pose adapter or SD UNet state dict: no input_blocks.0.0.weight"
        )
    mc = int(conv_in.shape[0])
    indices = sorted(
        {
            int(m.group(1))
            for k in sd
            for m in [re.match(rf"{re.escape(p)}input_blocks\.(\d+)\.", k)]
            if m
        }
    )
    mults, res_blocks, depths = [], [], []
    count, depth = 0, 0
    inject, ctx = [], 768
    for i in indices[1:]:
        if f"{p}input_blocks.{i}.0.op.weight" in sd:  # a downsample closes a level
            res_blocks.append(count)
            depths.append(depth)
            count, depth = 0, 0
            continue
        out = int(sd[f"{p}input_blocks.{i}.0.in_layers.2.weight"].shape[0])
        if count == 0:
            mults.append(out // mc)
        count += 1
        if f"{p}input_blocks.{i}.0.attn_layer.to_patch_embedding.0.weight" in sd:
            inject.append(i)
        d = len(
            {
                k
                for k in sd
                if k.startswith(f"{p}input_blocks.{i}.1.transformer_blocks.")
                and k.endswith("attn1.to_q.weight")
            }
        )
        depth = max(depth, d)
        if d:
            ctx = int(sd[f"{p}input_blocks.{i}.1.transformer_blocks.0.attn2.to_k.weight"].shape[1])
    res_blocks.append(count)
    depths.append(depth)
    if f"{p}middle_block.0.in_layers.0.weight" in sd:
        middle = len(
            {
                k
                for k in sd
                if k.startswith(f"{p}middle_block.1.transformer_blocks.")
                and k.endswith("attn1.to_q.weight")
            }
        )
    else:
        middle = -1
    cfg = StablePoseConfig(
        in_channels=int(conv_in.shape[1]),
        model_channels=mc,
        channel_mult=tuple(mults),
        num_res_blocks=tuple(res_blocks),
        transformer_depth=tuple(depths),
        middle_depth=middle,
        context_dim=ctx,
    )
    if inject:  # an adapter's own weights: read its pose branch too
        first = f"input_blocks.{inject[0]}.0.attn_layer."
        vit_depth = len(
            {
                k
                for k in sd
                if k.startswith(first + "transformer.layers.") and k.endswith(".0.to_qkv.weight")
            }
        )
        cfg.inject_layers = tuple(inject)
        cfg.inject_channels = int(sd["feature_extractor.zero_convs.0.weight"].shape[0])
        cfg.cond_channels = int(sd["feature_extractor.pre_extractor.0.weight"].shape[1])
        cfg.mlp_dim = int(sd[first + "transformer.layers.0.1.net.1.weight"].shape[0])
        cfg.kernels = KERNELS[:vit_depth] if vit_depth <= len(KERNELS) else cfg.kernels
        if vit_depth != len(cfg.kernels):
            raise ValueError(
                f"the adapter's PMSA-ViT has {vit_depth} layers; masks exist for {len(KERNELS)}"
            )
    return cfg


def adapter_from_state_dict(sd: dict) -> StablePoseAdapter:
    """Build an adapter whose layout matches ``sd`` and load it strictly (wrong files fail loudly)."""
    sd = strip_prefix(sd)
    cfg = infer_config(sd)
    if not any(k.startswith("feature_extractor.") for k in sd):
        raise ValueError(
            "not a Stable-Pose adapter: no feature_extractor.* weights (is it a ControlNet or a UNet?)"
        )
    model = StablePoseAdapter(cfg)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"Stable-Pose adapter weights do not match the layout they describe: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    return model


def adapter_for_unet(
    unet_sd: dict, prefix: str = "diffusion_model.", seed: int | None = None, **overrides
) -> StablePoseAdapter:
    """A new adapter for a UNet, initialised from its encoder as Stable-Pose's ``prepare_weights``
    does: every adapter weight with a same-named, same-shaped UNet weight is copied; the pose
    branch is fresh (from ``seed`` when given, so a seeded training run repeats exactly) and the
    zero convs (which no UNet has) keep the adapter a no-op at the start."""
    cfg = infer_config(unet_sd, prefix)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = StablePoseAdapter(cfg)
    own = model.state_dict()
    copied = {}
    for k, v in own.items():
        src = unet_sd.get(prefix + k)
        if src is not None and tuple(src.shape) == tuple(v.shape):
            copied[k] = src.to(v.dtype)
    model.load_state_dict(copied, strict=False)
    return model
