"""Stable-Pose nodes: load an adapter as a CONTROL_NET, apply it with a POSE_KEYPOINT, train one.

The adapter (models/stable_pose/) has ComfyUI's ControlNet contract, so it travels as a core
``comfy.controlnet.ControlNet``: core "Apply ControlNet" works with it (give it a skeleton in the
Stable-Pose style), ComfyUI schedules, casts and offloads it, and it chains with other ControlNets.
The pose masks are made from the hint inside the adapter at every step; a small subclass only
tells the adapter which rows are the unconditional CFG half (open masks, as Stable-Pose samples).
"""

from __future__ import annotations

import logging
import os

import cv2
import torch

import comfy.controlnet
import comfy.model_management
import comfy.utils
from comfy_api.latest import io, ui

from ..models.common.files import unique_path
from ..models.common.images import (
    image_batch_to_numpy,
    numpy_to_image_batch,
    paired_batch_size,
    pick,
)
from ..models.pose.keypoints import Person, PoseFrame, parse_pose_keypoint
from ..models.pose.render import render_coco17_stablepose
from ..models.stable_pose import adapter as sp
from ..models.stable_pose import train as sp_train
from .common import (
    PoseKeypoint,
    Progress,
    apply_control,
    check_interrupted,
    encode_embedding,
    encode_embeddings,
    require_text_to_image_unet,
    vae_encode,
)
from .model_folders import folder_locations, list_model_files, reading_model, resolve_model_file
from .training import CheckpointKeeper, FrozenDenoiser, step_checkpoint_path, training_report

log = logging.getLogger("poselab")

CATEGORY = "PoseLab/stable-pose"
FOLDER = "stable_pose"
NEW_ADAPTER = "new (from the model's encoder)"


def load_adapter(name: str) -> sp.StablePoseAdapter:
    path = resolve_model_file(FOLDER, name)
    with reading_model(FOLDER, name):
        sd = comfy.utils.load_torch_file(
            path, safe_load=True
        )  # safetensors, or torch.load(weights_only=True)
    try:
        return sp.adapter_from_state_dict(sd)
    except (ValueError, KeyError) as exc:
        raise ValueError(
            f"{name}: not a usable Stable-Pose adapter ({exc}). Expected the adapter weights "
            "(stable_pose_adapter.* keys of a released checkpoint, or a file saved by Train Stable-Pose "
            "(PoseLab))."
        ) from exc


class StablePoseControlNet(comfy.controlnet.ControlNet):
    """Core ControlNet that tells the adapter which batch rows are the unconditional CFG half: as
    in Stable-Pose's sampler, those see the pose image but attend without pose masks. Everything
    else (hint scaling, strength, step range, chaining, offloading) is core's."""

    def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
        chunks = transformer_options.get("cond_or_uncond") or []
        if chunks and x_noisy.shape[0] % len(chunks) == 0:
            per = x_noisy.shape[0] // len(chunks)
            self.extra_args["open_rows"] = torch.tensor(
                [c == 1 for c in chunks for _ in range(per)]
            )
        else:
            self.extra_args.pop("open_rows", None)
        return super().get_control(x_noisy, t, cond, batched_number, transformer_options)

    def copy(self):  # core nodes copy before attaching a hint: keep this class
        c = StablePoseControlNet(
            None, load_device=self.load_device, manual_cast_dtype=self.manual_cast_dtype
        )
        c.control_model = self.control_model
        c.control_model_wrapped = self.control_model_wrapped
        self.copy_to(c)
        return c


def as_control_net(adapter: sp.StablePoseAdapter) -> comfy.controlnet.ControlNet:
    """Wrap the adapter as a core ControlNet in the dtype ComfyUI picks for this device."""
    device = comfy.model_management.get_torch_device()
    params = sum(p.numel() for p in adapter.parameters())
    dtype = comfy.model_management.unet_dtype(model_params=params)
    compute = comfy.model_management.unet_manual_cast(dtype, device) or dtype
    adapter.to(dtype=compute).eval()
    return StablePoseControlNet(adapter, load_device=device, manual_cast_dtype=None)


