"""OnePoseTrans's visual-consistency module (VCM), in plain PyTorch.

The UNet's cross-attention context becomes ``[text tokens | image tokens | face tokens]``
(Fan et al. 2024, arXiv 2409.09593, Sec. 3.3; the reference's attention processor):

* image tokens: a CLIP vision embedding of the segmented source through an IP-Adapter image
  projection (:class:`ImageProjection`, 4 tokens; or the "plus" :class:`Resampler`, 16 tokens from
  the penultimate hidden states). They enter each cross-attention through the IP-Adapter's own
  key/value projections as a second attention added with a per-block scale ``ip_scale``;
* face tokens: an ArcFace embedding through InstantID's :class:`Resampler` (dim 1280, depth 4,
  20 heads, 16 queries). They are not attended; they are *wrapped* into the text: the value of
  the subject word's token (OnePoseTrans: "face") is replaced by the softmax-weighted sum of the
  face values (InstantID's value projection of the face tokens, weights = softmax over the tokens
  per channel), times 4: ``v[p] = sum_j softmax_j(V_f)[j] * V_f[j] * 4`` (the reference writes it
  as the mean times 16 * 4). ``face_strength`` blends, 1 = the paper's replacement, 0 = off.

The unconditional branch uses the tokens of a zero embedding (image and face), as the reference.
Everything here is a function of tensors; the attention kernel is passed in (ComfyUI's in the
nodes, a plain one in the tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

DIM_HEAD = 64  # every IP-Adapter / InstantID resampler uses 64-channel heads
FACE_GAIN = 4.0  # the reference's extra factor on the face value (mean * 16 * 4 = sum * 4)


class VCMFileError(ValueError):
    """A projection file that is not what it should be; the message says what is wrong."""


# ---------------------------------------------------------------------------- projections
class ImageProjection(nn.Module):
    """IP-Adapter's image projection: one linear layer to ``tokens`` context vectors, layer-normed.
    Keys ``proj.weight`` ``(tokens * ctx, clip_dim)``, ``proj.bias``, ``norm.weight``, ``norm.bias``."""

    def __init__(self, clip_dim: int, context_dim: int, tokens: int):
        super().__init__()
        self.tokens, self.context_dim = tokens, context_dim
        self.proj = nn.Linear(clip_dim, tokens * context_dim)
        self.norm = nn.LayerNorm(context_dim)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(emb).reshape(-1, self.tokens, self.context_dim))

    @classmethod
    def from_state_dict(cls, sd: dict) -> "ImageProjection":
        try:
            out_dim, clip_dim = sd["proj.weight"].shape
            ctx = sd["norm.weight"].shape[0]
        except KeyError as exc:
            raise VCMFileError(f"no image projection weight {exc}") from None
        if out_dim % ctx:
            raise VCMFileError(
                f"proj.weight {tuple(sd['proj.weight'].shape)} is not a multiple of the {ctx}-d context"
            )
        m = cls(clip_dim, ctx, out_dim // ctx)
        _load(m, sd, "image projection")
        return m


class PerceiverAttention(nn.Module):
    """Latent queries attend to ``[inputs; latents]`` (keys ``norm1``, ``norm2``, ``to_q``,
    ``to_kv``, ``to_out``; no biases)."""

    def __init__(self, dim: int, heads: int, dim_head: int = DIM_HEAD):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        x, latents = self.norm1(x), self.norm2(latents)
        b, n, _ = latents.shape
        split = lambda t: t.reshape(b, t.shape[1], self.heads, self.dim_head).transpose(1, 2)  # noqa: E731
        q = split(self.to_q(latents))
        k, v = (split(t) for t in self.to_kv(torch.cat([x, latents], dim=1)).chunk(2, dim=-1))
        w = (q @ k.transpose(-1, -2)) / math.sqrt(self.dim_head)
        out = torch.softmax(w.float(), dim=-1).to(v.dtype) @ v
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class Resampler(nn.Module):
    """Perceiver resampler: ``queries`` learned latents read the input embedding through ``depth``
    attention + feed-forward layers, then a projection to the UNet's context width. InstantID's
    face model and IP-Adapter "plus" use it. Keys: ``latents`` ``(1, Q, dim)``, ``proj_in``,
    ``layers.<i>.0.*`` (attention), ``layers.<i>.1.{0,1,3}`` (LayerNorm, Linear, GELU, Linear),
    ``proj_out``, ``norm_out``."""

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        queries: int,
        embedding_dim: int,
        output_dim: int,
        ff_mult: int = 4,
    ):
        super().__init__()
        self.config = dict(
            dim=dim,
            depth=depth,
            heads=heads,
            queries=queries,
            embedding_dim=embedding_dim,
            output_dim=output_dim,
            ff_mult=ff_mult,
        )
        self.latents = nn.Parameter(torch.zeros(1, queries, dim))
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PerceiverAttention(dim, heads),
                    nn.Sequential(
                        nn.LayerNorm(dim),
                        nn.Linear(dim, dim * ff_mult, bias=False),
                        nn.GELU(),
                        nn.Linear(dim * ff_mult, dim, bias=False),
                    ),
                ]
            )
            for _ in range(depth)
        )
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:  # one embedding per image (ArcFace): a sequence of length 1
            x = x[:, None]
        latents = self.latents.expand(x.shape[0], -1, -1)
        x = self.proj_in(x)
        for attn, ff in self.layers:
            latents = latents + attn(x, latents)
            latents = latents + ff(latents)
        return self.norm_out(self.proj_out(latents))

    @classmethod
    def from_state_dict(cls, sd: dict) -> "Resampler":
        try:
            _, queries, dim = sd["latents"].shape
            embedding_dim = sd["proj_in.weight"].shape[1]
            output_dim = sd["proj_out.weight"].shape[0]
            heads = sd["layers.0.0.to_q.weight"].shape[0] // DIM_HEAD
            ff_mult = sd["layers.0.1.1.weight"].shape[0] // dim
        except (KeyError, ValueError) as exc:
            raise VCMFileError(f"not a perceiver resampler: missing or misshapen {exc}") from None
        depth = len({k.split(".")[1] for k in sd if k.startswith("layers.")})
        m = cls(dim, depth, heads, queries, embedding_dim, output_dim, ff_mult)
        _load(m, sd, "resampler")
        return m


def _load(module: nn.Module, sd: dict, what: str) -> None:
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise VCMFileError(
            f"the {what} weights do not fit: missing {missing[:4]}, unexpected {unexpected[:4]}"
        )
    for k, v in own.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise VCMFileError(
                f"the {what} weight {k} is {tuple(sd[k].shape)}, expected {tuple(v.shape)}"
            )
    module.load_state_dict({k: sd[k].float() for k in own})
    module.eval().requires_grad_(False)


# ---------------------------------------------------------------------------- adapter files
@dataclass
class AdapterWeights:
    """An IP-Adapter-layout file: the projection and, per cross-attention layer (in IP-Adapter's
    order), the key and value projections of the extra tokens ``(inner, context_dim)``."""

    projection: nn.Module
    kind: str  # "plain" (CLIP image embeds -> 4 tokens), "plus" (penultimate hidden states), "face"
    to_k: list[torch.Tensor]
    to_v: list[torch.Tensor]

    @property
    def context_dim(self) -> int:
        return self.to_k[0].shape[1]

    @property
    def input_dim(self) -> int:
        p = self.projection
        return p.proj.in_features if isinstance(p, ImageProjection) else p.config["embedding_dim"]

    def tokens(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cond, uncond) tokens: the projection of ``embedding`` and of a zero embedding."""
        with torch.no_grad():
            emb = embedding.float()
            return self.projection(emb), self.projection(torch.zeros_like(emb))


