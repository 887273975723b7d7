"""Pose-masked self-attention ViT (Stable-Pose §C.2), plain PyTorch, the reference's key names.

Features ``(B, C, h, w)`` -> 3x3 conv to 128 ch -> 2x2 patches (tokens of 512) -> LayerNorm,
Linear, LayerNorm -> + fixed 2-D sin-cos position -> ``depth`` pre-norm transformer layers, layer i
masked by pose mask i (coarse to fine) -> un-patchify -> 3x3 conv back to C.
"""

from __future__ import annotations

import torch
from torch import nn

from .masks import token_attention_mask

REDUCED_CHANNELS = 128


def sincos_2d(h: int, w: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 2-D position code, ``(h*w, dim)``; a function of the grid, so any latent size works."""
    if dim % 4:
        raise ValueError(f"sin-cos position code needs a dim divisible by 4, got {dim}")
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    omega = 1.0 / temperature ** (torch.arange(dim // 4) / (dim // 4 - 1))
    y = y.flatten()[:, None] * omega[None]
    x = x.flatten()[:, None] * omega[None]
    return torch.cat((x.sin(), x.cos(), y.sin(), y.cos()), dim=1)


class MaskedAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads = heads
        self.scale = dim_head**-0.5
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, heads * dim_head * 3, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (
            t.view(b, n, self.heads, -1).transpose(1, 2)
            for t in self.to_qkv(self.norm(x)).chunk(3, dim=-1)
        )
        logits = (q @ k.transpose(-1, -2)) * self.scale
        if allowed is not None:
            # Blocked pairs get the smallest logit rather than -inf, as the released weights were
            # trained. The reference takes that minimum over the whole batch; here it is per
            # sample, so an image does not change with what else is in its batch (CFG halves).
            floor = logits.detach().amin(dim=(1, 2, 3), keepdim=True)
            logits = torch.where(allowed.unsqueeze(1), logits, floor)
        out = logits.softmax(dim=-1) @ v
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)
        )

    def forward(self, x):
        return self.net(x)


class Transformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([MaskedAttention(dim, heads, dim_head), FeedForward(dim, mlp_dim)])
            for _ in range(depth)
        )

    def forward(self, x, allowed: list[torch.Tensor] | None):
        for i, (attn, ff) in enumerate(self.layers):
            x = attn(x, None if allowed is None else allowed[i]) + x
            x = ff(x) + x
        return x


class _Patchify(nn.Module):
    def __init__(self, p: int):
        super().__init__()
        self.p = p

    def forward(self, x):  # (B, C, H, W) -> (B, H/p * W/p, p*p*C), channel fastest
        b, c, h, w = x.shape
        p = self.p
        x = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, (h // p) * (w // p), p * p * c)


class PMSAViT(nn.Module):
    def __init__(
        self,
        channels: int = 320,
        patch: int = 2,
        dim: int = 512,
        depth: int = 2,
        heads: int = 8,
        dim_head: int = 40,
        mlp_dim: int = 512,
    ):
        super().__init__()
        patch_dim = REDUCED_CHANNELS * patch * patch
        if patch_dim != dim:  # un-patchifying reads the token back as (p, p, 128)
            raise ValueError(f"PMSA-ViT needs dim == 128*patch^2 ({patch_dim}), got {dim}")
        self.patch, self.depth, self.dim = patch, depth, dim
        self.to_patch_embedding = nn.Sequential(
            nn.Conv2d(channels, REDUCED_CHANNELS, 3, padding=1),
            _Patchify(patch),
            nn.LayerNorm(patch_dim),
            nn.Linear(patch_dim, dim),
            nn.LayerNorm(dim),
        )
        self.transformer = Transformer(dim, depth, heads, dim_head, mlp_dim)
        self.to_out = nn.Sequential(
            nn.Identity(), nn.Conv2d(REDUCED_CHANNELS, channels, 3, padding=1)
        )

    def forward(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """``masks``: ``(B, depth, h, w)`` latent-grid pose masks, one per layer, or None (no masking)."""
        b, _, h, w = x.shape
        p = self.patch
        if h % p or w % p:
            raise ValueError(
                f"PMSA-ViT patches of {p}: latent {w}x{h} must be a multiple of {p} "
                f"(image sides multiples of {8 * p} px)"
            )
        tokens = self.to_patch_embedding(x)
        tokens = tokens + sincos_2d(h // p, w // p, self.dim).to(tokens)
        allowed = None
        if masks is not None:
            if masks.shape[1] != self.depth:
                raise ValueError(
                    f"PMSA-ViT has {self.depth} layers but got {masks.shape[1]} pose masks"
                )
            allowed = [token_attention_mask(masks[:, i], p) for i in range(self.depth)]
        tokens = self.transformer(tokens, allowed)
        y = tokens.view(b, h // p, w // p, p, p, REDUCED_CHANNELS).permute(0, 5, 1, 3, 2, 4)
        return self.to_out(y.reshape(b, REDUCED_CHANNELS, h, w))
