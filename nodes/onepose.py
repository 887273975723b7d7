"""OnePoseTrans stage: the one-shot subject LoRA trained on the source photo at test time.

The rest of OnePoseTrans's pipeline is composed from nodes that exist (workflows/onepose_repose):
Person Mask (segmentation), Fill Background (inpainting), Extract Pose / Pose From Library, an
OpenPose ControlNet through core Apply ControlNet, Person Mask on the result and Composite. Its
visual-consistency module (IP-Adapter + InstantID face tokens) and LayerDiffuse are not here.
"""

from __future__ import annotations


import cv2
import numpy as np
import torch

import comfy.model_base
import comfy.sd
import folder_paths
from comfy_api.latest import io, ui

from ..models.common.images import image_batch_to_numpy, mask_batch_to_numpy
from ..models.common import lora_training as lt
from ..models.onepose import subject_lora
from .common import Progress, require_text_to_image_unet, vae_encode
from .training import free_lora_path, load_lora_file, lora_stem, train_lora_on_data, training_report

CATEGORY = "PoseLab/onepose"
BLOCK_WEIGHTS = ("oneposetrans (0.2, layout block 1.0)", "uniform")
TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # all self- and cross-attention projections, as the reference


def model_family(model, what: str) -> str:
    """"sdxl" or "sd15" for the text-to-image UNets OnePoseTrans runs on, else a clear error."""
    base = model.model
    if isinstance(base, comfy.model_base.SDXL) and getattr(base.diffusion_model, "in_channels", 4) == 4:
        return "sdxl"
    require_text_to_image_unet(model, what + " (or SDXL)")
    return "sd15"


def layout_block(model) -> str:
    """The model's OnePoseTrans layout attention block (module name prefix)."""
    return subject_lora.LAYOUT_BLOCK["sdxl" if isinstance(model.model, comfy.model_base.SDXL) else "sd15"]