class LoadStablePose(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PoseLabLoadStablePose",
            display_name="Load Stable-Pose Adapter (PoseLab)",
            category=CATEGORY,
            description="Loads a Stable-Pose adapter (pose-masked-attention ControlNet for SD1.5) from "
            "models/stable_pose/ as a CONTROL_NET. Apply it with Apply Stable-Pose (PoseLab) or core "
            "Apply ControlNet with a Stable-Pose-style skeleton image.",
            inputs=[
                io.Combo.Input(
                    "adapter_name",
                    options=list_model_files(FOLDER),
                    tooltip="A Stable-Pose adapter in models/stable_pose/ (.safetensors, or a .ckpt/.pth "
                    "holding only tensors).",
                )
            ],
            outputs=[io.ControlNet.Output(display_name="control_net")],
        )

    @classmethod
    def execute(cls, adapter_name) -> io.NodeOutput:
        return io.NodeOutput(as_control_net(load_adapter(adapter_name)))


def render_hints(pose, width: int, height: int) -> torch.Tensor:
    """One Stable-Pose skeleton image per pose frame."""
    frames = parse_pose_keypoint(pose)
    if not frames:
        raise ValueError(
            "the POSE_KEYPOINT input holds no frames: connect a pose detector or editor output"
        )
    if not any(f.people for f in frames):
        log.warning("PoseLab Stable-Pose: no person in the pose input; the skeleton image is black")
    return numpy_to_image_batch([render_coco17_stablepose(f, width, height) for f in frames])


class ApplyStablePose(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PoseLabApplyStablePose",
            display_name="Apply Stable-Pose (PoseLab)",
            category=CATEGORY,
            description="Renders the pose as Stable-Pose's skeleton (COCO-17, 16 hls-coloured limbs) at the "
            "generation size and attaches the adapter to the positive and negative conditioning, as "
            "Stable-Pose does for both CFG branches. The pose masks for its attention are made from "
            "the skeleton at every step.",
            inputs=[
                io.Conditioning.Input("positive"),
                io.Conditioning.Input("negative"),
                io.ControlNet.Input(
                    "control_net", tooltip="From Load Stable-Pose Adapter (PoseLab)."
                ),
                PoseKeypoint.Input(
                    "pose",
                    tooltip="The pose to generate (OpenPose-18 POSE_KEYPOINT; rescaled to the size).",
                ),
                io.Int.Input(
                    "width",
                    default=512,
                    min=16,
                    max=8192,
                    step=16,
                    tooltip="Generation width (the empty latent's); a multiple of 16.",
                ),
                io.Int.Input(
                    "height",
                    default=512,
                    min=16,
                    max=8192,
                    step=16,
                    tooltip="Generation height; a multiple of 16.",
                ),
                io.Float.Input("strength", default=1.0, min=0.0, max=10.0, step=0.01),
                io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.001),
                io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.001),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive"),
                io.Conditioning.Output(display_name="negative"),
                io.Image.Output(
                    display_name="pose_image", tooltip="The skeleton image the adapter sees."
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        positive,
        negative,
        control_net,
        pose,
        width,
        height,
        strength,
        start_percent,
        end_percent,
    ) -> io.NodeOutput:
        if width % 16 or height % 16:
            raise ValueError(
                f"{width}x{height}: Stable-Pose needs sides that are multiples of 16 (8 px latent cells, "
                "2x2 attention patches)"
            )
        if not isinstance(getattr(control_net, "control_model", None), sp.StablePoseAdapter):
            raise ValueError(
                "control_net is not a Stable-Pose adapter: load one with Load Stable-Pose Adapter (PoseLab) "
                "(for an OpenPose ControlNet use core Apply ControlNet with an OpenPose render)"
            )
        hints = render_hints(pose, width, height)
        if strength == 0:
            return io.NodeOutput(positive, negative, hints)
        pos, neg = apply_control(
            [positive, negative],
            control_net,
            hints,
            strength,
            percent_range=(start_percent, end_percent),
        )
        return io.NodeOutput(pos, neg, hints)


