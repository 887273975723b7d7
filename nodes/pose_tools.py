"""Pose utility nodes: render, heatmaps, part masks, edit, retarget, library, load/save JSON.

Thin glue: the algorithms live in models/pose/ (render, heatmaps, parts, edit, retarget, library).
"""

from __future__ import annotations

import logging
import os

import numpy as np

import folder_paths
from comfy_api.latest import io, ui

from ..models.common.files import is_inside
from ..models.common.images import (
    check_draw_size,
    image_batch_to_numpy,
    numpy_to_image_batch,
    numpy_to_mask_batch,
    paired_batch_size,
    pick,
)
from ..models.pose import edit, heatmaps, library, parts, render, retarget
from ..models.pose.keypoints import (
    Person,
    PoseFormatError,
    PoseFrame,
    parse_pose_keypoint,
    read_frames,
    to_pose_keypoint,
)
from .common import PoseKeypoint, Schema, check_interrupted

log = logging.getLogger("poselab")

CATEGORY = "PoseLab/pose"
NO_FILE = "(none)"
STYLES = list(render.RENDER_STYLES)


class RenderPose(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return Schema(
            node_id="PoseLabRenderPose",
            display_name="Render Pose (PoseLab)",
            category=CATEGORY,
            search_aliases=[
                "draw pose",
                "skeleton image",
                "openpose render",
                "pose to image",
                "skeleton",
            ],
            description="Draw POSE_KEYPOINT as a skeleton image, every frame of the batch: the OpenPose/ControlNet "
            "style, or the COCO-17 style Stable-Pose was trained on; optionally over a photo.",
            inputs=[
                PoseKeypoint.Input("pose", tooltip="The pose(s) to draw, one image per frame."),
                io.Combo.Input(
                    "style",
                    options=STYLES,
                    default="openpose",
                    tooltip="openpose: controlnet_aux's colours and sticks (OpenPose ControlNets). "
                    "stablepose_coco17: black canvas, 16 COCO limbs in hls colours (Stable-Pose).",
                ),
                io.Int.Input(
                    "width",
                    default=0,
                    min=0,
                    max=16384,
                    step=8,
                    tooltip="Output width; 0 = the pose's canvas width (or the background's).",
                ),
                io.Int.Input(
                    "height",
                    default=0,
                    min=0,
                    max=16384,
                    step=8,
                    tooltip="Output height; 0 = the pose's canvas height (or the background's).",
                ),
                io.Boolean.Input(
                    "hands_and_face",
                    default=True,
                    tooltip="Also draw hands and face when the pose has them (openpose style).",
                ),
                io.Image.Input(
                    "background",
                    optional=True,
                    tooltip="Optional photo(s) to draw the skeleton over; its size wins over width/height.",
                ),
                io.Float.Input(
                    "opacity",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    optional=True,
                    tooltip="Skeleton opacity over the background.",
                ),
                io.Float.Input(
                    "dim_background",
                    default=0.3,
                    min=0.0,
                    max=0.95,
                    step=0.05,
                    optional=True,
                    tooltip="Darken the background first so the skeleton stands out.",
                ),
            ],
            outputs=[
                io.Image.Output(
                    display_name="image", tooltip="The skeleton image(s), one per frame."
                )
            ],
        )

    @classmethod
    def execute(
        cls,
        pose,
        style,
        width,
        height,
        hands_and_face,
        background=None,
        opacity=1.0,
        dim_background=0.3,
    ) -> io.NodeOutput:
        frames = read_frames(pose)
        kwargs = {}
        if style == "openpose":
            kwargs = {"draw_hands": hands_and_face, "draw_face": hands_and_face}
        if background is None:
            # One side given: the other follows the first frame's aspect ratio.
            if width and not height:
                height = max(1, round(frames[0].height * width / frames[0].width))
            elif height and not width:
                width = max(1, round(frames[0].width * height / frames[0].height))
            images = render.render_frames(frames, style, width or None, height or None, **kwargs)
            return io.NodeOutput(numpy_to_image_batch(images))
        photos = image_batch_to_numpy(background)
        n = paired_batch_size({"pose": len(frames), "background": len(photos)})
        h, w = photos[0].shape[:2]
        out = []
        for i in range(n):
            check_interrupted()
            sk = render.RENDER_STYLES[style](pick(frames, i), w, h, **kwargs)
            out.append(render.overlay_pose(pick(photos, i), sk, opacity, dim_background))
        return io.NodeOutput(numpy_to_image_batch(out))


def _person_bodies(frame: PoseFrame, person: int) -> list[np.ndarray]:
    if person < 0:
        return [p.body for p in frame.people]
    if person >= len(frame.people):
        return []
    return [frame.people[person].body]


class PoseHeatmaps(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return Schema(
            node_id="PoseLabPoseHeatmaps",
            display_name="Pose Heatmaps (PoseLab)",
            category=CATEGORY,
            search_aliases=["keypoint heatmaps", "joint heatmaps", "gaussian heatmaps"],
            description="Gaussian joint heatmaps (the Deformable GAN's 18-channel pose input) as a colour preview and a "
            "mask of their maximum.",
            inputs=[
                PoseKeypoint.Input(
                    "pose", tooltip="The pose(s); one preview and one mask per frame."
                ),
                io.Float.Input(
                    "sigma",
                    default=6.0,
                    min=0.5,
                    max=100.0,
                    step=0.5,
                    tooltip="Gaussian width in pixels (Siarohin et al. use 6 at 256 px).",
                ),
                io.Int.Input(
                    "person",
                    default=-1,
                    min=-1,
                    max=64,
                    tooltip="Which person (0 = first); -1 = everyone.",
                ),
            ],
            outputs=[
                io.Image.Output(
                    display_name="preview", tooltip="Each joint's heatmap in its OpenPose colour."
                ),
                io.Mask.Output(
                    display_name="mask",
                    tooltip="Maximum over joints (and people), 1 at every joint.",
                ),
            ],
        )

    @classmethod
    def execute(cls, pose, sigma, person) -> io.NodeOutput:
        frames = read_frames(pose)
        colours = np.asarray(render.OPENPOSE_COLORS, np.float32) / 255.0
        previews, masks = [], []
        for frame in frames:
            check_draw_size(
                len(frames), frame.height, frame.width, "Pose Heatmaps", channels=18 + 4
            )
            check_interrupted()
            hm = np.zeros((18, frame.height, frame.width), np.float32)
            for body in _person_bodies(frame, person):
                check_interrupted()  # per person: a frame may hold a crowd
                heatmaps.gaussian_heatmaps(body, frame.height, frame.width, sigma, out=hm)
            # Per pixel, the colour of the strongest joint scaled by its value.
            top = hm.argmax(0)
            previews.append(colours[top] * hm.max(0)[..., None])
            masks.append(hm.max(0))
        return io.NodeOutput(
            numpy_to_image_batch(_same_size(previews)), numpy_to_mask_batch(_same_size(masks))
        )


def _same_size(arrays: list[np.ndarray]) -> list[np.ndarray]:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(
            f"the pose frames have different canvas sizes {sorted(s[:2] for s in shapes)}; "
            "render them separately or give them one canvas"
        )
    return arrays


class PartMasks(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return Schema(
            node_id="PoseLabPartMasks",
            display_name="Body Part Masks (PoseLab)",
            category=CATEGORY,
            search_aliases=["limb masks", "body part masks", "part segmentation"],
            description="The 10 body-part masks of Siarohin et al. (torso, head, upper/lower arms and legs) for one "
            "person, in the pose's frame. Output order per frame: "
            + ", ".join(parts.PART_NAMES)
            + ".",
            inputs=[
                PoseKeypoint.Input("pose", tooltip="The pose(s); 10 masks per frame."),
                io.Int.Input(
                    "person", default=0, min=0, max=64, tooltip="Which person (0 = first)."
                ),
                io.Combo.Input(
                    "torso",
                    options=list(parts.TORSO_MASK_MODES),
                    default="polygon",
                    tooltip="polygon: shoulders-hips quadrilateral with a margin; box: its bounding box; "
                    "ones: the whole image (the paper's code).",
                ),
            ],
            outputs=[
                io.Mask.Output(
                    display_name="masks",
                    tooltip="Batch of frames x 10 masks, parts in the order listed in the description.",
                )
            ],
        )

    @classmethod
    def execute(cls, pose, person, torso) -> io.NodeOutput:
        out = []
        frames = read_frames(pose)
        for frame in frames:
            check_draw_size(
                len(frames),
                frame.height,
                frame.width,
                "Body Part Masks",
                channels=len(parts.PART_NAMES),
            )
            bodies = _person_bodies(frame, person)
            if not bodies:
                log.warning(
                    "PoseLab part masks: frame has no person %d; its masks are empty", person
                )
                body = np.zeros((18, 3), np.float32)
            else:
                body = bodies[0]
            out.extend(parts.part_masks(body, frame.height, frame.width, torso=torso))
        return io.NodeOutput(numpy_to_mask_batch(_same_size(out)))


class EditPose(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return Schema(
            node_id="PoseLabEditPose",
            display_name="Edit Pose (PoseLab)",
            category=CATEGORY,
            search_aliases=[
                "pose edit",
                "rotate limb",
                "bend arm",
                "mirror pose",
                "scale pose",
                "skeleton",
            ],
            description="Scale, move, mirror and bend poses: rotating a limb moves everything below it (the upper arm "
            "takes the forearm and hand along). Order: rotate, mirror, scale, move. Hands and face follow.",
            inputs=[
                PoseKeypoint.Input(
                    "pose", tooltip="The pose(s) to edit; every frame is edited the same way."
                ),
                io.String.Input(
                    "people",
                    default="all",
                    tooltip="Which people to edit: 'all', or indices like '0' or '0, 2' (others unchanged).",
                ),
                io.Combo.Input(
                    "limb",
                    options=["none", *edit.ROTATABLE],
                    default="none",
                    tooltip="Limb to rotate about its joint (e.g. right_upper_arm turns about the shoulder).",
                ),
                io.Float.Input(
                    "angle",
                    default=0.0,
                    min=-360.0,
                    max=360.0,
                    step=1.0,
                    tooltip="Limb rotation in degrees, counter-clockwise as seen on the image.",
                ),
                io.Boolean.Input(
                    "mirror",
                    default=False,
                    tooltip="Flip horizontally and swap left/right joints, hands and face points.",
                ),
                io.Combo.Input(
                    "mirror_axis",
                    options=["person", "canvas"],
                    default="person",
                    tooltip="Mirror about the person's centre (stays in place) or the canvas centre.",
                ),
                io.Float.Input(
                    "scale",
                    default=1.0,
                    min=0.05,
                    max=20.0,
                    step=0.05,
                    tooltip="Size factor about the centre below.",
                ),
                io.Combo.Input(
                    "scale_center",
                    options=["person", "canvas"],
                    default="person",
                    tooltip="Scale about the person's bounding-box centre or the canvas centre.",
                ),
                io.Float.Input(
                    "move_x",
                    default=0.0,
                    min=-16384.0,
                    max=16384.0,
                    step=1.0,
                    tooltip="Move right by this many pixels (negative = left).",
                ),
                io.Float.Input(
                    "move_y",
                    default=0.0,
                    min=-16384.0,
                    max=16384.0,
                    step=1.0,
                    tooltip="Move down by this many pixels (negative = up).",
                ),
                io.Boolean.Input(
                    "keep_only_selected",
                    default=False,
                    tooltip="Drop the people not selected in 'people' from the output.",
                ),
            ],
            outputs=[PoseKeypoint.Output(display_name="pose", tooltip="The edited pose(s).")],
        )

    @classmethod
    def execute(
        cls,
        pose,
        people,
        limb,
        angle,
        mirror,
        mirror_axis,
        scale,
        scale_center,
        move_x,
        move_y,
        keep_only_selected,
    ) -> io.NodeOutput:
        frames = read_frames(pose)
        # An index no frame has is a mistake worth an error; one that only some frames of a
        # video lack is skipped in those frames.
        edit.parse_person_selection(people, max(len(f.people) for f in frames) or 1)
        out = []
        for frame in frames:
            edited = edit.edit_frame(
                frame,
                person=people,
                scale=scale,
                center=scale_center,
                dx=move_x,
                dy=move_y,
                mirror=mirror,
                mirror_axis=mirror_axis,
                limb=limb,
                angle=angle,
                strict=False,
            )
            if keep_only_selected:
                edited = edit.select_people(edited, people, strict=False)
            out.append(edited)
        return io.NodeOutput(to_pose_keypoint(out))


class RetargetPose(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return Schema(
            node_id="PoseLabRetargetPose",
            display_name="Retarget Pose (PoseLab)",
            category=CATEGORY,
            search_aliases=["pose transfer", "bone lengths", "retarget skeleton", "skeleton"],
            description="Give the source person the target pose with the source's own bone lengths (arm, leg, head "
            "size), placed where the source person stands.",
            inputs=[
                PoseKeypoint.Input(
                    "source_pose", tooltip="The person to repose (their proportions and position)."
                ),
                PoseKeypoint.Input("target_pose", tooltip="The pose to take (joint directions)."),
                io.Combo.Input(
                    "anchor",
                    options=list(retarget.ANCHORS),
                    default="source",
                    tooltip="source: on the source person's torso; target: where the target person is; "
                    "neck: the neck on the source's neck.",
                ),
            ],
            outputs=[
                PoseKeypoint.Output(
                    display_name="pose", tooltip="The retargeted pose on the source's canvas."
                )
            ],
        )

    @classmethod
    def execute(cls, source_pose, target_pose, anchor) -> io.NodeOutput:
        src = read_frames(source_pose, "source_pose")
        tgt = read_frames(target_pose, "target_pose")
        n = paired_batch_size({"source_pose": len(src), "target_pose": len(tgt)})
        return io.NodeOutput(
            to_pose_keypoint(
                [retarget.retarget_frame(pick(src, i), pick(tgt, i), anchor) for i in range(n)]
            )
        )


FIT_MODES = ("none", "source position and size", "source bone lengths")


class PoseFromLibrary(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return Schema(
            node_id="PoseLabPoseFromLibrary",
            display_name="Pose From Library (PoseLab)",
            category=CATEGORY,
            search_aliases=["pose preset", "named pose", "text to pose", "t-pose", "skeleton"],
            description="A named target pose chosen by text (fuzzy: 'raise both arms' finds 'arms raised'). Poses: "
            + ", ".join(library.pose_names())
            + ".",
            inputs=[
                io.String.Input(
                    "text",
                    default="arms raised",
                    tooltip="Describe the pose; the closest library pose is used (the error lists them all).",
                ),
                io.Int.Input(
                    "width",
                    default=512,
                    min=16,
                    max=16384,
                    step=8,
                    tooltip="Canvas width (ignored when a source pose is connected: its canvas is used).",
                ),
                io.Int.Input(
                    "height",
                    default=512,
                    min=16,
                    max=16384,
                    step=8,
                    tooltip="Canvas height (ignored when a source pose is connected).",
                ),
                io.Combo.Input(
                    "fit",
                    options=list(FIT_MODES),
                    default="source position and size",
                    tooltip="With a source pose: place the library pose on the source person (position "
                    "and size), or also give it their bone lengths (retarget).",
                ),
                PoseKeypoint.Input(
                    "source_pose",
                    optional=True,
                    tooltip="Optional person to fit the pose to (first person of each frame).",
                ),
            ],
            outputs=[
                PoseKeypoint.Output(
                    display_name="pose", tooltip="The library pose (one frame per source frame)."
                ),
                io.String.Output(
                    display_name="pose_name", tooltip="Which library pose the text matched."
                ),
            ],
        )

    @classmethod
    def execute(cls, text, width, height, fit, source_pose=None) -> io.NodeOutput:
        name = library.find_pose(text)
        if source_pose is None:
            return io.NodeOutput(to_pose_keypoint([library.get_pose(name, width, height)]), name)
        out = []
        for frame in read_frames(source_pose, "source_pose"):
            lib = library.get_pose(name, frame.width, frame.height)
            if not frame.people or fit == "none":
                if not frame.people:
                    log.warning(
                        "PoseLab library pose: a source frame has no person; the pose is not fitted"
                    )
                out.append(lib)
                continue
            src = frame.people[0]
            if fit == "source bone lengths":
                person = retarget.retarget_person(src, lib.people[0], "source")
            else:
                person = Person(body=library.fit_to_person(lib.people[0].body, src.body))
            out.append(PoseFrame(frame.width, frame.height, [person]))
        return io.NodeOutput(to_pose_keypoint(out), name)


MAX_POSE_JSON_BYTES = 64 * 2**20  # far above any pose batch; a larger file is not a pose


def input_json_files() -> list[str]:
    """.json files in the input folder that Load Pose JSON will read (symlinks leaving the folder
    are not listed, as they would only be refused when chosen)."""
    base = folder_paths.get_input_directory()
    found = []
    for root, _dirs, files in os.walk(base):
        for f in files:
            path = os.path.join(root, f)
            if f.lower().endswith(".json") and is_inside(base, path):
                found.append(os.path.relpath(path, base).replace(os.sep, "/"))
    return sorted(found)


class LoadPoseJSON(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return Schema(
            node_id="PoseLabLoadPoseJSON",
            display_name="Load Pose JSON (PoseLab)",
            category=CATEGORY,
            search_aliases=["openpose json", "load keypoints", "import pose"],
            description="POSE_KEYPOINT from pasted JSON or a .json file in ComfyUI's input folder (OpenPose / "
            "controlnet_aux format, pixel or normalised coordinates).",
            inputs=[
                io.String.Input(
                    "json_text",
                    multiline=True,
                    default="",
                    tooltip="Pose JSON pasted here; used when no file is chosen.",
                ),
                io.Combo.Input(
                    "file",
                    options=[NO_FILE, *input_json_files()],
                    default=NO_FILE,
                    tooltip="A .json file in ComfyUI's input folder (wins over the text).",
                ),
            ],
            outputs=[PoseKeypoint.Output(display_name="pose", tooltip="The loaded pose(s).")],
        )

    @classmethod
    def execute(cls, json_text, file) -> io.NodeOutput:
        if file and file != NO_FILE:
            base = folder_paths.get_input_directory()
            path = os.path.join(base, file)
            if not is_inside(base, path) or not os.path.isfile(path):
                raise FileNotFoundError(
                    f"pose JSON file '{file}' not found in the input folder {base}"
                )
            where = f"file '{file}'"
            if os.path.getsize(path) > MAX_POSE_JSON_BYTES:
                raise PoseFormatError(
                    f"cannot read the pose JSON in {where}: it is larger than "
                    f"{MAX_POSE_JSON_BYTES // 2**20} MB"
                )
            with open(path, "rb") as fh:
                text = fh.read()  # bytes: parse_pose_keypoint says where non-UTF-8 text breaks
        else:
            where = "the json_text box"
            text = json_text
        if not text or not text.strip():  # (bytes or str)
            raise ValueError(
                "no pose JSON given: paste it into json_text or choose a file from the input folder"
            )
        try:
            frames = parse_pose_keypoint(text)
        except PoseFormatError as exc:
            raise PoseFormatError(f"cannot read the pose JSON in {where}: {exc}") from None
        return io.NodeOutput(to_pose_keypoint(frames))


class SavePoseJSON(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return Schema(
            node_id="PoseLabSavePoseJSON",
            display_name="Save Pose JSON (PoseLab)",
            category=CATEGORY,
            search_aliases=["openpose json", "save keypoints", "export pose"],
            description="Write POSE_KEYPOINT to ComfyUI's output folder as controlnet_aux-compatible JSON. Never "
            "overwrites: an existing name gets a _0001, _0002... suffix.",
            is_output_node=True,
            inputs=[
                PoseKeypoint.Input("pose", tooltip="The pose(s) to save, all frames in one file."),
                io.String.Input(
                    "filename_prefix",
                    default="poselab/pose",
                    tooltip="File name (and optional subfolder) inside the output folder; .json is added.",
                ),
            ],
            outputs=[io.String.Output(display_name="path", tooltip="Where the file was written.")],
        )

    @classmethod
    def execute(cls, pose, filename_prefix) -> io.NodeOutput:
        frames = parse_pose_keypoint(pose)
        base = folder_paths.get_output_directory()
        prefix = (filename_prefix or "poselab/pose").strip().removesuffix(".json") or "pose"
        target = os.path.join(base, prefix + ".json")
        name = os.path.basename(prefix.replace("\\", "/"))
        if not is_inside(base, target) or not name.strip(". "):
            raise ValueError(
                f"filename_prefix '{filename_prefix}' is not a file name inside the output folder; use a "
                "relative name like 'poses/my_pose'"
            )
        written = library.save_pose_json(frames, target, indent=1)
        rel = os.path.relpath(written, base).replace(os.sep, "/")
        return io.NodeOutput(str(written), ui=ui.PreviewText(f"saved {rel}"))


NODES = [
    RenderPose,
    PoseHeatmaps,
    PartMasks,
    EditPose,
    RetargetPose,
    PoseFromLibrary,
    LoadPoseJSON,
    SavePoseJSON,
]