def encode_prompt(clip, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Cross-attention context and pooled output of ``text`` (SDXL: both encoders' penultimate
    layers side by side, pooled from the second), float32 on the CPU."""
    if clip is None:
        raise ValueError("the CLIP input is None: the checkpoint has no text encoder; load one with a CLIP loader")
    cond, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
    return cond.float().cpu(), None if pooled is None else pooled.float().cpu()


def subject_data(model, clip, vae, crops: np.ndarray, description: str, photo_size: tuple[int, int]) -> lt.TrainData:
    """Encoded training views: latents of the crops, the description's context (and for SDXL the
    vector condition: pooled text + size ids, the photo's size as original and target size with
    no crop, as the reference's add-time ids; ComfyUI's pooled output is the projected one that
    sampling uses, so training and generation see the same vector)."""
    n = len(crops)
    latents = model.model.latent_format.process_in(vae_encode(vae, torch.from_numpy(crops.astype(np.float32) / 255.0)))
    text, pooled = encode_prompt(clip, description)
    null_text, null_pooled = encode_prompt(clip, "")
    y = null_y = None
    if isinstance(model.model, comfy.model_base.SDXL):
        h, w = photo_size
        size = dict(width=w, height=h, crop_w=0, crop_h=0, target_width=w, target_height=h)
        y = model.model.encode_adm(pooled_output=pooled, device="cpu", **size).float().expand(n, -1).contiguous()
        null_y = model.model.encode_adm(pooled_output=null_pooled, device="cpu", **size).float()
    return lt.TrainData(target_latents=latents, text=text.expand(n, -1, -1).contiguous(), null_text=null_text,
                        y=y, null_y=null_y)


def with_block_weights(model, lora_sd: dict, base: float, layout: float):
    """``model`` patched with the LoRA at ``layout`` in the layout block and ``base`` elsewhere."""
    weighted = subject_lora.block_weighted(lora_sd, base, layout_block(model), layout)
    return comfy.sd.load_lora_for_models(model, None, weighted, 1.0, 0.0)[0]


class TrainSubjectLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PoseLabTrainSubjectLoRA",
            display_name="Train Subject LoRA (PoseLab)",
            category=CATEGORY,
            description="OnePoseTrans's test-time LoRA: fine-tunes the checkpoint's attention on one photo of the "
                        "person (random square crops of the segmented person, their description as the prompt), so "
                        "a pose-controlled generation keeps their look. Saves the LoRA to models/loras/ and returns "
                        "the model with it applied at OnePoseTrans's block weights.",
            is_output_node=True,
            inputs=[
                io.Model.Input("model", tooltip="An SD1.5-family or SDXL checkpoint (kept frozen; only the LoRA trains). "
                                                "OnePoseTrans uses RealVisXL V4.0 (SDXL)."),
                io.Clip.Input("clip", tooltip="Its text encoder."),
                io.Vae.Input("vae", tooltip="Its VAE."),
                io.Image.Input("image", tooltip="One photo of the person."),
                io.String.Input("description", multiline=True,
                                default="A woman with face, a white shirt, blue jeans",
                                tooltip="The person in OnePoseTrans's form \"A man/woman with face, <garments>\"; "
                                        "use the same text in the generation prompt."),
                io.Int.Input("steps", default=60, min=1, max=100000, tooltip="Optimiser steps (OnePoseTrans: 60)."),
                io.Int.Input("rank", default=32, min=1, max=256, tooltip="LoRA rank (OnePoseTrans: 32, alpha 32)."),
                io.Float.Input("learning_rate", default=1e-3, min=1e-7, max=1.0, step=1e-5, round=1e-7,
                               tooltip="AdamW, constant (OnePoseTrans: 1e-3)."),
                io.Int.Input("batch_size", default=2, min=1, max=64, tooltip="Crops per step (OnePoseTrans: 2)."),
                io.Int.Input("resolution", default=512, min=64, max=2048, step=8, tooltip="Crop size."),
                io.Int.Input("views", default=16, min=1, max=1024,
                             tooltip="How many random crops are drawn (and VAE-encoded once) to sample from."),
                io.Combo.Input("block_weights", options=list(BLOCK_WEIGHTS), default=BLOCK_WEIGHTS[0],
                               tooltip="How the returned model applies the LoRA: OnePoseTrans's 0.2 everywhere and 1.0 "
                                       "in the layout attention block, or one strength everywhere. The saved file is "
                                       "the plain LoRA either way."),
                io.Float.Input("strength", default=1.0, min=-10.0, max=10.0, step=0.05,
                               tooltip="Multiplies the block weights."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF),
                io.String.Input("lora_name", default="poselab_subject",
                                tooltip="File name stem in models/loras; a counter is added if it exists."),
                io.Mask.Input("mask", optional=True,
                              tooltip="The person (1 = person), e.g. from Person Mask; the rest becomes flat grey, as "
                                      "OnePoseTrans trains on the segmented foreground. Without it the whole photo is used."),
                io.Boolean.Input("gradient_checkpointing", default=False, optional=True,
                                 tooltip="Recompute the UNet's activations in the backward pass: much less memory "
                                         "(SDXL at 512 px on small GPUs), about a third more time."),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="The model with the subject LoRA applied (block_weights)."),
                io.Model.Output(display_name="refine_model",
                                tooltip="The model with the LoRA in the layout block only (OnePoseTrans's refining pass: "
                                        "img2img at denoise 0.65 without the ControlNet)."),
                io.String.Output(display_name="lora_file", tooltip="The LoRA in models/loras (core Load LoRA reads it)."),
                io.String.Output(display_name="report", tooltip="JSON: losses and the fixed-set loss before/after."),
            ],
        )

    @classmethod
    def execute(cls, model, clip, vae, image, description, steps, rank, learning_rate, batch_size, resolution, views,
                block_weights, strength, seed, lora_name, mask=None, gradient_checkpointing=False) -> io.NodeOutput:
        model_family(model, "the subject LoRA trainer")
        if not description.strip():
            raise ValueError("the description is empty: describe the person, e.g. \"A man with face, a red jacket\"")
        if image.shape[0] != 1:
            raise ValueError(f"{image.shape[0]} images: the subject LoRA is trained on one photo; pick one (Image From Batch)")
        stem = lora_stem(lora_name, "poselab_subject")
        photo = image_batch_to_numpy(image)[0]
        person = None
        if mask is not None:
            person = mask_batch_to_numpy(mask)[0]
            if person.shape != photo.shape[:2]:
                person = cv2.resize(person, (photo.shape[1], photo.shape[0]), interpolation=cv2.INTER_LINEAR)
        size = resolution // 8 * 8
        crops = subject_lora.random_square_crops(subject_lora.foreground_on(photo, person), size, views, seed)
        data = subject_data(model, clip, vae, crops, description, photo.shape[:2])
        cfg = lt.TrainConfig(steps=steps, batch_size=batch_size, grad_accum=1, lr=learning_rate, weight_decay=1e-2,
                             text_dropout=0.0, image_dropout=0.0, seed=seed, eval_samples=max(1, 16 // len(crops)))
        out_path = free_lora_path(stem)
        result, sd = train_lora_on_data(model, data, rank, float(rank), list(TARGETS), cfg, out_path,
                                        {"poselab": "OnePoseTrans subject LoRA", "description": description},
                                        Progress(steps), gradient_checkpointing=gradient_checkpointing)
        base = 0.2 * strength if block_weights == BLOCK_WEIGHTS[0] else strength
        patched = with_block_weights(model, sd, base, strength)
        refine_model = with_block_weights(model, sd, 0.0, strength)
        report = training_report(result, lora_file=out_path.name, views=len(crops), block_weights=block_weights)
        return io.NodeOutput(patched, refine_model, out_path.name, report, ui=ui.PreviewText(report))


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
                io.Combo.Input("lora_name", options=folder_paths.get_filename_list("loras"),
                               tooltip="E.g. the file Train Subject LoRA (PoseLab) wrote."),
                io.Float.Input("base_strength", default=0.0, min=-10.0, max=10.0, step=0.05,
                               tooltip="Strength everywhere but the layout block (OnePoseTrans: 0.2 to generate, 0 to refine)."),
                io.Float.Input("layout_strength", default=1.0, min=-10.0, max=10.0, step=0.05,
                               tooltip="Strength in the layout attention block (SDXL output_blocks.1.1, SD1.5 output_blocks.4.1)."),
            ],
            outputs=[io.Model.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, model, lora_name, base_strength, layout_strength) -> io.NodeOutput:
        return io.NodeOutput(with_block_weights(model, load_lora_file(lora_name), base_strength, layout_strength))


NODES = [TrainSubjectLoRA, ApplySubjectLoRA]
