"""Real-image text editing: DDIM inversion, null-text inversion and prompt-to-prompt.

They call ComfyUI's ``BaseModel.apply_model`` step by step, because they swap the unconditional
embedding per step and need source and edit rows in one batch; their DDIM step is ComfyUI's Euler
step on the ``ddim_uniform`` sigmas, and P2P is attention replace patches in
``transformer_options``. The pure tensor code lives in models/editing/inversion.py and p2p.py.
"""

from __future__ import annotations

import logging

import torch

import comfy.model_base
import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.sd
import comfy.utils
from comfy.ldm.modules.attention import optimized_attention
from comfy_api.latest import io

from ..models.editing import inversion as inv
from ..models.editing import ip2p, p2p
from .common import Progress, encode_embedding
from .training import FrozenDenoiser

log = logging.getLogger("poselab")


CATEGORY = "PoseLab/editing"


Inversion = io.Custom("POSELAB_INVERSION")


def require_plain_sd(model) -> None:
    if isinstance(model.model, comfy.model_base.IP2P):
        raise ValueError(
            "inversion and prompt-to-prompt need a text-to-image checkpoint (SD1.5 family), "
            "not an InstructPix2Pix one: use PoseLab IP2P Pose Edit for InstructPix2Pix models"
        )


def comfy_denoiser(model, transformer_options: dict | None = None):
    """``denoise(x, sigma, context) -> x0`` through ComfyUI's ``BaseModel.apply_model`` (its input
    scaling, timestep mapping, dtype casts, LoRA-patched weights and attention patches)."""
    base = model.model
    device = model.load_device
    opts = dict(model.model_options.get("transformer_options", {}))
    if transformer_options:
        opts.update(transformer_options)

    def denoise(x, sigma, context):
        s = torch.full((x.shape[0],), float(sigma), device=device)
        return base.apply_model(
            x.to(device), s, c_crossattn=context.to(device), transformer_options=opts
        ).float()

    return denoise


def ddim_sigmas(model, steps: int) -> torch.Tensor:
    # ComfyUI's ddim_uniform schedule = the DDIM timesteps; with an EPS model, Euler = DDIM
    return (
        comfy.samplers.calculate_sigmas(
            model.get_model_object("model_sampling"), "ddim_uniform", steps
        )
        .float()
        .cpu()
    )


def decode(vae, model, latent: torch.Tensor) -> torch.Tensor:
    return vae.decode(model.model.latent_format.process_out(latent.cpu()))[..., :3]


class DDIMInvert(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PoseLabDDIMInvert",
            display_name="DDIM Invert (PoseLab)",
            category=CATEGORY,
            description="Invert a real image to the diffusion noise that regenerates it (DDIM inversion with the "
            "source prompt). Feed it to Null-Text Inversion and Prompt-to-Prompt Edit.",
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="An SD1.5-family checkpoint (the same one, with the same LoRAs, must edit).",
                ),
                io.Clip.Input("clip", tooltip="Its text encoder."),
                io.Vae.Input("vae", tooltip="Its VAE."),
                io.Image.Input(
                    "image",
                    tooltip="The real image to invert (sides are cropped to multiples of 8).",
                ),
                io.String.Input(
                    "source_prompt",
                    multiline=True,
                    default="a photo of a person",
                    tooltip="A prompt describing the image; the edit prompt is written relative to it.",
                ),
                io.Int.Input(
                    "steps", default=50, min=1, max=1000, tooltip="DDIM steps (the paper uses 50)."
                ),
                io.Float.Input(
                    "guidance",
                    default=7.5,
                    min=1.0,
                    max=30.0,
                    step=0.1,
                    tooltip="Classifier-free guidance used for reconstruction and editing.",
                ),
            ],
            outputs=[
                Inversion.Output(
                    display_name="inversion", tooltip="Latent trajectory, sigmas and conditioning."
                ),
                io.Image.Output(
                    display_name="reconstruction",
                    tooltip="The image regenerated from the inverted noise at this guidance (drifts for guidance > 1).",
                ),
            ],
        )

    @classmethod
    def execute(cls, model, clip, vae, image, source_prompt, steps, guidance) -> io.NodeOutput:
        require_plain_sd(model)
        pixels = ip2p.crop_to_multiple_of_8(image[..., :3])
        z0 = model.model.latent_format.process_in(vae.encode(pixels).float().cpu())
        cond, null = encode_embedding(clip, source_prompt), encode_embedding(clip, "")
        comfy.model_management.load_models_gpu([model])
        sigmas = ddim_sigmas(model, steps)
        denoise = comfy_denoiser(model)
        progress = Progress(2 * steps)
        with torch.no_grad():
            traj = inv.ddim_invert(
                denoise, z0.to(model.load_device), sigmas, cond, on_step=lambda i: progress.step()
            )
            rec = inv.sample(
                denoise,
                traj[0],
                sigmas,
                cond,
                [null] * steps,
                guidance,
                on_step=lambda k, x: progress.step(),
            )
        result = inv.Inversion(
            latents=[t.cpu() for t in traj],
            sigmas=sigmas,
            cond=cond,
            uncond=[null] * steps,
            guidance=guidance,
            prompt=source_prompt,
            null_text=False,
            info={"model": id(model.model), "image": pixels},
        )
        return io.NodeOutput(result, decode(vae, model, rec))


