"""Segmentation nodes: person mask (MediaPipe or SAM), background fill, feathered composite.

Thin glue over models/segmentation/ (masks.py, sam.py, fill.py).
"""

from __future__ import annotations

import logging

import numpy as np

from comfy_api.latest import io

from ..models.common.images import (
    image_batch_to_numpy,
    mask_batch_to_numpy,
    numpy_to_image_batch,
    numpy_to_mask_batch,
    paired_batch_size,
    pick,
)
from ..models.pose.keypoints import has_joint_on_canvas, parse_pose_keypoint, scaled_bodies
from ..models.segmentation import fill, masks
from .common import PoseKeypoint, Progress
from .model_folders import list_model_files, reading_model, resolve_model_file

log = logging.getLogger("poselab")

BACKENDS = ["mediapipe", "sam"]
SAM_FOLDER = "sams"
SAM_DEFAULT = "sam_vit_b_01ec64.pth"


def _sam_options() -> list[str]:
    """Files in models/sams, with the usual name always listed so a prompt naming it passes
    validation and fails at run time with an error saying where to put the file."""
    try:
        files = list_model_files(SAM_FOLDER)
    except Exception:  # a broken extra_model_paths.yaml must not hide the node
        files = []
    return [SAM_DEFAULT] + sorted(f for f in files if f != SAM_DEFAULT)


def _on_image(bodies: list[np.ndarray], index: int, w: int, h: int) -> bool:
    return index < len(bodies) and has_joint_on_canvas(bodies[index], w, h)


class PersonMask(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PoseLabPersonMask",
            display_name="Person Mask (PoseLab)",
            category="PoseLab/segmentation",
            description="Mask of a person in each image. mediapipe runs offline with MediaPipe's segmentation models, "
            "which ship converted inside PoseLab (no mediapipe package needed); sam needs a Segment "
            "Anything checkpoint in models/sams and is prompted with the person's keypoints.",
            inputs=[
                io.Image.Input("image", tooltip="Photo(s) to segment."),
                io.Combo.Input(
                    "backend",
                    options=BACKENDS,
                    default="mediapipe",
                    tooltip="mediapipe: embedded, fast. sam: Segment Anything prompted with the person's "
                    "joints and box (needs the pose); sharper edges, slow on CPU (~20 s for vit_b).",
                ),
                PoseKeypoint.Input(
                    "pose",
                    optional=True,
                    tooltip="Poses of the image(s) (e.g. from Extract Pose): restricts the mask to one "
                    "person. Required for sam.",
                ),
                io.Int.Input(
                    "person",
                    default=0,
                    min=-1,
                    max=63,
                    optional=True,
                    tooltip="Which person of the pose (0 = first, the largest for the mediapipe pose "
                    "extractor); -1 = everybody (mediapipe only).",
                ),
                io.Combo.Input(
                    "mediapipe_model",
                    options=list(masks.MEDIAPIPE_MODELS),
                    default="pose",
                    optional=True,
                    tooltip="pose: the pose model's segmentation, one full body at a time (better legs "
                    "and arms; without a pose, the most prominent person). selfie: the "
                    "selfie-segmentation model, every person at once.",
                ),
                io.Combo.Input(
                    "sam_model",
                    options=_sam_options(),
                    default=SAM_DEFAULT,
                    optional=True,
                    tooltip="Segment Anything checkpoint in models/sams (vit_b/l/h; the type is read from the file).",
                ),
            ],
            outputs=[
                io.Mask.Output(
                    display_name="mask",
                    tooltip="The person's mask, 1 = person, soft edges (mediapipe).",
                )
            ],
        )

    @classmethod
    def execute(
        cls, image, backend, pose=None, person=0, mediapipe_model="pose", sam_model=SAM_DEFAULT
    ) -> io.NodeOutput:
        images = image_batch_to_numpy(image)
        frames = parse_pose_keypoint(pose) if pose is not None else None
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        sam_net = None
        if backend == "sam":
            if frames is None:
                raise ValueError(
                    "the sam backend is prompted with the person's keypoints: connect a pose (e.g. from Extract Pose)"
                )
            if person < 0:
                raise ValueError("the sam backend segments one person: set person to 0 or more")
            from ..models.segmentation import sam

            path = resolve_model_file(SAM_FOLDER, sam_model)
            with reading_model(SAM_FOLDER, sam_model):
                sam_net = sam.load_sam(path)
        n = paired_batch_size(
            {"image": len(images), "pose": len(frames) if frames is not None else None}
        )
        import comfy.model_management

        device = comfy.model_management.get_torch_device()
        out = []
        missing = []
        progress = Progress(n)
        for i in range(n):
            rgb = pick(images, i)
            h, w = rgb.shape[:2]
            bodies = (
                scaled_bodies(pick(frames, i), w, h, np.float32) if frames is not None else None
            )
            if bodies is not None and person >= 0 and not _on_image(bodies, person, w, h):
                # nobody to segment in this image: an empty mask, unless the user asked for a person
                # that no image has (then the index is wrong, not the frame)
                missing.append(i)
                out.append(np.zeros((h, w), np.float32))
                progress.step()
                continue
            if sam_net is not None:
                from ..models.segmentation import sam

                mask = sam.sam_person_mask(sam_net, rgb, bodies, person)
            elif bodies is None:
                mask = masks.person_mask_mediapipe(rgb, model=mediapipe_model, device=device)
            elif person < 0:
                mask = np.zeros((h, w), np.float32)
                for j in range(len(bodies)):
                    if not _on_image(bodies, j, w, h):
                        continue
                    np.maximum(
                        mask,
                        masks.person_mask_mediapipe(
                            rgb, bodies, j, model=mediapipe_model, device=device
                        ),
                        out=mask,
                    )
            else:
                mask = masks.person_mask_mediapipe(
                    rgb, bodies, person, model=mediapipe_model, device=device
                )
            out.append(mask)
            progress.step()
        if missing:
            counts = [len(pick(frames, i).people) for i in missing]
            if len(missing) == n and person > 0 and any(counts):
                raise ValueError(
                    f"person {person} is out of range: the poses have {max(counts)} people at most "
                    f"(use 0..{max(counts) - 1})"
                )
            log.warning(
                "PoseLab Person Mask: no person %d on image(s) %s; their masks are empty",
                person,
                ", ".join(map(str, missing)),
            )
        return io.NodeOutput(numpy_to_mask_batch(out))


