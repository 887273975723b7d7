"""InstructPix2Pix pose edit (+LoRA, mask, ControlNet pose hint) and its LoRA trainer.

The edit runs on ComfyUI's own MODEL/CLIP/VAE objects with core's dual-CFG guider and samplers
unchanged (its output is pixel-identical to the core InstructPixToPixConditioning + DualCFGGuider
graph). The trainer is the shared LoRA loop (nodes/training.py) on (source, instruction, target)
pairs. The pure tensor code lives in models/editing/ip2p.py and pairs.py.
"""

from __future__ import annotations

import logging
import os

import torch

import comfy.model_base
import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.sd
import comfy.utils
import folder_paths
import latent_preview
import node_helpers
from comfy_api.latest import io, ui
from comfy_extras.nodes_custom_sampler import Guider_DualCFG

from ..models.common import lora_training as lt
from ..models.common.files import read_rgb
from ..models.common.images import numpy_to_image_batch, paired_batch_size, pick
from ..models.editing import ip2p
from ..models.editing.pairs import read_pairs_folder
from ..models.pose.keypoints import parse_pose_keypoint
from ..models.pose.render import render_openpose
from .common import (
    PoseKeypoint,
    Progress,
    apply_control,
    encode_embedding,
    encode_embeddings,
    user_folder,
    vae_encode,
)
from .training import (
    DEFAULT_TARGETS,
    NO_LORA,
    TrainingRun,
    apply_lora,
    free_lora_path,
    lora_choices,
    lora_stem,
    train_lora_on_data,
    training_report,
)

log = logging.getLogger("poselab")


CATEGORY = "PoseLab/editing"


def encode_text(clip, text: str):
    if clip is None:
        raise ValueError(
            "the CLIP input is None: the checkpoint has no text encoder; load one with a CLIP loader"
        )
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))


def with_values(conditioning, values: dict):
    return node_helpers.conditioning_set_values(conditioning, values)


def render_pose_hint(pose, batch: int, height: int, width: int) -> torch.Tensor:
    """POSE_KEYPOINT frames rendered as OpenPose ControlNet hints, IMAGE ``(batch, H, W, 3)``."""
    frames = parse_pose_keypoint(pose)
    if not frames:
        raise ValueError(
            "the target POSE_KEYPOINT holds no frames; connect a pose detector or editor output"
        )
    if paired_batch_size({"image": batch, "target_pose": len(frames)}) != batch:
        raise ValueError(
            f"{len(frames)} target poses for {batch} image(s): give one pose, or one per image"
        )
    hints = [render_openpose(pick(frames, i), width=width, height=height) for i in range(batch)]
    return numpy_to_image_batch(hints)


def sample_with_guider(
    model, guider, latent_image, seed, sampler_name, scheduler, steps, denoise_mask=None
):
    """KSampler's code path with a custom guider: ComfyUI noise, sigmas, sampler, preview/progress
    callback (its progress hook is also where ComfyUI raises on cancel)."""
    latent_image = comfy.sample.fix_empty_latent_channels(model, latent_image)
    noise = comfy.sample.prepare_noise(latent_image, seed)
    sigmas = comfy.samplers.calculate_sigmas(
        model.get_model_object("model_sampling"), scheduler, steps
    ).cpu()
    sampler = comfy.samplers.sampler_object(sampler_name)
    callback = latent_preview.prepare_callback(model, steps)
    samples = guider.sample(
        noise,
        latent_image,
        sampler,
        sigmas,
        denoise_mask=denoise_mask,
        callback=callback,
        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED,
        seed=seed,
    )
    return samples.to(comfy.model_management.intermediate_device())


