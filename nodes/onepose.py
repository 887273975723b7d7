"""OnePoseTrans stage: the one-shot subject LoRA trained on the source photo at test time, and the
visual-consistency module (VCM) that patches the MODEL's cross-attention with image and face tokens.

The rest of OnePoseTrans's pipeline is composed from nodes that exist (workflows/onepose_repose,
onepose_repose_sdxl): Person Mask (segmentation), Fill Background (inpainting), Extract Pose / Pose
From Library, an OpenPose ControlNet through core Apply ControlNet, Person Mask on the result and
Composite. LayerDiffuse is not here (the composite uses a re-segmentation mask instead).
"""

from __future__ import annotations

import json
import logging
import os
import threading

import cv2
import numpy as np
import torch

import comfy.model_base
import comfy.sd
import comfy.utils
import folder_paths
from comfy.ldm.modules.attention import optimized_attention
from comfy_api.latest import io, ui

from ..models.common import lora_training as lt
from ..models.common.images import image_batch_to_numpy, mask_batch_to_numpy, numpy_to_image_batch
from ..models.metrics import identity
from ..models.onepose import subject_lora, vcm
from .common import Progress, require_text_to_image_unet, vae_encode
from .model_folders import MissingModelError, folder_locations, list_model_files, resolve_model_file
from .training import free_lora_path, load_lora_file, lora_stem, train_lora_on_data, training_report

log = logging.getLogger("poselab")

CATEGORY = "PoseLab/onepose"
BLOCK_WEIGHTS = ("oneposetrans (0.2, layout block 1.0)", "uniform")
TARGETS = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
)  # all self- and cross-attention projections, as the reference


def model_family(model, what: str) -> str:
    """ "sdxl" or "sd15" for the text-to-image UNets OnePoseTrans runs on, else a clear error."""
    base = model.model
    if (
        isinstance(base, comfy.model_base.SDXL)
        and getattr(base.diffusion_model, "in_channels", 4) == 4
    ):
        return "sdxl"
    require_text_to_image_unet(model, what + " (or SDXL)")
    return "sd15"


def layout_block(model) -> str:
    """The model's OnePoseTrans layout attention block (module name prefix)."""
    return subject_lora.LAYOUT_BLOCK[
        "sdxl" if isinstance(model.model, comfy.model_base.SDXL) else "sd15"
    ]