class FillBackground(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PoseLabFillBackground",
            display_name="Fill Background (PoseLab)",
            category="PoseLab/segmentation",
            description="Remove what the mask covers (e.g. a person) by classical OpenCV inpainting. Fast and "
            "offline; large regions come out smooth and blurry.",
            inputs=[
                io.Image.Input("image", tooltip="Photo(s) to fill."),
                io.Mask.Input("mask", tooltip="What to remove (1 = fill); same size as the image."),
                io.Combo.Input(
                    "method",
                    options=list(fill.METHODS),
                    default="telea",
                    tooltip="telea: fast marching (Telea 2004); ns: Navier-Stokes. Similar results.",
                ),
                io.Int.Input(
                    "dilation",
                    default=12,
                    min=0,
                    max=256,
                    tooltip="Grow the mask by this many pixels first, to cover the halo segmentation leaves.",
                ),
                io.Int.Input(
                    "radius",
                    default=5,
                    min=1,
                    max=64,
                    optional=True,
                    tooltip="Neighbourhood the inpainting looks at, in pixels of the full image.",
                ),
                io.Int.Input(
                    "max_side",
                    default=512,
                    min=0,
                    max=8192,
                    step=64,
                    optional=True,
                    tooltip="Inpaint at most this size (long side) and upsample only the filled region: "
                    "~4x faster at 720p. 0 = full resolution.",
                ),
            ],
            outputs=[
                io.Image.Output(
                    display_name="image", tooltip="The image with the masked region filled in."
                )
            ],
        )

    @classmethod
    def execute(cls, image, mask, method, dilation, radius=5, max_side=512) -> io.NodeOutput:
        images = image_batch_to_numpy(image)
        ms = mask_batch_to_numpy(mask)
        n = paired_batch_size({"image": len(images), "mask": len(ms)})
        out = []
        progress = Progress(n)
        for i in range(n):
            out.append(
                fill.fill_background(
                    pick(images, i),
                    pick(ms, i),
                    method=method,
                    dilation=dilation,
                    radius=radius,
                    max_side=max_side,
                )
            )
            progress.step()
        return io.NodeOutput(numpy_to_image_batch(out))


class Composite(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PoseLabComposite",
            display_name="Composite (PoseLab)",
            category="PoseLab/segmentation",
            description="Paste the foreground over the background where the mask is set, with feathered edges.",
            inputs=[
                io.Image.Input("foreground", tooltip="What to paste (e.g. a reposed person)."),
                io.Mask.Input("mask", tooltip="Where the foreground shows (1 = foreground)."),
                io.Image.Input(
                    "background", tooltip="What to paste onto; same size as the foreground."
                ),
                io.Float.Input(
                    "feather",
                    default=3.0,
                    min=0.0,
                    max=100.0,
                    step=0.5,
                    tooltip="Gaussian blur (sigma, pixels) of the mask edge; 0 = hard edge.",
                ),
            ],
            outputs=[io.Image.Output(display_name="image", tooltip="The composite.")],
        )

    @classmethod
    def execute(cls, foreground, mask, background, feather) -> io.NodeOutput:
        fgs = image_batch_to_numpy(foreground)
        ms = mask_batch_to_numpy(mask)
        bgs = image_batch_to_numpy(background)
        n = paired_batch_size({"foreground": len(fgs), "mask": len(ms), "background": len(bgs)})
        out = []
        progress = Progress(n)
        for i in range(n):
            out.append(fill.composite(pick(fgs, i), pick(ms, i), pick(bgs, i), feather=feather))
            progress.step()
        return io.NodeOutput(numpy_to_image_batch(out))


NODES = [PersonMask, FillBackground, Composite]