class NullTextInvert(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PoseLabNullTextInvert",
            display_name="Null-Text Inversion (PoseLab)",
            category=CATEGORY,
            description="Optimise one unconditional embedding per step so that guided sampling retraces the DDIM "
            "inversion (Mokady et al. 2023): faithful reconstruction at guidance > 1.",
            inputs=[
                io.Model.Input("model", tooltip="The model used for the inversion."),
                io.Vae.Input("vae", tooltip="Its VAE (decodes the reconstruction)."),
                Inversion.Input("inversion", tooltip="From PoseLab DDIM Invert."),
                io.Int.Input(
                    "inner_iterations",
                    default=10,
                    min=1,
                    max=100,
                    tooltip="Adam iterations per step (the paper's N = 10).",
                ),
                io.Boolean.Input(
                    "early_stop",
                    default=True,
                    tooltip="Stop a step's iterations when the loss is below 1e-5 + i * 2e-5 (paper).",
                ),
            ],
            outputs=[
                Inversion.Output(
                    display_name="inversion",
                    tooltip="The inversion with per-step null-text embeddings.",
                ),
                io.Image.Output(
                    display_name="reconstruction",
                    tooltip="The image regenerated with the optimised embeddings.",
                ),
            ],
        )

    @classmethod
    def execute(cls, model, vae, inversion, inner_iterations, early_stop) -> io.NodeOutput:
        require_plain_sd(model)
        check_inversion_model(model, inversion)
        comfy.model_management.load_models_gpu([model])
        denoise = comfy_denoiser(model)
        steps = inversion.steps
        progress = Progress(steps)
        device = model.load_device
        with torch.inference_mode(False):
            # tensors made under inference_mode cannot enter autograd: work on normal clones
            traj = [t.to(device).clone() for t in inversion.latents]
            done = {"i": -1}

            def on_step(i, j, loss):
                comfy.model_management.throw_exception_if_processing_interrupted()
                if i != done["i"]:
                    done["i"] = i
                    progress.step()

            # autograd through the frozen UNet in its own dtype, without a copy of its weights
            with FrozenDenoiser(model) as frozen:
                unconds, losses = inv.null_text_optimize(
                    denoise,
                    traj,
                    inversion.sigmas.clone(),
                    inversion.cond.to(device).clone(),
                    inversion.uncond[0].to(device).clone(),
                    inversion.guidance,
                    inner_steps=inner_iterations,
                    early_stop=early_stop,
                    on_step=on_step,
                    grad_denoise=frozen.denoised,
                )
        unconds = [u.cpu() for u in unconds]
        with torch.no_grad():
            rec = inv.sample(
                denoise, traj[0], inversion.sigmas, inversion.cond, unconds, inversion.guidance
            )
        result = inv.Inversion(
            latents=inversion.latents,
            sigmas=inversion.sigmas,
            cond=inversion.cond,
            uncond=unconds,
            guidance=inversion.guidance,
            prompt=inversion.prompt,
            null_text=True,
            info=dict(inversion.info, null_text_losses=losses),
        )
        return io.NodeOutput(result, decode(vae, model, rec))