def encode_prompt(clip, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Cross-attention context and pooled output of ``text`` (SDXL: both encoders' penultimate
    layers side by side, pooled from the second), float32 on the CPU."""
    if clip is None:
        raise ValueError(
            "the CLIP input is None: the checkpoint has no text encoder; load one with a CLIP loader"
        )
    cond, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
    return cond.float().cpu(), None if pooled is None else pooled.float().cpu()


def subject_data(
    model, clip, vae, crops: np.ndarray, description: str, photo_size: tuple[int, int]
) -> lt.TrainData:
    """Encoded training views: latents of the crops, the description's context (and for SDXL the
    vector condition: pooled text + size ids, the photo's size as original and target size with
    no crop, as the reference's add-time ids; ComfyUI's pooled output is the projected one that
    sampling uses, so training and generation see the same vector)."""
    n = len(crops)
    latents = model.model.latent_format.process_in(
        vae_encode(vae, numpy_to_image_batch(list(crops)))
    )
    text, pooled = encode_prompt(clip, description)
    null_text, null_pooled = encode_prompt(clip, "")
    y = null_y = None
    if isinstance(model.model, comfy.model_base.SDXL):
        h, w = photo_size
        size = dict(width=w, height=h, crop_w=0, crop_h=0, target_width=w, target_height=h)
        y = (
            model.model.encode_adm(pooled_output=pooled, device="cpu", **size)
            .float()
            .expand(n, -1)
            .contiguous()
        )
        null_y = model.model.encode_adm(pooled_output=null_pooled, device="cpu", **size).float()
    return lt.TrainData(
        target_latents=latents,
        text=text.expand(n, -1, -1).contiguous(),
        null_text=null_text,
        y=y,
        null_y=null_y,
    )


def with_block_weights(model, lora_sd: dict, base: float, layout: float):
    """``model`` patched with the LoRA at ``layout`` in the layout block and ``base`` elsewhere."""
    weighted = subject_lora.block_weighted(lora_sd, base, layout_block(model), layout)
    return comfy.sd.load_lora_for_models(model, None, weighted, 1.0, 0.0)[0]


class TrainSubjectLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PoseLabTrainSubjectLoRA",
            is_experimental=True,  # as core marks its own trainer: long-running, settings may change
            display_name="Train Subject LoRA (PoseLab)",
            category=CATEGORY,
            description="OnePoseTrans's test-time LoRA: fine-tunes the checkpoint's attention on one photo of the "
            "person (random square crops of the segmented person, their description as the prompt), so "
            "a pose-controlled generation keeps their look. Saves the LoRA to models/loras/ and returns "
            "the model with it applied at OnePoseTrans's block weights.",
            is_output_node=True,
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="An SD1.5-family or SDXL checkpoint (kept frozen; only the LoRA trains). "
                    "OnePoseTrans uses RealVisXL V4.0 (SDXL).",
                ),
                io.Clip.Input("clip", tooltip="Its text encoder."),
                io.Vae.Input("vae", tooltip="Its VAE."),
                io.Image.Input("image", tooltip="One photo of the person."),
                io.String.Input(
                    "description",
                    multiline=True,
                    default="A woman with face, a white shirt, blue jeans",
                    tooltip='The person in OnePoseTrans\'s form "A man/woman with face, <garments>"; '
                    "use the same text in the generation prompt.",
                ),
                io.Int.Input(
                    "steps",
                    default=60,
                    min=1,
                    max=100000,
                    tooltip="Optimiser steps (OnePoseTrans: 60).",
                ),
                io.Int.Input(
                    "rank",
                    default=32,
                    min=1,
                    max=256,
                    tooltip="LoRA rank (OnePoseTrans: 32, alpha 32).",
                ),
                io.Float.Input(
                    "learning_rate",
                    default=1e-3,
                    min=1e-7,
                    max=1.0,
                    step=1e-5,
                    round=1e-7,
                    tooltip="AdamW, constant (OnePoseTrans: 1e-3).",
                ),
                io.Int.Input(
                    "batch_size",
                    default=2,
                    min=1,
                    max=64,
                    tooltip="Crops per step (OnePoseTrans: 2).",
                ),
                io.Int.Input(
                    "resolution", default=512, min=64, max=2048, step=8, tooltip="Crop size."
                ),
                io.Int.Input(
                    "views",
                    default=16,
                    min=1,
                    max=1024,
                    tooltip="How many random crops are drawn (and VAE-encoded once) to sample from.",
                ),
                io.Combo.Input(
                    "block_weights",
                    options=list(BLOCK_WEIGHTS),
                    default=BLOCK_WEIGHTS[0],
                    tooltip="How the returned model applies the LoRA: OnePoseTrans's 0.2 everywhere and 1.0 "
                    "in the layout attention block, or one strength everywhere. The saved file is "
                    "the plain LoRA either way.",
                ),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=-10.0,
                    max=10.0,
                    step=0.05,
                    tooltip="Multiplies the block weights.",
                ),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF),
                io.String.Input(
                    "lora_name",
                    default="poselab_subject",
                    tooltip="File name stem in models/loras; a counter is added if it exists.",
                ),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="The person (1 = person), e.g. from Person Mask; the rest becomes flat grey, as "
                    "OnePoseTrans trains on the segmented foreground. Without it the whole photo is used.",
                ),
                io.Boolean.Input(
                    "gradient_checkpointing",
                    default=False,
                    optional=True,
                    tooltip="Recompute the UNet's activations in the backward pass: much less memory "
                    "(SDXL at 512 px on small GPUs), about a third more time.",
                ),
            ],
            outputs=[
                io.Model.Output(
                    display_name="model",
                    tooltip="The model with the subject LoRA applied (block_weights).",
                ),
                io.Model.Output(
                    display_name="refine_model",
                    tooltip="The model with the LoRA in the layout block only (OnePoseTrans's refining pass: "
                    "img2img at denoise 0.65 without the ControlNet).",
                ),
                io.String.Output(
                    display_name="lora_file",
                    tooltip="The LoRA in models/loras (core Load LoRA reads it).",
                ),
                io.String.Output(
                    display_name="report",
                    tooltip="JSON: losses and the fixed-set loss before/after.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        clip,
        vae,
        image,
        description,
        steps,
        rank,
        learning_rate,
        batch_size,
        resolution,
        views,
        block_weights,
        strength,
        seed,
        lora_name,
        mask=None,
        gradient_checkpointing=False,
    ) -> io.NodeOutput:
        model_family(model, "the subject LoRA trainer")
        if not description.strip():
            raise ValueError(
                'the description is empty: describe the person, e.g. "A man with face, a red jacket"'
            )
        if image.shape[0] != 1:
            raise ValueError(
                f"{image.shape[0]} images: the subject LoRA is trained on one photo; pick one (Image From Batch)"
            )
        stem = lora_stem(lora_name, "poselab_subject")
        photo = image_batch_to_numpy(image)[0]
        person = None
        if mask is not None:
            person = mask_batch_to_numpy(mask)[0]
            if person.shape != photo.shape[:2]:
                person = cv2.resize(
                    person, (photo.shape[1], photo.shape[0]), interpolation=cv2.INTER_LINEAR
                )
        size = resolution // 8 * 8
        crops = subject_lora.random_square_crops(
            subject_lora.foreground_on(photo, person), size, views, seed
        )
        data = subject_data(model, clip, vae, crops, description, photo.shape[:2])
        cfg = lt.TrainConfig(
            steps=steps,
            batch_size=batch_size,
            grad_accum=1,
            lr=learning_rate,
            weight_decay=1e-2,
            text_dropout=0.0,
            image_dropout=0.0,
            seed=seed,
            eval_samples=max(1, 16 // len(crops)),
        )
        out_path = free_lora_path(stem)
        result, sd = train_lora_on_data(
            model,
            data,
            rank,
            float(rank),
            list(TARGETS),
            cfg,
            out_path,
            {"poselab": "OnePoseTrans subject LoRA", "description": description},
            Progress(steps),
            gradient_checkpointing=gradient_checkpointing,
        )
        base = 0.2 * strength if block_weights == BLOCK_WEIGHTS[0] else strength
        patched = with_block_weights(model, sd, base, strength)
        refine_model = with_block_weights(model, sd, 0.0, strength)
        report = training_report(
            result, lora_file=out_path.name, views=len(crops), block_weights=block_weights
        )
        return io.NodeOutput(
            patched, refine_model, out_path.name, report, ui=ui.PreviewText(report)
        )


class ApplySubjectLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PoseLabApplySubjectLoRA",
            display_name="Apply Subject LoRA by Blocks (PoseLab)",
            category=CATEGORY,
            description="Loads a LoRA from models/loras with one strength for the layout attention block and another "
            "for everything else: OnePoseTrans generates at 0.2 / 1.0 and refines (img2img) at 0 / 1.0.",
            inputs=[
                io.Model.Input("model"),
                io.Combo.Input(
                    "lora_name",
                    options=folder_paths.get_filename_list("loras"),
                    tooltip="E.g. the file Train Subject LoRA (PoseLab) wrote.",
                ),
                io.Float.Input(
                    "base_strength",
                    default=0.0,
                    min=-10.0,
                    max=10.0,
                    step=0.05,
                    tooltip="Strength everywhere but the layout block (OnePoseTrans: 0.2 to generate, 0 to refine).",
                ),
                io.Float.Input(
                    "layout_strength",
                    default=1.0,
                    min=-10.0,
                    max=10.0,
                    step=0.05,
                    tooltip="Strength in the layout attention block (SDXL output_blocks.1.1, SD1.5 output_blocks.4.1).",
                ),
            ],
            outputs=[io.Model.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, model, lora_name, base_strength, layout_strength) -> io.NodeOutput:
        return io.NodeOutput(
            with_block_weights(model, load_lora_file(lora_name), base_strength, layout_strength)
        )


# ---------------------------------------------------------------------------- visual consistency
IPADAPTER_FOLDER, INSTANTID_FOLDER, INSIGHTFACE_FOLDER = "ipadapter", "instantid", "insightface"
IPADAPTER_NAMES = (
    "ip-adapter_sdxl_vit-h.safetensors",
    "ip-adapter_sd15.safetensors",
    "ip-adapter-plus_sd15.safetensors",
)
INSTANTID_NAME, FACE_PACK = "ip-adapter.bin", "antelopev2"
NO_FILE = "none"
CLIP_VISION_HINT = (
    "Load CLIP Vision with the image encoder the IP-Adapter was trained with (ViT-H: "
    "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors in {})"
)
_ADAPTERS: dict = {}
_ADAPTERS_LOCK = threading.Lock()


def file_choices(folder: str, known: tuple[str, ...]) -> list[str]:
    """The usual file names first (a missing one then gets a "put it in" error, not a menu error),
    then whatever else is in the folder."""
    return list(known) + sorted(set(list_model_files(folder)) - set(known))


def load_adapter(folder: str, name: str, face: bool) -> vcm.AdapterWeights:
    """An IP-Adapter or InstantID file from ``models/<folder>``: safetensors, or a ``.bin`` unpickled
    with ``weights_only`` (a pickle carrying code is refused). One file per folder is cached."""
    path = resolve_model_file(folder, name)
    key = (path, os.path.getmtime(path))
    with _ADAPTERS_LOCK:
        if _ADAPTERS.get(folder, (None,))[0] == key:
            return _ADAPTERS[folder][1]
    where = os.path.dirname(path)
    try:
        sd = comfy.utils.load_torch_file(path, safe_load=True)
    except Exception as exc:  # corrupt, truncated, or a pickle with code in it
        raise ValueError(
            f"cannot read {name} in {where}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        ) from None
    try:
        weights = vcm.adapter_weights(sd, face=face)
    except vcm.VCMFileError as exc:
        raise ValueError(
            f"{name} in {where} is not {'an InstantID' if face else 'an IP-Adapter'} file: {exc}"
        ) from None
    with _ADAPTERS_LOCK:
        _ADAPTERS[folder] = (key, weights)
    return weights


def face_pack_choices() -> list[str]:
    packs = {FACE_PACK}
    for root in folder_locations(INSIGHTFACE_FOLDER):
        for base in (root, os.path.join(root, "models")):
            if os.path.isdir(base):
                packs |= {
                    d
                    for d in os.listdir(base)
                    if identity.is_insightface_pack(os.path.join(base, d))
                }
    return [FACE_PACK] + sorted(packs - {FACE_PACK})


def face_pack_path(name: str) -> str:
    """``models/insightface/models/<name>`` (the InstantID pack's layout) or ``models/insightface/<name>``."""
    if not name or name in (".", "..") or os.path.basename(name.replace("\\", "/")) != name:
        raise ValueError(
            f"face_analysis must be the name of a pack folder such as {FACE_PACK}, not a path"
        )
    for root in folder_locations(INSIGHTFACE_FOLDER):
        for path in (os.path.join(root, "models", name), os.path.join(root, name)):
            if identity.is_insightface_pack(path):
                return path
    where = os.path.join(folder_locations(INSIGHTFACE_FOLDER)[0], "models")
    raise MissingModelError(
        f"insightface pack '{name}' not found: put the folder {name}/ (its .onnx files: "
        f"scrfd_10g_bnkps.onnx, glintr100.onnx, ...) in {where}, as the InstantID pack expects"
    )


def first_face_embedding(pack: str, rgb: np.ndarray) -> np.ndarray | None:
    """ArcFace embedding (512, unnormalised, as InstantID takes it) of the first face insightface
    returns (the most confident), detected at 640 px; None when there is no face."""
    app = identity.get_embedder(pack).app
    faces = [
        f
        for f in app.get(np.ascontiguousarray(rgb[:, :, ::-1]))
        if getattr(f, "embedding", None) is not None
    ]
    return np.asarray(faces[0].embedding, np.float32) if faces else None


def subject_position(clip, prompt: str, word: str) -> int:
    """Index of ``word``'s first token in ``prompt``'s cross-attention context (every tokenizer of
    the CLIP must agree; chunks of 77 follow each other). The reference hard-codes 4."""
    word_ids = None
    for chunks in clip.tokenize(word).values():
        ids = [int(t[0]) for t in chunks[0][1:]]
        inner = ids[: ids.index(49407)] if 49407 in ids else ids  # up to CLIP's end token
        word_ids = word_ids or inner
    if not word_ids:
        raise ValueError(
            f"the subject word '{word}' has no tokens: give a word of the prompt such as face"
        )
    found = set()
    for chunks in clip.tokenize(prompt).values():
        flat = [int(t[0]) if not torch.is_tensor(t[0]) else -1 for chunk in chunks for t in chunk]
        hits = [
            i
            for i in range(len(flat) - len(word_ids) + 1)
            if flat[i : i + len(word_ids)] == word_ids
        ]
        found.add(hits[0] if hits else None)
    if found == {None}:
        raise ValueError(
            f"the subject word '{word}' is not in the prompt '{prompt[:80]}': write it in the prompt "
            '(OnePoseTrans\'s form is "A man with face, ...") or change subject_word'
        )
    if len(found) != 1:
        raise ValueError(
            f"the text encoders place '{word}' at different tokens {sorted(p for p in found if p is not None)}"
        )
    return found.pop()


def cross_attentions(unet) -> list[tuple[tuple[str, int, int], int]]:
    """``((block, index, transformer_index), width)`` of every cross-attention, in IP-Adapter's
    order (diffusers': down, up, then mid), keyed as ComfyUI's attn2 patches are."""
    out = []
    groups = (
        ("input", unet.input_blocks),
        ("output", unet.output_blocks),
        ("middle", [unet.middle_block] if unet.middle_block is not None else []),
    )
    for name, blocks in groups:
        for i, block in enumerate(blocks):
            for module in block:
                for j, tb in enumerate(getattr(module, "transformer_blocks", [])):
                    if getattr(tb, "attn2", None) is not None:
                        out.append(
                            ((name, 0 if name == "middle" else i, j), tb.attn2.to_k.weight.shape[0])
                        )
    return out


class VCMPatch:
    """ComfyUI attn2 replace patch around :func:`vcm.vcm_cross_attention`. A patch that was
    already at this block computes the text attention inside ours, so both apply; a pack that adds
    to the patch at its block afterwards (IPAdapter_plus calls ``add(callback, **kwargs)`` and expects
    ``callback(out, q, k, v, extra_options, **kwargs)`` to return a term added to the output inside
    its ``sigma_start``..``sigma_end`` window) is served the same way."""

    def __init__(self, layer: vcm.LayerVCM, tokens: vcm.VCMTokens, previous=None):
        self.layer, self.tokens, self.previous = layer, tokens, previous
        self.added: list[tuple] = []

    def add(self, callback, **kwargs):
        self.added.append((callback, kwargs))

    def __call__(self, q, k, v, extra):
        heads, precision = extra["n_heads"], extra.get("attn_precision")

        def text(q_, k_, v_):
            if self.previous is not None:
                return self.previous(q_, k_, v_, extra)
            return optimized_attention(
                q_, k_, v_, heads, attn_precision=precision, transformer_options=extra
            )

        def image(q_, k_, v_):
            return optimized_attention(q_, k_, v_, heads, attn_precision=precision)

        out = vcm.vcm_cross_attention(
            q, k, v, self.layer, self.tokens, text, image, extra.get("cond_or_uncond")
        )
        if self.added:
            sigma = float(extra["sigmas"][0]) if "sigmas" in extra else float("inf")
            for callback, kwargs in self.added:
                if kwargs.get("sigma_end", 0.0) <= sigma <= kwargs.get("sigma_start", float("inf")):
                    out = out + callback(out, q, k, v, extra, **kwargs)
        return out.to(q.dtype)

    def __deepcopy__(self, memo):
        # ModelPatcher.clone() deep-copies model_options; the weights and tokens here are never
        # written (only moved), so clones share them instead of copying hundreds of MB each time
        return self

    def to(self, device_or_dtype):
        """ComfyUI moves patches to the sampling device before sampling (dtypes are cast per call)."""
        if isinstance(device_or_dtype, torch.device):
            move = lambda t: None if t is None else t.to(device_or_dtype)  # noqa: E731
            for name in ("to_k_ip", "to_v_ip", "to_v_face"):
                setattr(self.layer, name, move(getattr(self.layer, name)))
            for name in ("image", "face"):
                pair = getattr(self.tokens, name)
                if pair is not None:
                    setattr(self.tokens, name, tuple(move(t) for t in pair))
        if self.previous is not None and hasattr(self.previous, "to"):
            self.previous = self.previous.to(device_or_dtype)
        return self


def image_tokens(clip_vision, adapter: vcm.AdapterWeights, source: torch.Tensor, adapter_name: str):
    """(cond, uncond) image tokens of the source IMAGE ``(1, H, W, 3)``."""
    if clip_vision is None:
        raise ValueError(
            "connect a CLIP_VISION: "
            + CLIP_VISION_HINT.format(" or ".join(folder_paths.get_folder_paths("clip_vision")))
        )
    out = clip_vision.encode_image(source, crop=True)
    emb = out.image_embeds if adapter.kind == "plain" else out.penultimate_hidden_states
    if emb.shape[-1] != adapter.input_dim:
        what = "image embeddings" if adapter.kind == "plain" else "hidden states"
        raise ValueError(
            f"{adapter_name} takes {adapter.input_dim}-d CLIP vision {what} and this CLIP_VISION gives "
            f"{emb.shape[-1]}: "
            + CLIP_VISION_HINT.format(" or ".join(folder_paths.get_folder_paths("clip_vision")))
        )
    return adapter.tokens(emb.float().cpu())


class VisualConsistency(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PoseLabVisualConsistency",
            display_name="Visual Consistency (OnePoseTrans) (PoseLab)",
            category=CATEGORY,
            description="OnePoseTrans's visual-consistency module: the MODEL's cross-attention sees the prompt, image "
            "tokens of the segmented source (IP-Adapter) and the face (InstantID face tokens wrapped into "
            "the subject word's value), so a reposed person keeps their clothes and face. Patches compose "
            "with LoRAs and other attention patches (e.g. IPAdapter_plus).",
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="SDXL (as the paper) or SD1.5; typically with the subject LoRA applied.",
                ),
                io.Clip.Input(
                    "clip",
                    tooltip="The checkpoint's text encoder (tokenises and encodes the prompt).",
                ),
                io.Image.Input("image", tooltip="The source photo of the person (one image)."),
                io.String.Input(
                    "prompt",
                    multiline=True,
                    default="A man with face, a dark coat, high quality",
                    tooltip="The generation prompt; returned encoded as 'positive'. It must contain the "
                    "subject word for the face tokens.",
                ),
                io.Combo.Input(
                    "ipadapter_file",
                    options=file_choices(IPADAPTER_FOLDER, IPADAPTER_NAMES),
                    default=IPADAPTER_NAMES[0],
                    tooltip="IP-Adapter in models/ipadapter: ip-adapter_sdxl_vit-h for SDXL (the paper), "
                    "ip-adapter_sd15 or ip-adapter-plus_sd15 for SD1.5.",
                ),
                io.Combo.Input(
                    "instantid_file",
                    options=[NO_FILE] + file_choices(INSTANTID_FOLDER, (INSTANTID_NAME,)),
                    default=INSTANTID_NAME,
                    tooltip="InstantID's ip-adapter.bin in models/instantid (SDXL only) for the face tokens; "
                    "none: image tokens only (the SD1.5 path).",
                ),
                io.String.Input(
                    "face_analysis",
                    default=FACE_PACK,
                    tooltip="insightface pack for the ArcFace embedding, in models/insightface/models/ "
                    "(antelopev2, as InstantID expects). Installed: "
                    + ", ".join(face_pack_choices()),
                ),
                io.String.Input(
                    "subject_word",
                    default="face",
                    tooltip="The prompt word whose value carries the face (the paper's \"A man with face, "
                    '..."); found by tokenising the prompt.',
                ),
                io.Float.Input(
                    "ip_scale_layout",
                    default=1.0,
                    min=0.0,
                    max=5.0,
                    step=0.05,
                    tooltip="Image-token scale in up_blocks.0.attentions.1 (SDXL output_blocks.1; SD1.5, whose "
                    "up_blocks.0 has no attention: up_blocks.1.attentions.1 = output_blocks.4). Paper: 1.0.",
                ),
                io.Float.Input(
                    "ip_scale_style",
                    default=0.4,
                    min=0.0,
                    max=5.0,
                    step=0.05,
                    tooltip="Image-token scale in up_blocks.0.attentions.0 (SDXL output_blocks.0; SD1.5 "
                    "output_blocks.3). Paper: 0.4.",
                ),
                io.Float.Input(
                    "ip_scale_other",
                    default=0.0,
                    min=0.0,
                    max=5.0,
                    step=0.05,
                    tooltip="Image-token scale in every other cross-attention. Paper: 0.",
                ),
                io.Float.Input(
                    "face_strength",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip="Face-token wrapping: 1 replaces the subject word's value by the face value in "
                    "every cross-attention (paper), 0 leaves the text alone (the refining pass).",
                ),
                io.ClipVision.Input(
                    "clip_vision",
                    optional=True,
                    tooltip="CLIP vision model for the image tokens (ViT-H for the usual IP-Adapters).",
                ),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="The person (1 = person): the image and face tokens see the segmented person on "
                    "grey, as the reference uses the cut-out source.",
                ),
            ],
            outputs=[
                io.Model.Output(
                    display_name="model", tooltip="The model with the VCM attention patches."
                ),
                io.Conditioning.Output(
                    display_name="positive", tooltip="The prompt, encoded by the CLIP."
                ),
                io.String.Output(
                    display_name="info",
                    tooltip="JSON: subject token, face found, tokens and scales used.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        clip,
        image,
        prompt,
        ipadapter_file,
        instantid_file,
        face_analysis,
        subject_word,
        ip_scale_layout,
        ip_scale_style,
        ip_scale_other,
        face_strength,
        clip_vision=None,
        mask=None,
    ) -> io.NodeOutput:
        family = model_family(model, "the visual-consistency module")
        if image.shape[0] != 1:
            raise ValueError(
                f"{image.shape[0]} source images: the VCM takes one photo of the person (Image From Batch)"
            )
        unet = model.model.diffusion_model
        layers = cross_attentions(unet)
        context_dim = next(
            m.attn2.to_k.weight.shape[1]
            for m in unet.modules()
            if getattr(m, "attn2", None) is not None
        )
        photo = image_batch_to_numpy(image)[0]
        if mask is not None:
            person = mask_batch_to_numpy(mask)[0]
            if person.shape != photo.shape[:2]:
                person = cv2.resize(
                    person, (photo.shape[1], photo.shape[0]), interpolation=cv2.INTER_LINEAR
                )
            photo = subject_lora.foreground_on(photo, person)
        info = {
            "model": family,
            "subject_word": subject_word,
            "ipadapter": None,
            "instantid": None,
            "image_tokens": 0,
            "face_tokens": 0,
            "face_found": None,
            "notes": [],
        }

        # image tokens (IP-Adapter), only where some scale is on
        dims = [d for _, d in layers]
        scales = vcm.block_scales(
            {
                i: sum(1 for (b, bi, _), _ in layers if b == "output" and bi == i)
                for i in range(len(unet.output_blocks))
            },
            unet.num_res_blocks[0] + 1,
            ip_scale_layout,
            ip_scale_style,
            ip_scale_other,
        )
        ip = None
        if ip_scale_layout or ip_scale_style or ip_scale_other:
            ip = load_adapter(IPADAPTER_FOLDER, ipadapter_file, face=False)
            vcm.check_fits(ip, dims, context_dim, ipadapter_file)
            pixels = numpy_to_image_batch([photo])
            img_tokens = image_tokens(clip_vision, ip, pixels, ipadapter_file)
            info.update(ipadapter=ipadapter_file, image_tokens=img_tokens[0].shape[1])
        else:
            img_tokens = None

        # face tokens (InstantID), wrapped at the subject word
        face = subject_pos = None
        if face_strength and instantid_file != NO_FILE:
            if family != "sdxl":
                raise ValueError(
                    f"InstantID ({instantid_file}) is made for SDXL; with an SD1.5 model set instantid_file "
                    "to none (OnePoseTrans on SD1.5 here uses the image tokens only)"
                )
            face = load_adapter(INSTANTID_FOLDER, instantid_file, face=True)
            vcm.check_fits(face, dims, context_dim, instantid_file)
            subject_pos = subject_position(clip, prompt, subject_word.strip())
            emb = first_face_embedding(face_pack_path(face_analysis.strip()), photo)
            info.update(
                instantid=instantid_file, face_found=emb is not None, subject_token=subject_pos
            )
            if emb is None:
                log.warning(
                    "PoseLab VCM: no face found in the source photo; the face tokens are left out"
                )
                info["notes"].append(
                    "no face found in the source photo: face tokens left out (image tokens only)"
                )
                face = None
            else:
                face_tokens = face.tokens(torch.from_numpy(emb)[None])
                info["face_tokens"] = face_tokens[0].shape[1]
        tokens = vcm.VCMTokens(
            image=img_tokens,
            face=face_tokens if face is not None else None,
            subject_pos=subject_pos,
        )

        patched = model.clone()
        replace = (
            patched.model_options.get("transformer_options", {})
            .get("patches_replace", {})
            .get("attn2", {})
        )
        count = 0
        # keyed as IPAdapter_plus keys its patches (SDXL: block, index, transformer; SD1.5, one
        # transformer per block: block, index), so either pack finds the other's patch to stack on
        short_keys = family == "sd15" and all(k[2] == 0 for k, _ in layers)
        for i, (key, _) in enumerate(layers):
            scale = scales.get(key[:2], ip_scale_other) if img_tokens is not None else 0.0
            layer = vcm.LayerVCM(
                ip_scale=scale,
                to_k_ip=ip.to_k[i] if scale else None,
                to_v_ip=ip.to_v[i] if scale else None,
                face_strength=face_strength,
                to_v_face=face.to_v[i] if face is not None else None,
            )
            if layer.active(tokens):
                previous = replace.get(key, replace.get(key[:2]))
                patched.set_model_attn2_replace(
                    VCMPatch(layer, tokens, previous), *(key[:2] if short_keys else key)
                )
                count += 1
        info.update(
            patched_layers=count,
            cross_attentions=len(layers),
            ip_scales={f"output_blocks.{b[1]}": s for b, s in scales.items()}
            | {"other": ip_scale_other},
            face_strength=face_strength,
        )
        positive = clip.encode_from_tokens_scheduled(clip.tokenize(prompt))
        text = json.dumps(info)
        return io.NodeOutput(patched, positive, text, ui=ui.PreviewText(text))


NODES = [TrainSubjectLoRA, ApplySubjectLoRA, VisualConsistency]
