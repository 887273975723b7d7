"""Classical part-warp repose node (the embedded default; no weights).

Thin glue over models/repose/part_warp.py.
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
from ..models.pose.keypoints import has_joint_on_canvas, read_frames, scaled_bodies
from ..models.repose import part_warp
from ..models.segmentation import fill, masks
from .common import PoseKeypoint, Progress

log = logging.getLogger("poselab")

ALIGN = ["source", "none"]
ON_MISSING = ["pass through", "fail"]


def _missing(src_bodies, tgt_bodies, person: int, target_person: int, w: int, h: int) -> str | None:
    """Why this frame has nobody to repose (None when it has)."""
    if not src_bodies:
        return "no person in the source pose"
    if person >= len(src_bodies):
        return f"the source pose has {len(src_bodies)} people, so no person {person}"
    if not has_joint_on_canvas(src_bodies[person], w, h):
        return f"source person {person} has no joint on the image"
    if not tgt_bodies:
        return "no person in the target pose"
    if target_person >= len(tgt_bodies):
        return f"the target pose has {len(tgt_bodies)} people, so no target_person {target_person}"
    if not (tgt_bodies[target_person][:, 2] > 0).any():
        return f"target person {target_person} has no joints"
    return None


class PartWarpRepose(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PoseLabPartWarpRepose",
            display_name="Part-Warp Repose (PoseLab)",
            category="PoseLab/repose",
            description="Move a person into a new pose by warping each body part (torso, head, 8 limb segments) "
            "with its own affine transform, over an inpainted background. Classical and offline: it "
            "keeps the person's pixels but cannot invent what the photo does not show (a turned head, "
            "a hidden arm, the back of a person).",
            inputs=[
                io.Image.Input("image", tooltip="The source photo(s) with the person to repose."),
                PoseKeypoint.Input(
                    "source_pose",
                    tooltip="Pose(s) of the source photo(s) (e.g. Extract Pose on the image).",
                ),
                PoseKeypoint.Input(
                    "target_pose",
                    tooltip="The pose(s) to put the person in (from another photo, the library, an edit).",
                ),
                io.Int.Input(
                    "person",
                    default=0,
                    min=0,
                    max=63,
                    tooltip="Which person of the source pose to repose (0 = first); the others stay as they are.",
                ),
                io.Int.Input(
                    "target_person",
                    default=0,
                    min=0,
                    max=63,
                    optional=True,
                    tooltip="Which person of the target pose gives the pose (0 = first).",
                ),
                io.Combo.Input(
                    "align",
                    options=ALIGN,
                    default="source",
                    optional=True,
                    tooltip="source: move and scale the target pose onto the source person (torso centre "
                    "and size), for poses from another photo. none: use the target pose where it "
                    "is (it must be drawn on this image's canvas).",
                ),
                io.Boolean.Input(
                    "retarget",
                    default=False,
                    optional=True,
                    tooltip="Give the target pose the source person's bone lengths first (and place it "
                    "on the source person), so their proportions are kept. Overrides align.",
                ),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="The source person's mask (e.g. Person Mask). Without it, MediaPipe's pose "
                    "model segments the chosen person.",
                ),
                io.Float.Input(
                    "feather",
                    default=2.0,
                    min=0.0,
                    max=50.0,
                    step=0.5,
                    optional=True,
                    tooltip="Soften the pasted person's edge inwards by this Gaussian sigma (pixels).",
                ),
                io.Combo.Input(
                    "fill_method",
                    options=list(fill.METHODS),
                    default="telea",
                    optional=True,
                    tooltip="OpenCV inpainting for the background where the person was.",
                ),
                io.Int.Input(
                    "fill_dilation",
                    default=12,
                    min=0,
                    max=256,
                    optional=True,
                    tooltip="Grow the person's mask by this many pixels before inpainting (covers the halo).",
                ),
                io.Combo.Input(
                    "on_missing_person",
                    options=ON_MISSING,
                    default="pass through",
                    optional=True,
                    tooltip="A batch image whose pose has nobody to repose (a frame where the person is "
                    "hidden or off the image): pass it through unchanged with a warning, or fail. "
                    "A single image, or a batch where nobody is found, always fails.",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The person in the target pose."),
                io.Mask.Output(
                    display_name="mask", tooltip="Where the reposed person is in the output."
                ),
                io.Image.Output(
                    display_name="background", tooltip="The source with the person inpainted away."
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        image,
        source_pose,
        target_pose,
        person,
        target_person=0,
        align="source",
        retarget=False,
        mask=None,
        feather=2.0,
        fill_method="telea",
        fill_dilation=12,
        on_missing_person="pass through",
    ) -> io.NodeOutput:
        images = image_batch_to_numpy(image)
        src_frames = read_frames(source_pose, "source_pose")
        tgt_frames = read_frames(target_pose, "target_pose")
        user_masks = mask_batch_to_numpy(mask) if mask is not None else None
        if align not in ALIGN:
            raise ValueError(f"align must be one of {', '.join(ALIGN)}, got {align!r}")
        if on_missing_person not in ON_MISSING:
            raise ValueError(
                f"on_missing_person must be one of {', '.join(ON_MISSING)}, got {on_missing_person!r}"
            )
        n = paired_batch_size(
            {
                "image": len(images),
                "source_pose": len(src_frames),
                "target_pose": len(tgt_frames),
                "mask": len(user_masks) if user_masks is not None else None,
            }
        )
        outs, out_masks, backgrounds, skipped = [], [], [], []
        progress = Progress(n)
        for i in range(n):
            rgb = pick(images, i)
            h, w = rgb.shape[:2]
            src_bodies = scaled_bodies(pick(src_frames, i), w, h, np.float32)
            tgt_bodies = scaled_bodies(pick(tgt_frames, i), w, h, np.float32)
            why = _missing(src_bodies, tgt_bodies, person, target_person, w, h)
            if why is not None:
                if on_missing_person == "fail" or n == 1:
                    raise ValueError(
                        f"image {i}: {why}. Extract the pose of the image, pick another person index, "
                        "or (for a batch) set on_missing_person to 'pass through'"
                    )
                # a clip where the person is hidden in a few frames: those frames come out unchanged
                skipped.append(i)
                outs.append(rgb)
                out_masks.append(np.zeros((h, w), np.float32))
                backgrounds.append(rgb)
                progress.step()
                continue
            src, tgt = src_bodies[person], tgt_bodies[target_person]
            if retarget:
                from ..models.pose.retarget import retarget_body

                goal, how = retarget_body(src, tgt, anchor="source"), "none"
            else:
                goal, how = tgt, align
            if user_masks is not None:
                person_mask = pick(user_masks, i)
                if person_mask.shape != (h, w):
                    raise ValueError(
                        f"mask {i} is {person_mask.shape[1]}x{person_mask.shape[0]} but image {i} is {w}x{h}: give a mask of the image's size"
                    )
            else:
                person_mask = masks.person_mask_mediapipe(rgb, src_bodies, person, model="pose")
            result = part_warp.repose_person(
                rgb,
                src,
                goal,
                person_mask,
                feather=feather,
                fill_method=fill_method,
                fill_dilation=fill_dilation,
                align=how,
            )
            outs.append(result.image)
            out_masks.append(result.mask)
            backgrounds.append(result.background)
            progress.step()
        if len(skipped) == n:
            raise ValueError(
                f"no image of the batch has a person to repose (person {person}, target_person "
                f"{target_person}): check the poses"
            )
        if skipped:
            log.warning(
                "PoseLab Part-Warp Repose: %d of %d images had nobody to repose and pass through unchanged: %s",
                len(skipped),
                n,
                ", ".join(map(str, skipped)),
            )
        return io.NodeOutput(
            numpy_to_image_batch(outs),
            numpy_to_mask_batch(out_masks),
            numpy_to_image_batch(backgrounds),
        )


NODES = [PartWarpRepose]