# ---------------------------------------------------------------------------------- training
def procedural_samples(count: int, size: int, seed: int):
    """(image uint8, OpenPose-18 body, caption) samples of procedural people (both ends of each pair)."""
    from ..models.pose import synthetic

    out = []
    for p in synthetic.make_pairs((count + 1) // 2, seed=seed, size=(size, size)):
        out.append(
            (p.source, p.source_body, f"a photo of a person, {p.source_pose.replace('_', ' ')}")
        )
        out.append(
            (p.target, p.target_body, f"a photo of a person, {p.target_pose.replace('_', ' ')}")
        )
    return out[:count]


def fit_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """The image's aspect with the long side at ``resolution``, both sides multiples of 16."""
    s = resolution / max(width, height)
    return max(16, int(width * s) // 16 * 16), max(16, int(height * s) // 16 * 16)


def user_samples(images: torch.Tensor, pose, captions: str, resolution: int):
    frames = parse_pose_keypoint(pose)
    n = paired_batch_size({"images": images.shape[0], "poses": len(frames)})
    lines = [c.strip() for c in captions.splitlines() if c.strip()] or [""]
    if len(lines) not in (1, n):
        raise ValueError(
            f"{len(lines)} caption lines for {n} images: give one caption, or one line per image"
        )
    out = []
    pictures = image_batch_to_numpy(images)
    for i in range(n):
        img, frame = pick(pictures, i), pick(frames, i)
        if not frame.people:
            raise ValueError(
                f"training image {i}: its pose has no person; remove it or fix the pose"
            )
        h, w = img.shape[:2]
        tw, th = fit_size(w, h, resolution)
        body = frame.people[0].body.copy()
        body[:, 0] *= tw / frame.width
        body[:, 1] *= th / frame.height
        out.append((cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA), body, pick(lines, i)))
    if len({s[0].shape for s in out}) > 1:
        raise ValueError("training images must share one size (after fitting to the resolution)")
    return out


def encode_samples(model, clip, vae, samples) -> sp_train.PoseData:
    h, w = samples[0][0].shape[:2]
    text = encode_embeddings(clip, [s[2] for s in samples])
    imgs = numpy_to_image_batch([s[0] for s in samples])
    hints = numpy_to_image_batch(
        [render_coco17_stablepose(PoseFrame(w, h, [Person(body=s[1])]), w, h) for s in samples]
    )
    return sp_train.PoseData(
        latents=model.model.latent_format.process_in(vae_encode(vae, imgs)),
        hints=hints.movedim(-1, 1),
        text=text,
        null_text=encode_embedding(clip, ""),
    )


class TrainStablePose(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PoseLabTrainStablePose",
            is_experimental=True,  # as core marks its own trainer: long-running, settings may change
            display_name="Train Stable-Pose (PoseLab)",
            category=CATEGORY,
            description="Trains a Stable-Pose adapter for an SD1.5-family checkpoint (frozen) with the pose-mask-guided "
            "loss, on your images + poses or on procedural people, and saves it to models/stable_pose/.",
            is_output_node=True,
            inputs=[
                io.Model.Input(
                    "model", tooltip="The SD1.5-family checkpoint the adapter steers (kept frozen)."
                ),
                io.Clip.Input("clip", tooltip="Its text encoder (captions)."),
                io.Vae.Input("vae", tooltip="Its VAE (training images)."),
                io.Combo.Input(
                    "start_from",
                    options=[NEW_ADAPTER] + list_model_files(FOLDER),
                    tooltip="A new adapter copied from the model's encoder (as Stable-Pose's prepare_weights), "
                    "or an adapter in models/stable_pose/ to keep training.",
                ),
                io.Int.Input(
                    "synthetic_samples",
                    default=64,
                    min=2,
                    max=100000,
                    tooltip="Procedural people used when no images are connected.",
                ),
                io.Int.Input(
                    "resolution",
                    default=512,
                    min=64,
                    max=2048,
                    step=16,
                    tooltip="Long side of the training images (multiples of 16).",
                ),
                io.Int.Input("steps", default=500, min=1, max=10000000),
                io.Int.Input("batch_size", default=2, min=1, max=256),
                io.Float.Input(
                    "learning_rate",
                    default=1e-5,
                    min=1e-8,
                    max=1.0,
                    step=1e-6,
                    round=1e-8,
                    tooltip="AdamW; Stable-Pose used 1e-5.",
                ),
                io.Float.Input(
                    "alpha",
                    default=5.0,
                    min=1.0,
                    max=100.0,
                    step=0.5,
                    tooltip="Loss weight inside the fine pose mask (1 outside).",
                ),
                io.Float.Input(
                    "text_dropout",
                    default=0.5,
                    min=0.0,
                    max=0.95,
                    step=0.05,
                    tooltip="Probability of training with the empty caption (Stable-Pose: 0.5).",
                ),
                io.Float.Input(
                    "holdout",
                    default=0.25,
                    min=0.0,
                    max=0.9,
                    step=0.05,
                    tooltip="Fraction of samples held out to score the adapter before/after training.",
                ),
                io.Int.Input(
                    "save_every",
                    default=0,
                    min=0,
                    max=10000000,
                    tooltip="Extra checkpoints every N steps (0: none).",
                ),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF),
                io.String.Input(
                    "adapter_name",
                    default="poselab_stable_pose",
                    tooltip="File name stem in models/stable_pose/; a counter is added if it exists.",
                ),
                io.Image.Input("images", optional=True, tooltip="Your training images (one size)."),
                PoseKeypoint.Input(
                    "poses",
                    optional=True,
                    tooltip="Their poses (one frame per image; first person).",
                ),
                io.String.Input(
                    "captions",
                    multiline=True,
                    default="",
                    optional=True,
                    tooltip="One caption for all images, or one line per image.",
                ),
                io.Int.Input(
                    "keep_checkpoints",
                    default=2,
                    min=0,
                    max=1000,
                    optional=True,
                    tooltip="How many of the newest step checkpoints (<name>_stepNNNNNN) to keep; older ones "
                    "are deleted. The final adapter is always kept.",
                ),
                io.Boolean.Input(
                    "gradient_checkpointing",
                    default=False,
                    optional=True,
                    tooltip="Recompute the UNet's activations in the backward pass: much less memory, "
                    "about a third more time.",
                ),
            ],
            outputs=[
                io.ControlNet.Output(
                    display_name="control_net", tooltip="The trained adapter, ready to apply."
                ),
                io.String.Output(display_name="adapter_file"),
                io.String.Output(
                    display_name="report",
                    tooltip="JSON: losses, held-out loss before/after, with a wrong pose.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        clip,
        vae,
        start_from,
        synthetic_samples,
        resolution,
        steps,
        batch_size,
        learning_rate,
        alpha,
        text_dropout,
        holdout,
        save_every,
        seed,
        adapter_name,
        images=None,
        poses=None,
        captions="",
        keep_checkpoints=2,
        gradient_checkpointing=False,
    ) -> io.NodeOutput:
        require_text_to_image_unet(
            model, "Stable-Pose training"
        )  # before the slow data preparation
        stem = os.path.basename(adapter_name.strip()).removesuffix(".safetensors")
        if not stem:
            raise ValueError(
                "adapter_name is empty: give a file name stem such as poselab_stable_pose"
            )
        if (images is None) != (poses is None):
            raise ValueError(
                "connect both images and poses to train on your data, or neither for procedural people"
            )
        size = resolution // 16 * 16
        samples = (
            user_samples(images, poses, captions or "", size)
            if images is not None
            else procedural_samples(synthetic_samples, size, seed)
        )
        return _train(
            model,
            clip,
            vae,
            samples,
            start_from,
            steps,
            batch_size,
            learning_rate,
            alpha,
            text_dropout,
            holdout,
            save_every,
            seed,
            stem,
            keep_checkpoints,
            gradient_checkpointing,
        )


def split_holdout(data: sp_train.PoseData, holdout: float):
    """The last ``holdout`` share of the samples (at least one when asked for, never all) held out."""
    n = data.latents.shape[0]
    n_eval = min(max(int(round(holdout * n)), 1 if holdout > 0 else 0), n - 1) if n >= 2 else 0

    def part(sl):
        return sp_train.PoseData(
            *(x[sl] for x in (data.latents, data.hints, data.text)), data.null_text
        )

    return part(slice(0, n - n_eval)), (part(slice(n - n_eval, n)) if n_eval else None)


def train_on_model(
    model,
    clip,
    vae,
    samples,
    initial_sd: dict | None,
    cfg: sp_train.TrainConfig,
    holdout: float,
    out_path,
    progress=None,
    keep_checkpoints: int = 2,
    gradient_checkpointing: bool = False,
):
    """Train an adapter for ``model`` (frozen) on ``(image, body, caption)`` samples; checkpoints go
    to ``out_path`` (atomically; only the newest ``keep_checkpoints`` step checkpoints are kept).
    ``initial_sd``: weights to continue from, else a new adapter from the model's encoder. Returns
    (result, trained adapter, train count, held-out count)."""
    require_text_to_image_unet(model, "Stable-Pose training")
    train_data, eval_data = split_holdout(encode_samples(model, clip, vae, samples), holdout)
    n_train, n_eval = (
        train_data.latents.shape[0],
        0 if eval_data is None else eval_data.latents.shape[0],
    )
    meta = {"steps": cfg.steps, "samples": n_train, "base_model": type(model.model).__name__}
    keeper = CheckpointKeeper(out_path, keep_checkpoints)
    # The frozen UNet is the loaded model itself, in its own dtype (no copy): see nodes/training.py.
    with FrozenDenoiser(model, gradient_checkpointing=gradient_checkpointing) as denoiser:
        unet_sd = denoiser.base.diffusion_model.state_dict()
        if initial_sd is None:
            adapter = sp.adapter_for_unet(unet_sd, prefix="", seed=cfg.seed)
        else:
            adapter = sp.adapter_from_state_dict({k: v.clone() for k, v in initial_sd.items()})
            if sp.infer_config(unet_sd).channel_mult != adapter.config.channel_mult:
                raise ValueError(
                    "the adapter to continue from was made for another UNet layout than this model's"
                )
        del unet_sd
        adapter.mask_threshold = sp.INFER_THRESHOLD

        def unet_fn(x, t, ctx, control):
            return denoiser(x, t, ctx, control=control)

        def on_step(step: int, loss: float) -> None:
            if progress is not None:
                progress.step()
            check_interrupted()

        def save(step: int) -> str:
            final = step == cfg.steps
            path = out_path if final else step_checkpoint_path(out_path, step)
            sp_train.save_adapter(adapter, path, dict(meta, step=step))
            if not final:
                keeper.add(path)
            return str(path)

        result = sp_train.train_adapter(
            unet_fn,
            adapter,
            train_data,
            denoiser.alphas_cumprod,
            cfg,
            eval_data=eval_data,
            device=denoiser.device,
            on_step=on_step,
            save_checkpoint=save,
        )
        trained = sp.adapter_from_state_dict(
            {k: v.detach().clone() for k, v in adapter.state_dict().items()}
        )
    return result, trained, n_train, n_eval


def _train(
    model,
    clip,
    vae,
    samples,
    start_from,
    steps,
    batch_size,
    learning_rate,
    alpha,
    text_dropout,
    holdout,
    save_every,
    seed,
    stem,
    keep_checkpoints=2,
    gradient_checkpointing=False,
) -> io.NodeOutput:
    initial = None
    if start_from != NEW_ADAPTER:
        with reading_model(FOLDER, start_from):
            initial = comfy.utils.load_torch_file(
                resolve_model_file(FOLDER, start_from), safe_load=True
            )
    out_path = unique_path(os.path.join(folder_locations(FOLDER)[0], f"{stem}.safetensors"))
    cfg = sp_train.TrainConfig(
        steps=steps,
        batch_size=batch_size,
        lr=learning_rate,
        alpha=alpha,
        text_dropout=text_dropout,
        seed=seed,
        save_every=save_every,
    )
    result, trained, n_train, n_eval = train_on_model(
        model,
        clip,
        vae,
        samples,
        initial,
        cfg,
        holdout,
        out_path,
        Progress(steps),
        keep_checkpoints,
        gradient_checkpointing,
    )
    report = training_report(
        result, adapter_file=out_path.name, train_samples=n_train, heldout_samples=n_eval
    )
    return io.NodeOutput(as_control_net(trained), out_path.name, report, ui=ui.PreviewText(report))


NODES = [LoadStablePose, ApplyStablePose, TrainStablePose]
