"""Deformable-GAN nodes: synthetic paired data, training, loading, pose transfer.

Thin glue over models/posegan/. Model files live in ``models/posegan/`` (written by the trainer,
read by the loader); training runs (logs, samples, resumable state) in
``output/posegan_runs/<name>/``; synthetic datasets in ``output/<name>/``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import cv2
import numpy as np
import torch

import comfy.model_management
import folder_paths
from comfy_api.latest import io, ui

from ..models.common.files import unique_path
from ..models.common.images import (
    image_batch_to_numpy,
    numpy_to_image_batch,
    numpy_to_mask_batch,
    paired_batch_size,
    pick,
)
from ..models.pose import synthetic
from ..models.pose.keypoints import (
    Person,
    PoseFrame,
    parse_pose_keypoint,
    scaled_bodies,
    to_pose_keypoint,
)
from ..models.posegan import checkpoint, trainer, transfer
from ..models.posegan import dataset as pairdata
from ..models.posegan.losses import load_vgg_block1
from ..models.posegan.networks import OUTPUTS, SIZE_PRESETS, PoseGANConfig
from .common import PoseKeypoint, Progress, check_interrupted, user_folder
from .model_folders import folder_locations, list_model_files, reading_model, resolve_model_file

log = logging.getLogger("poselab")

CATEGORY = "PoseLab/posegan"
PoseGANModel = io.Custom("POSEGAN_MODEL")
NO_VGG = "(none: pixel-space NN loss)"
RANDOM = "random"
PREVIEW_LIMIT = 64  # pairs returned as IMAGE batches; the dataset folder holds all of them
RUNS_DIR = "posegan_runs"


def _size_options() -> list[str]:
    return list(SIZE_PRESETS)


def _safe_name(name: str, what: str) -> str:
    name = (name or "").strip()
    if (
        not name
        or name in (".", "..")
        or any(c in name for c in '/\\:*?"<>|')
        or name.startswith(".")
    ):
        raise ValueError(
            f"{what} {name!r} is not a plain folder/file name: use letters, digits, '-' and '_' only"
        )
    return name


# ------------------------------------------------------------------------- synthetic pairs


class SyntheticPairs(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        poses = [RANDOM] + list(
            synthetic.POSES
        )  # still_torso refuses the sitting/squatting ones with a clear error
        return io.Schema(
            node_id="PoseLabSyntheticPairs",
            display_name="Synthetic Pose Pairs (PoseLab)",
            category=CATEGORY,
            description=(
                "Procedurally drawn people (same person and background) in two poses, with exact OpenPose-18 "
                "keypoints and an instruction describing the change. Ground truth for pose transfer, training "
                "data for the Deformable GAN and instruction-edit trainers. Deterministic from the seed."
            ),
            is_output_node=True,
            inputs=[
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=2**31 - 1,
                    tooltip="Pair i uses seed + i: the same seed always gives the same pairs.",
                ),
                io.Int.Input(
                    "count",
                    default=8,
                    min=1,
                    max=100000,
                    tooltip=f"Number of pairs. The IMAGE outputs hold the first {PREVIEW_LIMIT}; the dataset folder holds all.",
                ),
                io.Combo.Input(
                    "size",
                    options=_size_options(),
                    default="market_128x64",
                    tooltip="Image size (height x width) of the pairs; match the model you will train.",
                ),
                io.Combo.Input(
                    "source_pose",
                    options=poses,
                    default=RANDOM,
                    tooltip="Pose of the source images (random: drawn per pair).",
                ),
                io.Combo.Input(
                    "target_pose",
                    options=poses,
                    default=RANDOM,
                    tooltip="Pose of the target images (random: a different pose per pair).",
                ),
                io.Boolean.Input(
                    "still_torso",
                    default=False,
                    tooltip="Keep the torso in place (no lean, no sitting/squatting): only limbs and head move. The setting in which the Deformable GAN can reproduce a shared background exactly.",
                ),
                io.Boolean.Input(
                    "write_dataset",
                    default=False,
                    tooltip="Also write a dataset folder under ComfyUI's output directory (images, annotation/pairs CSV, metadata.jsonl).",
                ),
                io.String.Input(
                    "dataset_name",
                    default="posegan_synthetic",
                    tooltip="Folder name under output/; a counter is appended if it exists (never overwritten).",
                ),
                io.Float.Input(
                    "test_fraction",
                    default=0.1,
                    min=0.0,
                    max=0.9,
                    step=0.05,
                    tooltip="Share of the pairs written to the test split.",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="source", tooltip="Source images (first pose)."),
                io.Image.Output(
                    display_name="target",
                    tooltip="Target images (second pose): the ground truth of a transfer.",
                ),
                PoseKeypoint.Output(
                    display_name="source_pose",
                    tooltip="Exact OpenPose-18 keypoints of the sources.",
                ),
                PoseKeypoint.Output(
                    display_name="target_pose",
                    tooltip="Exact OpenPose-18 keypoints of the targets.",
                ),
                io.String.Output(
                    display_name="instructions",
                    tooltip="One instruction per pair, one per line (e.g. 'make the person raise both arms').",
                ),
                io.Mask.Output(display_name="target_mask", tooltip="Person masks of the targets."),
                io.String.Output(
                    display_name="dataset_folder",
                    tooltip="Path of the written dataset folder ('' when not written).",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        seed,
        count,
        size,
        source_pose,
        target_pose,
        still_torso,
        write_dataset,
        dataset_name,
        test_fraction,
    ) -> io.NodeOutput:
        hw = SIZE_PRESETS[size]
        pool = synthetic.STILL_TORSO_POSES if still_torso else tuple(synthetic.POSES)
        prog = Progress(count)
        pairs = []
        for i in range(count):
            pairs.append(
                synthetic.make_pair(
                    seed + i,
                    hw,
                    source_pose=None if source_pose == RANDOM else source_pose,
                    target_pose=None if target_pose == RANDOM else target_pose,
                    poses=tuple(p for p in pool if p != source_pose)
                    if (source_pose != RANDOM and target_pose == RANDOM)
                    else None,
                    still_torso=still_torso,
                )
            )
            prog.step()
        folder = ""
        if write_dataset:
            name = _safe_name(dataset_name, "dataset_name")
            root = unique_path(Path(folder_paths.get_output_directory()) / name)
            pairdata.write_dataset(
                root,
                pairs,
                test_fraction,
                info={
                    "generator": "poselab.synthetic",
                    "seed": seed,
                    "count": count,
                    "size": list(hw),
                    "still_torso": still_torso,
                },
            )
            folder = str(root)
        shown = pairs[:PREVIEW_LIMIT]
        h, w = hw
        frames = lambda attr: [PoseFrame(w, h, [Person(getattr(p, attr))]) for p in shown]  # noqa: E731
        text = "\n".join(p.instruction for p in pairs)
        return io.NodeOutput(
            numpy_to_image_batch([p.source for p in shown]),
            numpy_to_image_batch([p.target for p in shown]),
            to_pose_keypoint(frames("source_body")),
            to_pose_keypoint(frames("target_body")),
            text,
            numpy_to_mask_batch([p.target_mask for p in shown]),
            folder,
            ui=ui.PreviewText(
                f"{count} pairs{' written to ' + folder if folder else ''}\n"
                + "\n".join(p.instruction for p in shown[:8])
            ),
        )


# ---------------------------------------------------------------------------------- training


def _find_dataset(name: str) -> Path:
    """A dataset folder by name under output/ or input/."""
    if not (name or "").strip():
        raise ValueError(
            "dataset is empty: give a dataset folder name under ComfyUI's output/ or input/ directory"
        )
    try:
        return user_folder(name, "dataset folder")
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"{exc} (write one with Synthetic Pose Pairs (PoseLab), write_dataset on, or put a "
            "Market-1501-style folder there)"
        ) from None


class TrainPoseGAN(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PoseLabTrainPoseGAN",
            is_experimental=True,  # as core marks its own trainer: long-running, settings may change
            display_name="Train Deformable GAN (PoseLab)",
            category=CATEGORY,
            description=(
                "Trains the Deformable GAN (Siarohin et al. 2018) on a dataset folder (annotation CSV + pairs CSV layout "
                "of Market-1501/DeepFashion, or a synthetic one). Writes models/posegan/<name>.safetensors and a run folder "
                "output/posegan_runs/<name>/ (losses.csv, samples, resumable state). Cancel saves a checkpoint; resume continues it."
            ),
            is_output_node=True,
            not_idempotent=True,
            inputs=[
                io.String.Input(
                    "dataset",
                    default="posegan_synthetic",
                    tooltip="Dataset folder inside ComfyUI's output/ or input/ folder (a name relative to it).",
                ),
                io.Combo.Input(
                    "size",
                    options=_size_options(),
                    default="market_128x64",
                    tooltip="Model size; images and keypoints are resized to it.",
                ),
                io.Int.Input(
                    "steps",
                    default=1000,
                    min=1,
                    max=10_000_000,
                    tooltip="Total iterations (the paper: 90,000). With resume, training continues up to this number.",
                ),
                io.Int.Input(
                    "batch_size",
                    default=4,
                    min=1,
                    max=256,
                    tooltip="Pairs per iteration (the paper: 4 on Market, 2 on DeepFashion).",
                ),
                io.Float.Input(
                    "learning_rate",
                    default=2e-4,
                    min=1e-6,
                    max=1e-2,
                    step=1e-5,
                    tooltip="Adam learning rate for G and D (the paper: 2e-4, betas 0.5/0.999).",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=2**31 - 1,
                    tooltip="Seeds weights, batch order and dropout.",
                ),
                io.Boolean.Input(
                    "resume",
                    default=True,
                    tooltip="Continue the run of this name from its last checkpoint; off starts a new run (a counter is appended to an existing name).",
                ),
                io.String.Input(
                    "checkpoint_name",
                    default="posegan_synthetic",
                    tooltip="Name of the model file in models/posegan/ and of the run folder.",
                ),
                io.Combo.Input(
                    "warp_skip",
                    options=["mask", "none"],
                    default="mask",
                    tooltip="mask: deformable skip connections (the paper); none: the plain U-Net baseline.",
                ),
                io.Float.Input(
                    "width_mult",
                    default=1.0,
                    min=0.03,
                    max=2.0,
                    step=0.0625,
                    tooltip="Scales every filter count; 1.0 is the paper's network, 0.25 trains ~10x faster on a CPU.",
                ),
                io.Combo.Input(
                    "output",
                    options=list(OUTPUTS),
                    default="image",
                    tooltip="image: the paper's tanh image head; blend: the head also predicts a mask that keeps source pixels where nothing moves (exact background, much faster to train on same-camera pairs).",
                ),
                io.Combo.Input(
                    "nn_window",
                    options=["3", "5"],
                    default="3",
                    tooltip="Window of the nearest-neighbour loss (the paper: 3 on Market, 5 on DeepFashion).",
                ),
                io.Float.Input(
                    "l1_weight",
                    default=0.0,
                    min=0.0,
                    max=1000.0,
                    step=1.0,
                    tooltip="Extra pixel L1 loss weight (0 in the full model; 100 in the paper's baseline ablation).",
                ),
                io.Combo.Input(
                    "vgg_weights",
                    options=[NO_VGG] + list_model_files("vgg"),
                    default=NO_VGG,
                    tooltip="torchvision VGG19 weights in models/vgg/ for the NN loss on block1_conv2 features; none uses pixels.",
                ),
                io.Int.Input(
                    "sample_every",
                    default=250,
                    min=1,
                    max=1_000_000,
                    tooltip="Write a sample grid every N steps.",
                ),
                io.Int.Input(
                    "checkpoint_every",
                    default=500,
                    min=1,
                    max=1_000_000,
                    tooltip="Write a checkpoint every N steps (also on cancel and at the end).",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="loss_curve", tooltip="Plot of the logged losses."),
                io.String.Output(
                    display_name="summary",
                    tooltip="JSON summary: steps, last losses, loss setup, file paths.",
                ),
                io.String.Output(
                    display_name="checkpoint",
                    tooltip="File name written in models/posegan/ (choose it in Load Deformable GAN (PoseLab)).",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        dataset,
        size,
        steps,
        batch_size,
        learning_rate,
        seed,
        resume,
        checkpoint_name,
        warp_skip,
        width_mult,
        output,
        nn_window,
        l1_weight,
        vgg_weights,
        sample_every,
        checkpoint_every,
    ) -> io.NodeOutput:
        root = _find_dataset(dataset)
        name = _safe_name(checkpoint_name, "checkpoint_name")
        models_dir = Path(folder_locations("posegan")[0])
        models_dir.mkdir(parents=True, exist_ok=True)
        runs = Path(folder_paths.get_output_directory()) / RUNS_DIR
        run_dir, model_path = runs / name, models_dir / f"{name}.safetensors"
        # A model file without this run's state is someone else's: never overwrite it, even with resume on.
        resumable = resume and (run_dir / "state.safetensors").is_file()
        if not resumable and (run_dir.exists() or model_path.exists()):
            i = 1
            while (runs / f"{name}_{i}").exists() or (
                models_dir / f"{name}_{i}.safetensors"
            ).exists():
                i += 1
            name = f"{name}_{i}"
            run_dir, model_path = runs / name, models_dir / f"{name}.safetensors"
            log.info(
                "PoseLab: %s exists and there is no run of it to resume: training a new run %s",
                checkpoint_name,
                name,
            )
        h, w = SIZE_PRESETS[size]
        config = PoseGANConfig(
            height=h,
            width=w,
            width_mult=width_mult,
            warp_skip=warp_skip,
            output=output,
            nn_window=int(nn_window),
            l1_weight=l1_weight,
        )
        vgg = None
        if vgg_weights != NO_VGG:
            path = resolve_model_file("vgg", vgg_weights)
            with reading_model("vgg", vgg_weights):
                vgg = load_vgg_block1(path)
        data = pairdata.FolderPairs(root, "train")
        settings = trainer.TrainSettings(
            steps=steps,
            batch_size=batch_size,
            lr=learning_rate,
            seed=seed,
            sample_every=sample_every,
            checkpoint_every=checkpoint_every,
            device=str(comfy.model_management.get_torch_device()),
        )
        prog = Progress(steps)

        def on_progress(done: int, total: int) -> None:
            prog.bar.update_absolute(done, total)  # ComfyUI's hook: also raises on cancel
            check_interrupted()

        # ComfyUI runs nodes under inference mode; training needs autograd back
        with torch.inference_mode(False), torch.enable_grad():
            result = trainer.train(
                config,
                data,
                run_dir,
                settings,
                model_path=model_path,
                resume=resume,
                vgg=vgg,
                progress=on_progress,
            )
        summary = {k: v for k, v in result.items() if k not in ("loss_curve", "loss_rows")}
        text = json.dumps(summary, indent=1)
        return io.NodeOutput(
            numpy_to_image_batch([result["loss_curve"]]),
            text,
            model_path.name,
            ui=ui.PreviewText(f"{model_path.name}: {result['steps']} steps, {result['loss_note']}"),
        )


# ----------------------------------------------------------------------------------- loading

_CACHE: dict[tuple[str, float], object] = {}
_CACHE_LOCK = threading.Lock()


class PoseGAN:
    """A loaded generator with its metadata (what travels as POSEGAN_MODEL)."""

    def __init__(self, generator, meta: dict, name: str):
        self.generator, self.meta, self.name = generator, meta, name

    def __repr__(self) -> str:
        c = self.meta["config"]
        return f"PoseGAN({self.name}, {c.height}x{c.width}, warp_skip={c.warp_skip}, step={self.meta['step']})"


class LoadPoseGAN(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PoseLabLoadPoseGAN",
            display_name="Load Deformable GAN (PoseLab)",
            category=CATEGORY,
            description="Loads a Deformable-GAN checkpoint written by the PoseLab trainer from models/posegan/.",
            inputs=[
                io.Combo.Input(
                    "ckpt_name",
                    options=[f for f in list_model_files("posegan") if f.endswith(".safetensors")],
                    tooltip="A .safetensors file in models/posegan/ (train one with Train Deformable GAN (PoseLab)).",
                ),
            ],
            outputs=[
                PoseGANModel.Output(
                    display_name="model", tooltip="The generator, its size and settings."
                )
            ],
        )

    @classmethod
    def execute(cls, ckpt_name) -> io.NodeOutput:
        path = resolve_model_file("posegan", ckpt_name)
        key = (path, os.path.getmtime(path))
        with _CACHE_LOCK:
            model = _CACHE.get(key)
            if model is None:
                with reading_model("posegan", ckpt_name):
                    gen, meta = checkpoint.load_model(
                        path, comfy.model_management.get_torch_device()
                    )
                model = PoseGAN(gen, meta, ckpt_name)
                _CACHE.clear()  # keep one model: they are small, but a training loop writes many versions
                _CACHE[key] = model
        return io.NodeOutput(model)


# ---------------------------------------------------------------------------------- transfer


class PoseGANTransfer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PoseLabPoseGANTransfer",
            display_name="Deformable GAN Transfer (PoseLab)",
            category=CATEGORY,
            description=(
                "Reposes a person with a trained Deformable GAN: crops around the source person (model aspect, covering both "
                "poses), generates the target pose at the model's size, and pastes the crop back (or returns it)."
            ),
            inputs=[
                PoseGANModel.Input("model", tooltip="From Load Deformable GAN (PoseLab)."),
                io.Image.Input("source", tooltip="Photo(s) of the person."),
                PoseKeypoint.Input(
                    "source_pose",
                    tooltip="Pose of the person in the source (e.g. from a pose extractor).",
                ),
                PoseKeypoint.Input(
                    "target_pose",
                    tooltip="Wanted pose (edited/retargeted). Another canvas size is scaled to the source person.",
                ),
                io.Int.Input(
                    "person_index",
                    default=0,
                    min=0,
                    max=63,
                    tooltip="Which person of the source pose to repose (the target uses the same index, or its first person).",
                ),
                io.Combo.Input(
                    "output",
                    options=list(transfer.OUTPUTS),
                    default="paste",
                    tooltip="paste: the source canvas with the generated crop pasted back; crop: the model-size crop.",
                ),
            ],
            outputs=[
                io.Image.Output(
                    display_name="image",
                    tooltip="The reposed person (source size for paste, model size for crop).",
                ),
                io.Mask.Output(
                    display_name="part_mask",
                    tooltip="Union of the target's part masks (torso, head, limbs) in the output frame.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls, model, source, source_pose, target_pose, person_index, output
    ) -> io.NodeOutput:
        images = image_batch_to_numpy(source)
        src_frames = parse_pose_keypoint(source_pose)
        tgt_frames = parse_pose_keypoint(target_pose)
        n = paired_batch_size(
            {"source": len(images), "source_pose": len(src_frames), "target_pose": len(tgt_frames)}
        )
        mh, mw = model.meta["config"].image_size
        prog = Progress(n)
        out_imgs, out_masks = [], []
        for i in range(n):
            img, sf, tf = pick(images, i), pick(src_frames, i), pick(tgt_frames, i)
            ih, iw = img.shape[:2]
            src_bodies = scaled_bodies(sf, iw, ih, dtype=np.float32)
            src_body = src_bodies[person_index] if person_index < len(src_bodies) else None
            t_idx = person_index if person_index < len(tf.people) else 0
            tgt_body = tf.people[t_idx].body if tf.people else None
            if src_body is None or tgt_body is None:
                log.warning(
                    "PoseLab transfer: image %d has no person %d in the %s pose; returning the source unchanged",
                    i,
                    person_index,
                    "source" if src_body is None else "target",
                )
                res_img = (
                    img
                    if output == "paste"
                    else cv2.resize(img, (mw, mh), interpolation=cv2.INTER_AREA)
                )
                out_imgs.append(res_img)
                out_masks.append(np.zeros(res_img.shape[:2], np.float32))
            else:
                res = transfer.transfer_one(
                    model.generator,
                    img,
                    src_body,
                    tgt_body,
                    tgt_canvas=(tf.width, tf.height),
                    output=output,
                )
                out_imgs.append(res.image)
                out_masks.append(res.mask)
            prog.step()
        return io.NodeOutput(numpy_to_image_batch(out_imgs), numpy_to_mask_batch(out_masks))


NODES = [SyntheticPairs, TrainPoseGAN, LoadPoseGAN, PoseGANTransfer]