def split_adapter_file(sd: dict) -> tuple[dict, dict]:
    """``(image_proj, ip_adapter)`` dicts from the nested ``.bin`` layout or the flat
    ``image_proj.*`` / ``ip_adapter.*`` keys of ``.safetensors`` files."""
    if isinstance(sd.get("image_proj"), dict) and isinstance(sd.get("ip_adapter"), dict):
        return sd["image_proj"], sd["ip_adapter"]
    proj = {k.removeprefix("image_proj."): v for k, v in sd.items() if k.startswith("image_proj.")}
    layers = {
        k.removeprefix("ip_adapter."): v for k, v in sd.items() if k.startswith("ip_adapter.")
    }
    if not proj or not layers:
        raise VCMFileError(
            "expected 'image_proj' and 'ip_adapter' weights (the IP-Adapter / InstantID layout)"
        )
    return proj, layers


def adapter_weights(sd: dict, face: bool = False) -> AdapterWeights:
    """Parse an IP-Adapter (``face=False``) or InstantID ``ip-adapter.bin`` (``face=True``) state dict."""
    proj_sd, layer_sd = split_adapter_file(sd)
    if face:
        proj, kind = Resampler.from_state_dict(proj_sd), "face"
    elif "proj.weight" in proj_sd and "norm.weight" in proj_sd and "proj.2.weight" not in proj_sd:
        proj, kind = ImageProjection.from_state_dict(proj_sd), "plain"
    elif "latents" in proj_sd:
        proj, kind = Resampler.from_state_dict(proj_sd), "plus"
    else:
        raise VCMFileError(
            "unsupported IP-Adapter variant (FaceID/full-face/portrait projections are not used by "
            "OnePoseTrans): use ip-adapter_sd15, ip-adapter-plus_sd15 or ip-adapter_sdxl_vit-h"
        )
    numbers = sorted({int(k.split(".")[0]) for k in layer_sd if k.split(".")[0].isdigit()})
    if not numbers or numbers != list(range(1, 2 * len(numbers), 2)):
        raise VCMFileError(
            "its ip_adapter layers are not numbered 1, 3, 5, ... (one per cross-attention)"
        )
    try:
        to_k = [
            layer_sd[f"{n}.to_k_ip.weight"] for n in numbers
        ]  # kept in the file's dtype (SDXL: 340M weights)
        to_v = [layer_sd[f"{n}.to_v_ip.weight"] for n in numbers]
    except KeyError as exc:
        raise VCMFileError(f"ip_adapter weight {exc} is missing") from None
    return AdapterWeights(proj, kind, to_k, to_v)