class IP2PEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PoseLabIP2PEdit",
            display_name="IP2P Pose Edit (PoseLab)",
            category=CATEGORY,
            description="Edit an image with an instruction using an InstructPix2Pix checkpoint, optionally "
            "with a pose-edit LoRA, a mask that limits the edit, and a ControlNet pose hint.",
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="An InstructPix2Pix checkpoint (8-channel UNet) loaded by a checkpoint loader.",
                ),
                io.Clip.Input("clip", tooltip="The checkpoint's text encoder."),
                io.Vae.Input(
                    "vae",
                    tooltip="The checkpoint's VAE; encodes the input image and decodes the result.",
                ),
                io.Image.Input("image", tooltip="The image(s) to edit."),
                io.String.Input(
                    "instruction",
                    multiline=True,
                    default="make the person raise both arms",
                    tooltip="The edit, as an instruction.",
                ),
                io.String.Input(
                    "negative",
                    multiline=True,
                    default="blurry, low quality, distorted, deformed, artifacts",
                    tooltip="What to avoid (also the 'no text' branch of the text guidance).",
                ),
                io.Float.Input(
                    "text_guidance",
                    default=7.5,
                    min=0.0,
                    max=30.0,
                    step=0.1,
                    round=0.01,
                    tooltip="How strongly to follow the instruction (diffusers guidance_scale).",
                ),
                io.Float.Input(
                    "image_guidance",
                    default=1.5,
                    min=0.0,
                    max=10.0,
                    step=0.05,
                    round=0.01,
                    tooltip="How strongly to stay close to the input image (diffusers image_guidance_scale).",
                ),
                io.Combo.Input(
                    "sampler_name",
                    options=comfy.samplers.KSampler.SAMPLERS,
                    default="dpmpp_2m",
                    tooltip="ComfyUI sampler; DPM-Solver++(2M) by default.",
                ),
                io.Combo.Input(
                    "scheduler",
                    options=comfy.samplers.KSampler.SCHEDULERS,
                    default="karras",
                    tooltip="ComfyUI noise schedule.",
                ),
                io.Int.Input("steps", default=20, min=1, max=200, tooltip="Sampling steps."),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Noise seed.",
                ),
                io.Combo.Input(
                    "lora_name",
                    options=lora_choices(),
                    default=NO_LORA,
                    optional=True,
                    tooltip="Optional pose-edit LoRA from models/loras (e.g. one trained with PoseLab Train IP2P LoRA).",
                ),
                io.Float.Input(
                    "lora_strength",
                    default=1.0,
                    min=-10.0,
                    max=10.0,
                    step=0.05,
                    optional=True,
                    tooltip="LoRA strength for the UNet and the text encoder.",
                ),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="Edit only where the mask is 1; elsewhere the input pixels are returned unchanged.",
                ),
                io.ControlNet.Input(
                    "control_net",
                    optional=True,
                    tooltip="An SD1.5 OpenPose ControlNet; used with target_pose.",
                ),
                PoseKeypoint.Input(
                    "target_pose",
                    optional=True,
                    tooltip="Target pose, rendered as an OpenPose hint for the ControlNet.",
                ),
                io.Float.Input(
                    "control_strength",
                    default=1.0,
                    min=0.0,
                    max=10.0,
                    step=0.01,
                    optional=True,
                    tooltip="ControlNet strength.",
                ),
            ],
            outputs=[io.Image.Output(display_name="image", tooltip="The edited image(s).")],
        )

    @classmethod
    def execute(
        cls,
        model,
        clip,
        vae,
        image,
        instruction,
        negative,
        text_guidance,
        image_guidance,
        sampler_name,
        scheduler,
        steps,
        seed,
        lora_name=NO_LORA,
        lora_strength=1.0,
        mask=None,
        control_net=None,
        target_pose=None,
        control_strength=1.0,
    ) -> io.NodeOutput:
        require_ip2p(model)
        if target_pose is not None and control_net is None:
            log.warning(
                "PoseLab IP2P edit: a target pose is connected but no ControlNet; the pose is ignored"
            )
        model, clip = apply_lora(model, clip, lora_name, lora_strength)
        pixels = ip2p.crop_to_multiple_of_8(image[..., :3])
        batch, height, width = pixels.shape[:3]
        source_latent = vae.encode(pixels)

        text = encode_text(clip, instruction)
        neg = encode_text(clip, negative)
        positive = with_values(text, {"concat_latent_image": source_latent})
        middle = with_values(neg, {"concat_latent_image": source_latent})
        # DualCFG's 'negative' has no image: IP2P fills the missing concat latent with zeros
        conds = [positive, middle, neg]
        if control_net is not None and target_pose is not None:
            hint = render_pose_hint(target_pose, batch, height, width)
            conds = apply_control(conds, control_net, hint, control_strength, vae)

        guider = Guider_DualCFG(model)
        guider.set_conds(*conds)
        guider.set_cfg(
            text_guidance, image_guidance
        )  # cfg1 = text, cfg2 = image (core DualCFGGuider)

        pixel_mask = None
        if mask is None:
            latent_image, denoise_mask = torch.zeros_like(source_latent), None
        else:
            # ComfyUI's inpaint path: at every step the input latent, re-noised to the current
            # sigma, replaces the sample outside the mask
            pixel_mask = ip2p.prepare_edit_mask(mask, batch, height, width)
            latent_image, denoise_mask = source_latent, pixel_mask
        samples = sample_with_guider(
            model, guider, latent_image, seed, sampler_name, scheduler, steps, denoise_mask
        )
        out = vae.decode(samples)[..., :3].to(pixels.device, pixels.dtype)
        if pixel_mask is not None:
            out = ip2p.composite_outside_mask(out, pixels, pixel_mask)
        return io.NodeOutput(out)


