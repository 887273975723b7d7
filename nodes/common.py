"""Small pieces every stage's nodes share: custom types, progress and interruption."""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

import torch

import comfy.model_management
import comfy.utils
import folder_paths
from comfy_api.latest import io

from ..models.common.files import is_inside

# The interchange type of comfyui_controlnet_aux; the string must match exactly to connect.
PoseKeypoint = io.Custom("POSE_KEYPOINT")


if any(f.name == "search_aliases" for f in dataclasses.fields(io.Schema)):
    Schema = io.Schema
else:

    @functools.lru_cache(maxsize=None)
    def _info_with_aliases(info_cls: type) -> type:
        return dataclasses.make_dataclass(
            info_cls.__name__,
            [("search_aliases", list, dataclasses.field(default=None))],
            bases=(info_cls,),
        )

    @dataclasses.dataclass
    class Schema(io.Schema):
        """``io.Schema`` with the ``search_aliases`` field of newer ComfyUI versions (other words the node
        search finds it by). On a ComfyUI whose Schema lacks the field (0.3.75) the aliases are still
        listed in /object_info, where frontend packages that know them read them."""

        search_aliases: list[str] | None = None

        def get_v1_info(self, cls):
            info = super().get_v1_info(cls)
            if not self.search_aliases:
                return info
            values = {f.name: getattr(info, f.name) for f in dataclasses.fields(info)}
            return _info_with_aliases(type(info))(
                **values, search_aliases=list(self.search_aliases)
            )


class Progress:
    """ComfyUI progress bar; every update is also a cancellation point (ComfyUI's hook)."""

    def __init__(self, total: int):
        self.total = max(int(total), 1)
        self.bar = comfy.utils.ProgressBar(self.total)

    def step(self, n: int = 1) -> None:
        self.bar.update(n)


def check_interrupted() -> None:
    """Raise ComfyUI's interruption if the user pressed cancel."""
    comfy.model_management.throw_exception_if_processing_interrupted()


def user_folder(given: str, what: str, roots: tuple[str, ...] = ("output", "input")) -> Path:
    """A folder the user named, resolved inside ComfyUI's output/input folders only.

    ``given`` is relative to one of them (tried in order) or absolute inside one; symlinks are
    followed before the check. Every refusal has the same wording, so an error does not tell
    whether something exists outside those folders.
    """
    bases = {
        "output": folder_paths.get_output_directory(),
        "input": folder_paths.get_input_directory(),
    }
    places = [bases[r] for r in roots]
    name = (given or "").strip()
    if name and "\x00" not in name:
        candidates = [Path(name)] if os.path.isabs(name) else [Path(b) / name for b in places]
        for c in candidates:
            if any(is_inside(b, c) for b in places) and c.is_dir():
                return Path(os.path.realpath(c))
    raise FileNotFoundError(
        f"{what} '{given}' is not a folder inside ComfyUI's {' or '.join(roots)} folder "
        f"({' or '.join(places)}): give a folder name relative to it"
    )


def apply_control(
    conds: list, control_net, hint, strength: float, vae=None, percent_range=(0.0, 1.0)
):
    """Attach the ControlNet hint to each conditioning exactly as core ControlNetApplyAdvanced does
    (one copy per previously attached ControlNet, chained; not applied to the uncond branch).
    ``hint``: IMAGE ``(B, H, W, C)``."""
    hint = hint.movedim(-1, 1)
    cnets = {}
    out = []
    for conditioning in conds:
        c = []
        for t in conditioning:
            d = t[1].copy()
            prev = d.get("control", None)
            if prev not in cnets:
                cnets[prev] = control_net.copy().set_cond_hint(
                    hint, strength, tuple(percent_range), vae=vae
                )
                cnets[prev].set_previous_controlnet(prev)
            d["control"] = cnets[prev]
            d["control_apply_to_uncond"] = False
            c.append([t[0], d])
        out.append(c)
    return out


def encode_embedding(clip, text: str) -> torch.Tensor:
    """CLIP cross-attention embedding of ``text``, float32 on the CPU."""
    if clip is None:
        raise ValueError(
            "the CLIP input is None: the checkpoint has no text encoder; load one with a CLIP loader"
        )
    return clip.encode_from_tokens(clip.tokenize(text)).float().cpu()


def encode_embeddings(clip, texts) -> torch.Tensor:
    """One embedding per text, stacked; each distinct text is encoded once."""
    cache: dict[str, torch.Tensor] = {}
    for t in texts:
        if t not in cache:
            cache[t] = encode_embedding(clip, t)
    return torch.cat([cache[t] for t in texts])


def vae_encode(vae, pixels: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """Raw VAE latents of an IMAGE batch, a few images at a time (bounded memory), float32 on the CPU."""
    return (
        torch.cat([vae.encode(pixels[i : i + chunk]) for i in range(0, pixels.shape[0], chunk)])
        .float()
        .cpu()
    )


def require_text_to_image_unet(model, what: str) -> None:
    """Refuse a MODEL whose UNet is not an SD-style text-to-image one with 4 latent channels
    (an InstructPix2Pix UNet takes 8; SDXL-style models also need size/pooled conditioning)."""
    unet = getattr(model.model, "diffusion_model", None)
    conv_in = None if unet is None else unet.state_dict().get("input_blocks.0.0.weight")
    if conv_in is None or conv_in.shape[1] != 4 or getattr(model.model, "adm_channels", 0):
        raise ValueError(
            f"the model is a {type(model.model).__name__}: {what} needs an SD1.5-family text-to-image UNet "
            "(4 latent channels, no size/pooled conditioning); load an SD1.5 checkpoint with Load Checkpoint"
        )
