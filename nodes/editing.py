"""Diffusion editing nodes: InstructPix2Pix pose edit (+LoRA, mask, ControlNet pose hint).

Everything runs on ComfyUI's own MODEL/CLIP/VAE objects, samplers, guiders, model management
and LoRA patching; the pure tensor code lives in models/editing/.
"""

from __future__ import annotations

import logging

import torch

import comfy.model_base
import comfy.sample
import comfy.samplers
import comfy.sd
import comfy.utils
import folder_paths
import latent_preview
import node_helpers
from comfy_api.latest import io
from comfy_extras.nodes_custom_sampler import Guider_DualCFG

from ..models.common.images import numpy_to_image_batch, paired_batch_size
from ..models.editing import ip2p
from ..models.pose.keypoints import parse_pose_keypoint
from ..models.pose.render import render_openpose
from .common import PoseKeypoint

log = logging.getLogger("poselab")

NO_LORA = "none"
CATEGORY = "PoseLab/editing"


def lora_choices() -> list[str]:
    return [NO_LORA] + folder_paths.get_filename_list("loras")


def apply_lora(model, clip, lora_name: str, strength: float):
    """Patch ``model`` (and ``clip``) with a LoRA file from models/loras, the way core LoraLoader does."""
    if not lora_name or lora_name == NO_LORA or strength == 0:
        return model, clip
    path = folder_paths.get_full_path("loras", lora_name)
    if path is None:
        raise ValueError(f"LoRA '{lora_name}' not found: put it in {' or '.join(folder_paths.get_folder_paths('loras'))}")
    lora = comfy.utils.load_torch_file(path, safe_load=True)
    return comfy.sd.load_lora_for_models(model, clip, lora, strength, strength)


def encode_text(clip, text: str):
    if clip is None:
        raise ValueError("the CLIP input is None: the checkpoint has no text encoder; load one with a CLIP loader")
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))


def with_values(conditioning, values: dict):
    return node_helpers.conditioning_set_values(conditioning, values)


def render_pose_hint(pose, batch: int, height: int, width: int) -> torch.Tensor:
    """POSE_KEYPOINT frames rendered as OpenPose ControlNet hints, IMAGE ``(batch, H, W, 3)``."""
    frames = parse_pose_keypoint(pose)
    if not frames:
        raise ValueError("the target POSE_KEYPOINT holds no frames; connect a pose detector or editor output")
    if paired_batch_size({"image": batch, "target_pose": len(frames)}) != batch:
        raise ValueError(f"{len(frames)} target poses for {batch} image(s): give one pose, or one per image")
    hints = [render_openpose(frames[i % len(frames)], width=width, height=height) for i in range(batch)]
    return numpy_to_image_batch(hints)


def apply_control(conds: list, control_net, hint: torch.Tensor, strength: float, vae):
    """Attach one ControlNet hint to each conditioning, as core ControlNetApplyAdvanced does."""
    c_net = control_net.copy().set_cond_hint(hint.movedim(-1, 1), strength, (0.0, 1.0), vae=vae)
    out = []
    for conditioning in conds:
        c = []
        for t in conditioning:
            d = t[1].copy()
            prev = d.get("control", None)
            net = c_net.copy() if prev is not None else c_net
            if prev is not None:
                net.set_previous_controlnet(prev)
            d["control"] = net
            d["control_apply_to_uncond"] = False
            c.append([t[0], d])
        out.append(c)
    return out