# ---------------------------------------------------------------------------- LoRA training
def require_ip2p(model) -> None:
    if not isinstance(model.model, comfy.model_base.IP2P):
        raise ValueError(
            f"the model is a {type(model.model).__name__}, not an InstructPix2Pix model: load an InstructPix2Pix "
            "checkpoint (e.g. instruct-pix2pix-00-22000.safetensors) with Load Checkpoint"
        )


def encode_pairs(model, clip, vae, pairs, chunk: int = 8) -> lt.TrainData:
    """VAE/CLIP-encode ``(source, target, instruction)`` uint8 pairs once, before training."""
    src = numpy_to_image_batch([p[0] for p in pairs])
    tgt = numpy_to_image_batch([p[1] for p in pairs])
    return lt.TrainData(
        target_latents=model.model.latent_format.process_in(
            vae_encode(vae, tgt, chunk)
        ),  # the sampler's scale
        source_latents=vae_encode(
            vae, src, chunk
        ),  # IP2P concatenates the raw latent (process_ip2p_image_in is identity for SD1.5)
        text=encode_embeddings(clip, [p[2] for p in pairs]),
        null_text=encode_embedding(clip, ""),
    )


def train_lora_on_model(
    model,
    clip,
    vae,
    pairs,
    rank: int,
    alpha: float,
    targets,
    cfg: lt.TrainConfig,
    out_path,
    progress=None,
    keep_checkpoints: int = 2,
    gradient_checkpointing: bool = False,
    run_settings: dict | None = None,
    resume: bool = False,
) -> tuple[lt.TrainResult, dict]:
    """Train a LoRA on a ComfyUI IP2P MODEL; write it (atomically) to ``out_path``. With
    ``run_settings`` the run is resumable (its state is saved when it is cancelled)."""
    require_ip2p(model)
    data = encode_pairs(model, clip, vae, pairs)
    run = None
    if run_settings is not None:
        # the data is part of what a resumed run must find again: a checksum of its latents
        run_settings = dict(
            run_settings, data_checksum=f"{float(data.target_latents.double().sum()):.6e}"
        )
        run = TrainingRun(run_settings["lora_name"], run_settings)
    meta = {"poselab": "ip2p pose-edit LoRA", "pairs": len(pairs)}
    return train_lora_on_data(
        model,
        data,
        rank,
        alpha,
        targets,
        cfg,
        out_path,
        meta,
        progress,
        keep_checkpoints=keep_checkpoints,
        gradient_checkpointing=gradient_checkpointing,
        run=run,
        resume=resume,
    )