def check_inversion_model(model, inversion) -> None:
    if not isinstance(inversion, inv.Inversion):
        raise ValueError(
            "the inversion input must come from PoseLab DDIM Invert or PoseLab Null-Text Inversion"
        )
    if inversion.info.get("model") != id(model.model):
        log.warning(
            "PoseLab: the inversion was made with another model (or other LoRAs); the edit may drift"
        )


# ---------------------------------------------------------------------------- prompt-to-prompt
def prompt_tokens(clip, text: str) -> tuple[list[int], list[int], list[str]]:
    """77 token ids, a word id per position (1-based, 0 outside words) and the words, using the
    checkpoint's own tokenizer word by word (ComfyUI's word ids number weighted segments, not words)."""
    start, end = 49406, 49407  # CLIP's start/end tokens (SD1 pads with the end token)
    words = text.split()
    tokens, word_ids = [], []
    for i, word in enumerate(words, 1):
        ids = [t[0] for t in next(iter(clip.tokenize(word).values()))[0]]
        inner = ids[1 : ids.index(end, 1)] if end in ids[1:] else ids[1:]
        tokens += inner
        word_ids += [i] * len(inner)
    if len(tokens) > 75:
        raise ValueError(
            f"the prompt '{text[:60]}...' has {len(tokens)} tokens; prompt-to-prompt needs at most 75"
        )
    tokens = [start] + tokens + [end] * (76 - len(tokens))
    word_ids = [0] + word_ids + [0] * (76 - len(word_ids))
    return tokens, word_ids, words


def attention_layer_keys(unet) -> list[tuple]:
    """ComfyUI patch keys (block, index, transformer_index) of every transformer block."""
    keys = []
    for name, blocks in (
        ("input", unet.input_blocks),
        ("middle", [unet.middle_block] if unet.middle_block else []),
        ("output", unet.output_blocks),
    ):
        for i, block in enumerate(blocks):
            for module in block if isinstance(block, torch.nn.Sequential) else [block]:
                tb = getattr(module, "transformer_blocks", None)
                if tb is not None:
                    keys += [(name, i, j) for j in range(len(tb))]
    return keys


def p2p_patches(model, controller: p2p.P2PController) -> dict:
    def attn1(q, k, v, extra):
        return controller.attention(q, k, v, extra["n_heads"], is_cross=False)

    def attn2(q, k, v, extra):
        return controller.attention(q, k, v, extra["n_heads"], is_cross=True)

    keys = attention_layer_keys(model.model.diffusion_model)
    return {
        "patches_replace": {"attn1": {k: attn1 for k in keys}, "attn2": {k: attn2 for k in keys}}
    }


MODES = ["auto", "replace", "refine"]


class PromptToPromptEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PoseLabPromptToPromptEdit",
            display_name="Prompt-to-Prompt Edit (PoseLab)",
            category=CATEGORY,
            description="Edit an inverted real image by changing its prompt; the source's attention is injected "
            "into the edit (Hertz et al. 2022) through attention patches on the MODEL.",
            inputs=[
                io.Model.Input("model", tooltip="The model used for the inversion."),
                io.Clip.Input("clip", tooltip="Its text encoder."),
                io.Vae.Input("vae", tooltip="Its VAE."),
                Inversion.Input(
                    "inversion", tooltip="From PoseLab Null-Text Inversion (or DDIM Invert)."
                ),
                io.String.Input(
                    "edited_prompt",
                    multiline=True,
                    default="a photo of a person raising both arms",
                    tooltip="The source prompt with the words changed.",
                ),
                io.Combo.Input(
                    "mode",
                    options=MODES,
                    default="auto",
                    tooltip="replace: word swap (same word count); refine: added/removed words "
                    "(token alignment); auto: replace when the word counts match.",
                ),
                io.Float.Input(
                    "cross_replace",
                    default=0.8,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip="Fraction of the steps whose cross-attention comes from the source.",
                ),
                io.Float.Input(
                    "self_replace",
                    default=0.5,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip="Fraction of the steps whose self-attention comes from the source.",
                ),
                io.String.Input(
                    "reweight",
                    default="",
                    tooltip="Re-weight words of the edited prompt: 'word:scale, other:scale'.",
                ),
                io.String.Input(
                    "blend_words",
                    default="",
                    tooltip="Local blend: words whose attention maps bound the edit (source and/or "
                    "edited prompt). Empty: no attention blend.",
                ),
                io.Float.Input(
                    "blend_threshold",
                    default=0.3,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip="Attention-map threshold of the local blend mask.",
                ),
                io.Float.Input(
                    "blend_start",
                    default=0.2,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip="Fraction of the steps before blending starts.",
                ),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="A user mask (1 = edit) used for the local blend instead of attention maps.",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The edited image."),
                io.Image.Output(
                    display_name="reconstruction",
                    tooltip="The source row: the unedited reconstruction.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        clip,
        vae,
        inversion,
        edited_prompt,
        mode,
        cross_replace,
        self_replace,
        reweight,
        blend_words,
        blend_threshold,
        blend_start,
        mask=None,
    ) -> io.NodeOutput:
        require_plain_sd(model)
        check_inversion_model(model, inversion)
        s_tok, s_wid, s_words = prompt_tokens(clip, inversion.prompt)
        t_tok, t_wid, t_words = prompt_tokens(clip, edited_prompt)
        if mode == "auto":
            mode = "replace" if len(s_words) == len(t_words) else "refine"
        steps = inversion.steps
        controller = p2p.P2PController(
            steps=steps,
            mode=mode,
            cross_replace=cross_replace,
            self_replace=self_replace,
            fast_attention=optimized_attention,
        )
        if mode == "replace":
            controller.mapper = p2p.replace_mapper(s_wid, t_wid)
        else:
            controller.mapper, controller.alphas = p2p.refine_mapper(s_tok, s_wid, t_tok, t_wid)
        weights = p2p.parse_weights(reweight)
        if weights:
            eq = torch.ones(77)
            for word, scale in weights.items():
                pos = p2p.words_positions([word], t_words, t_wid)
                if not pos:
                    raise ValueError(
                        f"re-weighted word '{word}' is not in the edited prompt '{edited_prompt}'"
                    )
                eq[pos] = scale
            controller.equalizer = eq
        blend = [w for w in blend_words.replace(",", " ").split() if w]
        src_pos = p2p.words_positions(blend, s_words, s_wid)
        edit_pos = p2p.words_positions(blend, t_words, t_wid)
        if blend and not (src_pos or edit_pos) and mask is None:
            raise ValueError(f"none of the blend words {blend} is in the source or edited prompt")
        controller.store_maps = bool(blend) and mask is None

        comfy.model_management.load_models_gpu([model])
        device = model.load_device
        denoise = comfy_denoiser(model, p2p_patches(model, controller))
        x_t = inversion.latents[0].to(device)
        b = x_t.shape[0]
        h, w = x_t.shape[-2:]
        user_mask = None
        if mask is not None:
            user_mask = torch.nn.functional.interpolate(
                ip2p.prepare_edit_mask(mask, b, h * 8, w * 8),
                size=(h, w),
                mode="bilinear",
                align_corners=False,
            ).to(device)
        cond = torch.cat(
            [
                inversion.cond.expand(b, -1, -1),
                encode_embedding(clip, edited_prompt).expand(b, -1, -1),
            ]
        )
        unconds = [u.expand(b, -1, -1).repeat(2, 1, 1) for u in inversion.uncond]
        start = int(round(blend_start * steps))
        progress = Progress(steps)

        def on_step(k, x):
            controller.step = k + 1
            progress.step()
            if k < start or (user_mask is None and not controller.store_maps):
                return None
            m = (
                user_mask
                if user_mask is not None
                else p2p.local_blend_mask(
                    controller.maps, src_pos, edit_pos, (h, w), blend_threshold
                ).to(device)
            )
            return torch.cat([x[:b], x[:b] + m * (x[b:] - x[:b])])

        controller.step = 0
        with torch.no_grad():
            out = inv.sample(
                denoise,
                torch.cat([x_t, x_t]),
                inversion.sigmas,
                cond,
                unconds,
                inversion.guidance,
                on_step=on_step,
            )
        images = decode(vae, model, out)
        return io.NodeOutput(images[b:], images[:b])


NODES = [DDIMInvert, NullTextInvert, PromptToPromptEdit]