def check_fits(
    weights: AdapterWeights, layer_dims: Sequence[int], context_dim: int, what: str
) -> None:
    """The file must have one layer per cross-attention of the model, with its widths."""
    if weights.context_dim != context_dim:
        raise VCMFileError(
            f"{what} is for a {weights.context_dim}-d text context and the model uses {context_dim} "
            "(SD1.5: 768, SDXL: 2048): use the file made for this model family"
        )
    if len(weights.to_k) != len(layer_dims):
        raise VCMFileError(
            f"{what} has {len(weights.to_k)} cross-attention layers and the model {len(layer_dims)}: "
            "use the file made for this model family"
        )
    for i, (k, dim) in enumerate(zip(weights.to_k, layer_dims)):
        if k.shape[0] != dim:
            raise VCMFileError(
                f"{what} layer {2 * i + 1} is {k.shape[0]} wide where the model's attention is {dim}"
            )


# ---------------------------------------------------------------------------- block scales
def block_scales(
    output_keys_by_block: dict[int, int],
    blocks_per_level: int,
    layout: float,
    style: float,
    other: float,
) -> dict[tuple[str, int], float]:
    """The reference's image-token scales: ``layout`` in ``up_blocks.0.attentions.1``, ``style`` in
    ``up_blocks.0.attentions.0``, ``other`` elsewhere. As the LoRA's layout block, this means the
    first decoder level that has attention (SDXL: ``output_blocks.0/1``; SD1.5, whose first decoder
    level has none: ``up_blocks.1.attentions.0/1`` = ``output_blocks.3/4``). ``output_keys_by_block``:
    output block index -> number of transformer blocks in it. Returns ``{("output", i): scale}`` for
    the two named blocks; every other block takes ``other``."""
    with_attn = sorted(i for i, n in output_keys_by_block.items() if n > 0)
    if not with_attn:
        return {}
    level = with_attn[0] // blocks_per_level
    first = [i for i in with_attn if i // blocks_per_level == level]
    scales = {("output", first[0]): style}
    if len(first) > 1:
        scales[("output", first[1])] = layout
    return scales


# ---------------------------------------------------------------------------- attention
def face_value(face_tokens: torch.Tensor, to_v_face: torch.Tensor) -> torch.Tensor:
    """The wrapped value ``(B, 1, inner)``: softmax-over-tokens-weighted sum of the face values, x4."""
    fv = face_tokens.float() @ to_v_face.float().t()
    return (torch.softmax(fv, dim=1) * fv).sum(dim=1, keepdim=True) * FACE_GAIN


def rows_for(
    cond: torch.Tensor, uncond: torch.Tensor, batch: int, cond_or_uncond: Sequence[int] | None
) -> torch.Tensor:
    """Per-row tokens for a batch made of ``cond_or_uncond`` chunks (ComfyUI: 0 = cond, 1 = uncond)."""
    chunks = list(cond_or_uncond) if cond_or_uncond else [0]
    per = batch // len(chunks)
    return torch.cat([(cond if c == 0 else uncond).expand(per, -1, -1) for c in chunks])


@dataclass
class LayerVCM:
    """One cross-attention's VCM: its IP key/value weights and scale, its face value weight and the
    wrapping strength."""

    ip_scale: float = 0.0
    to_k_ip: torch.Tensor | None = None
    to_v_ip: torch.Tensor | None = None
    face_strength: float = 0.0
    to_v_face: torch.Tensor | None = None

    def active(self, tokens: "VCMTokens") -> bool:
        return bool(self.ip_scale and tokens.image is not None) or self.wraps(tokens)

    def wraps(self, tokens: "VCMTokens") -> bool:
        return bool(
            self.face_strength and tokens.face is not None and tokens.subject_pos is not None
        )


@dataclass
class VCMTokens:
    image: tuple[torch.Tensor, torch.Tensor] | None  # (cond, uncond), each (1, T, ctx)
    face: (
        tuple[torch.Tensor, torch.Tensor] | None
    )  # (cond, uncond), each (1, 16, ctx); None: no face
    subject_pos: int | None  # index of the subject word's first token in the text context


Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def vcm_cross_attention(
    q,
    k,
    v,
    layer: LayerVCM,
    tokens: VCMTokens,
    attend_text: Attend,
    attend: Attend,
    cond_or_uncond: Sequence[int] | None = None,
) -> torch.Tensor:
    """Cross-attention output before ``to_out`` with the VCM: ``q`` ``(B, N, inner)``; ``k``, ``v``
    the projected text context ``(B, L, inner)``. ``attend_text`` computes the text attention (the
    unpatched kernel, or a patch already on the model); ``attend`` the image-token attention."""
    b = q.shape[0]
    if layer.wraps(tokens) and tokens.subject_pos < v.shape[1]:
        face = rows_for(*[t.to(q.device) for t in tokens.face], b, cond_or_uncond)
        fv = face_value(face, layer.to_v_face.to(q.device))[:, 0].to(v.dtype)
        p = tokens.subject_pos
        v = torch.cat(
            [v[:, :p], torch.lerp(v[:, p], fv, layer.face_strength)[:, None], v[:, p + 1 :]], dim=1
        )
    out = attend_text(q, k, v)
    if layer.ip_scale and tokens.image is not None:
        img = rows_for(*[t.to(q.device, q.dtype) for t in tokens.image], b, cond_or_uncond)
        ik = img @ layer.to_k_ip.to(q.device, q.dtype).t()
        iv = img @ layer.to_v_ip.to(q.device, q.dtype).t()
        out = out + layer.ip_scale * attend(q, ik, iv)
    return out
