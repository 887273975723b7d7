"""IP-Adapter and InstantID files in their real layouts, built at test time with seeded weights.

* IP-Adapter (``ip-adapter_sd15`` / ``ip-adapter_sdxl_vit-h`` layout): ``image_proj`` = ``proj``
  ``(tokens * ctx, clip_dim)`` + ``norm``; "plus" = a perceiver resampler (``latents``,
  ``proj_in``, ``layers.<i>.0.{norm1,norm2,to_q,to_kv,to_out}``, ``layers.<i>.1.{0,1,3}``,
  ``proj_out``, ``norm_out``); ``ip_adapter`` = ``<n>.to_k_ip.weight`` / ``<n>.to_v_ip.weight``
  ``(inner, ctx)`` for n = 1, 3, 5, ... one per cross-attention in diffusers order (down, up, mid).
* InstantID ``ip-adapter.bin``: the same ``ip_adapter`` layout for SDXL and a resampler of real
  size (dim 1280, depth 4, 20 heads of 64, 16 queries, 512-d ArcFace in, 2048 out; 82M weights).

``.bin`` files are the nested ``{"image_proj": {...}, "ip_adapter": {...}}`` torch pickle the
real ones are; ``.safetensors`` files use flat ``image_proj.*`` / ``ip_adapter.*`` keys.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

_ATTN2 = re.compile(
    r"(?:model\.diffusion_model\.)?(input_blocks|output_blocks|middle_block)\.(\d+)\.(?:\d+\.)?"
    r"transformer_blocks\.(\d+)\.attn2\.to_k\.weight$"
)


def cross_attention_dims(checkpoint: Path) -> list[int]:
    """Widths of a checkpoint's cross-attentions in IP-Adapter order (input, output, middle blocks)."""
    from safetensors import safe_open

    order = {"input_blocks": 0, "output_blocks": 1, "middle_block": 2}
    found = []
    with safe_open(str(checkpoint), "pt") as f:
        for key in f.keys():
            m = _ATTN2.match(key)
            if m and (key.startswith("model.diffusion_model.") or "diffusion_model" not in key):
                kind, block, tb = m.group(1), int(m.group(2)), int(m.group(3))
                found.append(
                    (
                        (order[kind], block if kind != "middle_block" else 0, tb),
                        f.get_slice(key).get_shape()[0],
                    )
                )
    return [dim for _, dim in sorted(found)]


def _randn(gen, *shape, scale=None):
    fan_in = shape[-1] if len(shape) > 1 else 1
    return torch.randn(*shape, generator=gen) * (scale if scale is not None else fan_in**-0.5)


def resampler_sd(
    gen, dim, depth, heads, queries, embedding_dim, output_dim, ff_mult=4, dim_head=64
) -> dict:
    inner = heads * dim_head
    sd = {
        "latents": _randn(gen, 1, queries, dim, scale=dim**-0.5),
        "proj_in.weight": _randn(gen, dim, embedding_dim),
        "proj_in.bias": torch.zeros(dim),
        "proj_out.weight": _randn(gen, output_dim, dim),
        "proj_out.bias": torch.zeros(output_dim),
        "norm_out.weight": torch.ones(output_dim),
        "norm_out.bias": torch.zeros(output_dim),
    }
    for i in range(depth):
        a, f = f"layers.{i}.0.", f"layers.{i}.1."
        sd.update(
            {
                a + "norm1.weight": torch.ones(dim),
                a + "norm1.bias": torch.zeros(dim),
                a + "norm2.weight": torch.ones(dim),
                a + "norm2.bias": torch.zeros(dim),
                a + "to_q.weight": _randn(gen, inner, dim),
                a + "to_kv.weight": _randn(gen, 2 * inner, dim),
                a + "to_out.weight": _randn(gen, dim, inner),
                f + "0.weight": torch.ones(dim),
                f + "0.bias": torch.zeros(dim),
                f + "1.weight": _randn(gen, dim * ff_mult, dim),
                f + "3.weight": _randn(gen, dim, dim * ff_mult),
            }
        )
    return sd


def layers_sd(gen, layer_dims, context_dim) -> dict:
    sd = {}
    for i, dim in enumerate(layer_dims):
        sd[f"{2 * i + 1}.to_k_ip.weight"] = _randn(gen, dim, context_dim)
        sd[f"{2 * i + 1}.to_v_ip.weight"] = _randn(gen, dim, context_dim)
    return sd


def ip_adapter_sd(layer_dims, context_dim, clip_dim, tokens=4, plus=False, seed=0) -> dict:
    """``{"image_proj": ..., "ip_adapter": ...}``; ``plus`` takes ``clip_dim``-wide hidden states."""
    gen = torch.Generator().manual_seed(seed)
    if plus:
        heads = 20 if context_dim == 2048 else 12
        proj = resampler_sd(
            gen, 1280 if context_dim == 2048 else 768, 4, heads, 16, clip_dim, context_dim
        )
    else:
        proj = {
            "proj.weight": _randn(gen, tokens * context_dim, clip_dim),
            "proj.bias": torch.zeros(tokens * context_dim),
            "norm.weight": torch.ones(context_dim),
            "norm.bias": torch.zeros(context_dim),
        }
    return {"image_proj": proj, "ip_adapter": layers_sd(gen, layer_dims, context_dim)}


def instantid_sd(
    layer_dims, context_dim=2048, seed=1, dim=1280, depth=4, heads=20, queries=16
) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {
        "image_proj": resampler_sd(gen, dim, depth, heads, queries, 512, context_dim),
        "ip_adapter": layers_sd(gen, layer_dims, context_dim),
    }


def save(sd: dict, path: Path, dtype=torch.float16) -> Path:
    """``.bin``: the nested torch pickle; ``.safetensors``: flat keys."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nested = {part: {k: v.to(dtype).contiguous() for k, v in d.items()} for part, d in sd.items()}
    if path.suffix == ".bin":
        torch.save(nested, path)
    else:
        from safetensors.torch import save_file

        save_file({f"{part}.{k}": v for part, d in nested.items() for k, v in d.items()}, str(path))
    return path