def sample_with_guider(model, guider, latent_image, seed, sampler_name, scheduler, steps, denoise_mask=None):
    """KSampler's code path with a custom guider: ComfyUI noise, sigmas, sampler, preview/progress
    callback (its progress hook is also where ComfyUI raises on cancel)."""
    latent_image = comfy.sample.fix_empty_latent_channels(model, latent_image)
    noise = comfy.sample.prepare_noise(latent_image, seed)
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps).cpu()
    sampler = comfy.samplers.sampler_object(sampler_name)
    callback = latent_preview.prepare_callback(model, steps)
    samples = guider.sample(noise, latent_image, sampler, sigmas, denoise_mask=denoise_mask, callback=callback,
                            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
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
                io.Model.Input("model", tooltip="An InstructPix2Pix checkpoint (8-channel UNet) loaded by a checkpoint loader."),
                io.Clip.Input("clip", tooltip="The checkpoint's text encoder."),
                io.Vae.Input("vae", tooltip="The checkpoint's VAE; encodes the input image and decodes the result."),
                io.Image.Input("image", tooltip="The image(s) to edit."),
                io.String.Input("instruction", multiline=True, default="make the person raise both arms",
                                tooltip="The edit, as an instruction."),
                io.String.Input("negative", multiline=True, default="blurry, low quality, distorted, deformed, artifacts",
                                tooltip="What to avoid (also the 'no text' branch of the text guidance)."),
                io.Float.Input("text_guidance", default=7.5, min=0.0, max=30.0, step=0.1, round=0.01,
                               tooltip="How strongly to follow the instruction (diffusers guidance_scale)."),
                io.Float.Input("image_guidance", default=1.5, min=0.0, max=10.0, step=0.05, round=0.01,
                               tooltip="How strongly to stay close to the input image (diffusers image_guidance_scale)."),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="dpmpp_2m",
                               tooltip="ComfyUI sampler; DPM-Solver++(2M) by default."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="karras",
                               tooltip="ComfyUI noise schedule."),
                io.Int.Input("steps", default=20, min=1, max=200, tooltip="Sampling steps."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed."),
                io.Combo.Input("lora_name", options=lora_choices(), default=NO_LORA, optional=True,
                               tooltip="Optional pose-edit LoRA from models/loras (e.g. one trained with PoseLab Train IP2P LoRA)."),
                io.Float.Input("lora_strength", default=1.0, min=-10.0, max=10.0, step=0.05, optional=True,
                               tooltip="LoRA strength for the UNet and the text encoder."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Edit only where the mask is 1; elsewhere the input pixels are returned unchanged."),
                io.ControlNet.Input("control_net", optional=True,
                                    tooltip="An SD1.5 OpenPose ControlNet; used with target_pose."),
                PoseKeypoint.Input("target_pose", optional=True,
                                   tooltip="Target pose, rendered as an OpenPose hint for the ControlNet."),
                io.Float.Input("control_strength", default=1.0, min=0.0, max=10.0, step=0.01, optional=True,
                               tooltip="ControlNet strength."),
            ],
            outputs=[io.Image.Output(display_name="image", tooltip="The edited image(s).")],
        )

    @classmethod
    def execute(cls, model, clip, vae, image, instruction, negative, text_guidance, image_guidance, sampler_name,
                scheduler, steps, seed, lora_name=NO_LORA, lora_strength=1.0, mask=None, control_net=None,
                target_pose=None, control_strength=1.0) -> io.NodeOutput:
        if not isinstance(model.model, comfy.model_base.IP2P):
            raise ValueError(
                f"the model is a {type(model.model).__name__}, not an InstructPix2Pix model: load an InstructPix2Pix "
                "checkpoint (e.g. instruct-pix2pix-00-22000.safetensors) with Load Checkpoint")
        if target_pose is not None and control_net is None:
            log.warning("PoseLab IP2P edit: a target pose is connected but no ControlNet; the pose is ignored")
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
        guider.set_cfg(text_guidance, image_guidance)  # cfg1 = text, cfg2 = image (core DualCFGGuider)

        pixel_mask = None
        if mask is None:
            latent_image, denoise_mask = torch.zeros_like(source_latent), None
        else:
            # ComfyUI's inpaint path: at every step the input latent, re-noised to the current
            # sigma, replaces the sample outside the mask
            pixel_mask = ip2p.prepare_edit_mask(mask, batch, height, width)
            latent_image, denoise_mask = source_latent, pixel_mask
        samples = sample_with_guider(model, guider, latent_image, seed, sampler_name, scheduler, steps, denoise_mask)
        out = vae.decode(samples)[..., :3].to(pixels.device, pixels.dtype)
        if pixel_mask is not None:
            out = ip2p.composite_outside_mask(out, pixels, pixel_mask)
        return io.NodeOutput(out)


NODES = [IP2PEdit]
