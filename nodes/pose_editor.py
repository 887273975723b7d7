"""Pose Editor node: a pose (or an empty canvas) with the edits drawn in the graph applied.

The canvas is the frontend widget in js/pose_editor.js; it stores its edits in the ``edits``
input (JSON), which this node applies with models/pose/editor_state.py, so a queued workflow
needs no browser. When it runs, the node sends its input pose and background to the widget
(like controlnet_aux's ``openpose_json``) so a detected pose can be edited. The widget reads the
skeleton tables and the pose library from one small route, ``/poselab/pose_editor/data``.
"""

from __future__ import annotations

import json
import logging
import os
import uuid

import numpy as np
from PIL import Image

import folder_paths
from comfy_api.latest import io

from ..models.common.images import (
    image_batch_to_numpy,
    numpy_to_image_batch,
    paired_batch_size,
    pick,
)
from ..models.pose import editor_state, render
from ..models.pose.keypoints import PoseFrame, parse_pose_keypoint, to_pose_keypoint
from .common import PoseKeypoint, Schema, check_interrupted

log = logging.getLogger("poselab")

DATA_ROUTE = "/poselab/pose_editor/data"
# Backgrounds go to the widget as JPEGs no larger than this (they are only a dimmed reference).
PREVIEW_MAX_SIDE = 1024


def _background_previews(photos: list[np.ndarray]) -> list[dict]:
    """Write each background to ComfyUI's temp folder (as PreviewImage does); the widget loads
    them through /view."""
    folder = folder_paths.get_temp_directory()
    os.makedirs(folder, exist_ok=True)
    run = uuid.uuid4().hex[:12]
    refs = []
    for i, rgb in enumerate(photos):
        img = Image.fromarray(rgb)
        img.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
        name = f"poselab_editor_{run}_{i:05d}.jpg"
        img.save(os.path.join(folder, name), quality=88)
        refs.append({"filename": name, "subfolder": "", "type": "temp"})
    return refs


class PoseEditor(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return Schema(
            node_id="PoseLabPoseEditor",
            display_name="Pose Editor (PoseLab)",
            category="PoseLab/pose",
            description="Edit poses by hand on a canvas in the node: drag joints (hands and face follow), rotate a limb "
            "with everything below it, add, duplicate, delete, mirror, scale and move people or pick a "
            "library pose, frame by frame. Run the workflow once to see a connected pose and background. "
            "The edits are saved in the workflow and applied without a browser; if the incoming pose "
            "changes upstream they stay as offsets on the joints you touched.",
            search_aliases=[
                "openpose editor",
                "pose editor",
                "skeleton editor",
                "skeleton",
                "edit keypoints",
                "drag joints",
                "posing",
            ],
            inputs=[
                PoseKeypoint.Input(
                    "pose",
                    optional=True,
                    tooltip="Pose(s) to start from, e.g. from Extract Pose; every frame can be edited. "
                    "Leave empty to start from an empty canvas and add people.",
                ),
                io.Image.Input(
                    "background",
                    optional=True,
                    tooltip="Photo(s) shown dimmed under the skeleton while editing (not drawn into the "
                    "output); its size is the canvas when no pose is connected.",
                ),
                io.String.Input(
                    "edits",
                    optional=True,
                    default="",
                    socketless=True,
                    dynamic_prompts=False,
                    tooltip="The edits made on the canvas (JSON, written by the editor). Empty = the input "
                    "pose unchanged.",
                ),
                io.Int.Input(
                    "width",
                    optional=True,
                    default=512,
                    min=16,
                    max=16384,
                    step=8,
                    tooltip="Canvas width when neither a pose nor a background is connected.",
                ),
                io.Int.Input(
                    "height",
                    optional=True,
                    default=512,
                    min=16,
                    max=16384,
                    step=8,
                    tooltip="Canvas height when neither a pose nor a background is connected.",
                ),
            ],
            outputs=[
                PoseKeypoint.Output(
                    display_name="pose",
                    tooltip="The edited pose(s), pixel coordinates (controlnet_aux format).",
                ),
                io.Image.Output(
                    display_name="image",
                    tooltip="The edited pose(s) drawn OpenPose-style on black (as Render Pose), with hands and face.",
                ),
            ],
        )

    @classmethod
    def execute(cls, pose=None, background=None, edits="", width=512, height=512) -> io.NodeOutput:
        state = editor_state.parse_edit_state(edits)  # a bad document fails before any work
        photos = image_batch_to_numpy(background) if background is not None else []
        if pose is not None:
            frames = parse_pose_keypoint(pose)
            if not frames:
                raise ValueError(
                    "the pose input holds no frames: connect a pose detector, the pose library or a "
                    "pose JSON loader, or leave it empty to start from a blank canvas"
                )
        elif photos:
            frames = [PoseFrame(p.shape[1], p.shape[0], []) for p in photos]
        else:
            frames = [PoseFrame(int(width), int(height), [])]
        if photos:
            n = paired_batch_size({"pose": len(frames), "background": len(photos)})
            frames = [pick(frames, i).copy() for i in range(n)]
        check_interrupted()

        edited, reports = editor_state.apply_edit_state(frames, state)
        for r in reports:
            if r.input_changed:
                log.info(
                    "PoseLab Pose Editor: frame %d's input changed since it was edited; %d edited points applied "
                    "as offsets%s",
                    r.frame,
                    r.edited_points,
                    f", edits of {r.unmatched} people not found in the new input were dropped"
                    if r.unmatched
                    else "",
                )
        image = numpy_to_image_batch(
            render.render_frames(edited, "openpose", draw_hands=True, draw_face=True)
        )
        ui = {
            "openpose_json": [json.dumps(to_pose_keypoint(frames))],
            "poselab_background": _background_previews(photos),
            "poselab_edit_report": [json.dumps([r.as_dict() for r in reports])],
        }
        return io.NodeOutput(to_pose_keypoint(edited), image, ui=ui)


def _register_data_route() -> None:
    """GET /poselab/pose_editor/data: the widget's skeleton tables and library poses. The route
    does not depend on the pack's folder name (a renamed install still works)."""
    try:
        from aiohttp import web

        from server import PromptServer

        routes = PromptServer.instance.routes
    except (ImportError, AttributeError):  # imported without a running server (scripts, tests)
        return
    tables = editor_state.widget_tables()

    @routes.get(DATA_ROUTE)
    async def pose_editor_data(request):
        return web.json_response(tables)


_register_data_route()

NODES = [PoseEditor]