def make_synthetic_pairs(count: int, size: int, seed: int):
    from ..models.pose import synthetic

    return [
        (p.source, p.target, p.instruction)
        for p in synthetic.make_pairs(count, seed=seed, size=(size, size))
    ]


def folder_pairs(folder: str, size: int):
    records = read_pairs_folder(user_folder(folder, "data_folder", roots=("input", "output")))
    return [
        (read_rgb(r.source, (size, size)), read_rgb(r.target, (size, size)), r.instruction)
        for r in records
    ]


class TrainIP2PLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PoseLabTrainIP2PLoRA",
            is_experimental=True,  # as core marks its own trainer: long-running, settings may change
            display_name="Train IP2P Pose LoRA (PoseLab)",
            category=CATEGORY,
            description="Train a LoRA for an InstructPix2Pix checkpoint on before/after/instruction pairs and save "
            "it to models/loras in the format core Load LoRA reads.",
            is_output_node=True,
            inputs=[
                io.Model.Input("model", tooltip="The InstructPix2Pix checkpoint to adapt."),
                io.Clip.Input("clip", tooltip="Its text encoder (encodes the instructions)."),
                io.Vae.Input("vae", tooltip="Its VAE (encodes the before/after images)."),
                io.String.Input(
                    "data_folder",
                    default="",
                    tooltip="Folder with metadata.jsonl rows {original_image, edit_prompt, edited_image} "
                    "inside ComfyUI's input or output folder (relative to it). Empty: synthetic pairs.",
                ),
                io.Int.Input(
                    "synthetic_pairs",
                    default=64,
                    min=1,
                    max=100000,
                    tooltip="Number of procedural same-person pose pairs used when data_folder is empty.",
                ),
                io.Int.Input(
                    "resolution",
                    default=256,
                    min=64,
                    max=2048,
                    step=8,
                    tooltip="Training images are resized to this square size.",
                ),
                io.Int.Input("rank", default=8, min=1, max=256, tooltip="LoRA rank."),
                io.Float.Input(
                    "alpha",
                    default=8.0,
                    min=0.01,
                    max=1024.0,
                    step=0.5,
                    tooltip="LoRA alpha (the update is scaled by alpha / rank).",
                ),
                io.String.Input(
                    "target_modules",
                    default=",".join(DEFAULT_TARGETS),
                    tooltip="Comma-separated Linear layer names to adapt (suffix match).",
                ),
                io.Int.Input("steps", default=200, min=1, max=1000000, tooltip="Optimiser steps."),
                io.Int.Input(
                    "batch_size", default=4, min=1, max=256, tooltip="Pairs per micro-batch."
                ),
                io.Int.Input(
                    "grad_accum",
                    default=4,
                    min=1,
                    max=256,
                    tooltip="Micro-batches accumulated per optimiser step.",
                ),
                io.Float.Input(
                    "learning_rate",
                    default=1e-4,
                    min=1e-7,
                    max=1.0,
                    step=1e-5,
                    round=1e-7,
                    tooltip="AdamW learning rate.",
                ),
                io.Float.Input(
                    "text_dropout",
                    default=0.05,
                    min=0.0,
                    max=0.95,
                    step=0.01,
                    tooltip="Probability of training with the empty prompt (enables text guidance).",
                ),
                io.Float.Input(
                    "image_dropout",
                    default=0.05,
                    min=0.0,
                    max=0.95,
                    step=0.01,
                    tooltip="Probability of training without the source image (enables image guidance).",
                ),
                io.Int.Input(
                    "save_every",
                    default=0,
                    min=0,
                    max=1000000,
                    tooltip="Also write a checkpoint every N steps (0: only the final LoRA).",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFF,
                    tooltip="Seed for data order, noise and init.",
                ),
                io.String.Input(
                    "lora_name",
                    default="poselab_ip2p_pose",
                    tooltip="File name stem in models/loras; a counter is added if it exists.",
                ),
                io.Int.Input(
                    "keep_checkpoints",
                    default=2,
                    min=0,
                    max=1000,
                    optional=True,
                    tooltip="How many of the newest step checkpoints (<name>_stepNNNNNN) to keep; older ones "
                    "are deleted. The final LoRA is always kept.",
                ),
                io.Boolean.Input(
                    "gradient_checkpointing",
                    default=False,
                    optional=True,
                    tooltip="Recompute the UNet's activations in the backward pass: much less memory, "
                    "about a third more time.",
                ),
                io.Boolean.Input(
                    "resume",
                    default=True,
                    optional=True,
                    tooltip="If a run of this lora_name was cancelled, continue it from where it stopped "
                    "(same settings; steps is the total). Off: start over.",
                ),
            ],
            outputs=[
                io.Model.Output(
                    display_name="model", tooltip="The input model with the trained LoRA applied."
                ),
                io.String.Output(
                    display_name="lora_file", tooltip="The LoRA file name in models/loras."
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
        data_folder,
        synthetic_pairs,
        resolution,
        rank,
        alpha,
        target_modules,
        steps,
        batch_size,
        grad_accum,
        learning_rate,
        text_dropout,
        image_dropout,
        save_every,
        seed,
        lora_name,
        keep_checkpoints=2,
        gradient_checkpointing=False,
        resume=True,
    ) -> io.NodeOutput:
        require_ip2p(model)
        stem = lora_stem(lora_name, "poselab_ip2p_pose")
        size = (resolution // 8) * 8
        pairs = (
            folder_pairs(data_folder, size)
            if data_folder.strip()
            else make_synthetic_pairs(synthetic_pairs, size, seed)
        )
        cfg = lt.TrainConfig(
            steps=steps,
            batch_size=batch_size,
            grad_accum=grad_accum,
            lr=learning_rate,
            text_dropout=text_dropout,
            image_dropout=image_dropout,
            seed=seed,
            save_every=save_every,
            eval_samples=max(1, 16 // len(pairs)),
        )
        targets = [t.strip() for t in target_modules.split(",") if t.strip()]
        settings = {
            "lora_name": stem,
            "data_folder": data_folder.strip(),
            "pairs": len(pairs),
            "resolution": size,
            "rank": rank,
            "alpha": alpha,
            "targets": targets,
            "batch_size": batch_size,
            "grad_accum": grad_accum,
            "learning_rate": learning_rate,
            "text_dropout": text_dropout,
            "image_dropout": image_dropout,
            "seed": seed,
        }
        out_path = resumable_lora_path(stem, settings, resume)
        result, sd = train_lora_on_model(
            model,
            clip,
            vae,
            pairs,
            rank,
            alpha,
            targets,
            cfg,
            out_path,
            Progress(steps),
            keep_checkpoints,
            gradient_checkpointing,
            settings,
            resume,
        )
        report = training_report(result, lora_file=out_path.name, pairs=len(pairs))
        patched, _ = comfy.sd.load_lora_for_models(model, None, sd, 1.0, 0.0)
        return io.NodeOutput(patched, out_path.name, report, ui=ui.PreviewText(report))


def resumable_lora_path(stem: str, settings: dict, resume: bool):
    """Where the LoRA of this run goes: the unfinished run's own file when resuming it, else a free name."""
    run = TrainingRun(stem, settings)
    if run.exists():
        name = run.lora_file() if resume else None
        if name and not os.path.exists(
            os.path.join(folder_paths.get_folder_paths("loras")[0], name)
        ):
            return free_lora_path(os.path.splitext(name)[0])
        if not resume:
            log.info("PoseLab: resume is off; discarding the unfinished run in %s", run.dir)
            run.clear()
    return free_lora_path(stem)


NODES = [IP2PEdit, TrainIP2PLoRA]
