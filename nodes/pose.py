"""Pose extraction node: photos -> POSE_KEYPOINT, skeleton image, person mask.

Thin glue over models/pose/detect_mediapipe.py (embedded default: MediaPipe's models converted
into the pack, multi-person, hands and face, no mediapipe package) and
models/pose/detect_openpose.py (controlnet-aux OpenPose with the user's weight files).
"""

from __future__ import annotations

import json
import logging

import numpy as np

from comfy_api.latest import io

from ..models.common.images import image_batch_to_numpy, numpy_to_image_batch, numpy_to_mask_batch
from ..models.pose import detect_openpose, person_finder, render
from ..models.pose.keypoints import to_pose_keypoint
from .common import PoseKeypoint, Progress, Schema
from .model_folders import list_model_files, reading_model, resolve_model_file

log = logging.getLogger("poselab")

BACKENDS = ["mediapipe", "openpose"]
OPENPOSE_FOLDER = "openpose"
POSE_MODELS = ["full", "heavy", "lite"]
_BATCH = 4  # images per batched pass of the mediapipe backend (bounds crop memory)


def _weight_options(default: str) -> list[str]:
    """Files in models/openpose, with the standard name always listed so a prompt naming it
    passes validation and fails at run time with an error saying where to put the file."""
    try:
        files = list_model_files(OPENPOSE_FOLDER)
    except Exception:  # a broken extra_model_paths.yaml must not hide the node
        files = []
    return [default] + sorted(f for f in files if f != default)


class ExtractPose(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return Schema(
            node_id="PoseLabExtractPose",
            display_name="Extract Pose (PoseLab)",
            category="PoseLab/pose",
            search_aliases=[
                "openpose",
                "dwpose",
                "pose detection",
                "pose estimation",
                "keypoints",
                "skeleton",
                "mediapipe",
            ],
            description="Find every person's pose in each image: OpenPose-18 body, 21-point hands, 70-point face. "
            "mediapipe runs offline with MediaPipe's models, which ship converted inside PoseLab (no "
            "mediapipe package needed); openpose needs the lllyasviel/Annotators weight files in "
            "models/openpose.",
            inputs=[
                io.Image.Input(
                    "image", tooltip="Photo(s); every image of the batch gets its own pose frame."
                ),
                io.Combo.Input(
                    "backend",
                    options=BACKENDS,
                    default="mediapipe",
                    tooltip="mediapipe: MediaPipe's pose, hand and face models made multi-person, shipped "
                    "with the pack, nothing to download. openpose: controlnet-aux OpenPose with "
                    "body/hand/face weights from models/openpose.",
                ),
                io.Int.Input(
                    "max_people",
                    optional=True,
                    default=10,
                    min=1,
                    max=64,
                    tooltip="Keep at most this many people per image, largest (mediapipe) or most confident (openpose) first.",
                ),
                io.Float.Input(
                    "min_score",
                    optional=True,
                    default=0.1,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip="Joints whose detector confidence is at or below this are left out (missing). "
                    "Lower keeps guessed, occluded joints; higher keeps only clearly seen ones.",
                ),
                io.Boolean.Input(
                    "openpose_hands",
                    display_name="hands",
                    optional=True,
                    default=True,
                    tooltip="Also find the 21 hand keypoints of each person (both backends).",
                ),
                io.Boolean.Input(
                    "openpose_face",
                    display_name="face",
                    optional=True,
                    default=False,
                    tooltip="Also find the 70 face keypoints of each person (both backends).",
                ),
                io.Combo.Input(
                    "body_model",
                    optional=True,
                    options=_weight_options(detect_openpose.BODY_FILE),
                    tooltip="openpose backend: body weights in models/openpose (body_pose_model.pth).",
                ),
                io.Combo.Input(
                    "hand_model",
                    optional=True,
                    options=_weight_options(detect_openpose.HAND_FILE),
                    tooltip="openpose backend: hand weights in models/openpose (hand_pose_model.pth).",
                ),
                io.Combo.Input(
                    "face_model",
                    optional=True,
                    options=_weight_options(detect_openpose.FACE_FILE),
                    tooltip="openpose backend: face weights in models/openpose (facenet.pth).",
                ),
                io.Int.Input(
                    "detect_resolution",
                    optional=True,
                    default=512,
                    min=128,
                    max=2048,
                    step=64,
                    tooltip="openpose backend: the image's short side is resized to this for detection "
                    "(coordinates come back in the original pixels).",
                ),
                io.Combo.Input(
                    "pose_model",
                    optional=True,
                    options=POSE_MODELS,
                    default="full",
                    tooltip="mediapipe backend: BlazePose landmark model. full ships with the pack; heavy "
                    "(slower, a little more accurate) and lite are converted from npm's "
                    "@mediapipe/pose by scripts/convert_mediapipe.py (see the README).",
                ),
            ],
            outputs=[
                PoseKeypoint.Output(
                    display_name="pose",
                    tooltip="One frame per image, pixel coordinates (controlnet_aux format).",
                ),
                io.Image.Output(
                    display_name="skeleton",
                    tooltip="The poses drawn OpenPose-style on black, at the image size.",
                ),
                io.Mask.Output(
                    display_name="person_mask",
                    tooltip="All found people (mediapipe: segmentation; openpose: skeleton hull).",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        image,
        backend,
        max_people=10,
        min_score=0.1,
        openpose_hands=True,
        openpose_face=False,
        body_model=detect_openpose.BODY_FILE,
        hand_model=detect_openpose.HAND_FILE,
        face_model=detect_openpose.FACE_FILE,
        detect_resolution=512,
        pose_model="full",
    ) -> io.NodeOutput:
        images = image_batch_to_numpy(image)
        if backend == "openpose":
            paths = (
                resolve_model_file(OPENPOSE_FOLDER, body_model),
                resolve_model_file(OPENPOSE_FOLDER, hand_model) if openpose_hands else None,
                resolve_model_file(OPENPOSE_FOLDER, face_model) if openpose_face else None,
            )
            names = ", ".join(n for n, p in zip((body_model, hand_model, face_model), paths) if p)
            with reading_model(OPENPOSE_FOLDER, names):
                detect_openpose.get_detector(
                    *paths
                )  # load now, so a bad file is named before any image runs
            op = detect_openpose.OpenPoseDetector(
                *paths, detect_resolution=detect_resolution, min_score=min_score
            )

            def detect(rgb):
                frame = op(rgb, max_people=max_people, hands=openpose_hands, face=openpose_face)
                return frame, person_finder.skeleton_hull_mask(frame)
        elif backend == "mediapipe":
            return cls._mediapipe(
                images, max_people, min_score, openpose_hands, openpose_face, pose_model
            )
        else:
            raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")

        results = []
        progress = Progress(len(images))
        for rgb in images:
            results.append(detect(rgb))
            progress.step()
        return cls._output(images, results, backend)

    @classmethod
    def _mediapipe(cls, images, max_people, min_score, hands, face, pose_model) -> io.NodeOutput:
        import comfy.model_management

        from ..models.pose.detect_mediapipe import MediaPipePoseDetector

        if pose_model not in POSE_MODELS:
            raise ValueError(
                f"unknown pose_model {pose_model!r}: choose one of {', '.join(POSE_MODELS)}"
            )
        detector = MediaPipePoseDetector(
            min_score=min_score,
            hands=hands,
            face=face,
            model=pose_model,
            device=comfy.model_management.get_torch_device(),
        )
        results = []
        progress = Progress(len(images))
        for start in range(
            0, len(images), _BATCH
        ):  # every chunk is one batched pass (and a cancel point)
            chunk = images[start : start + _BATCH]
            results += detector.detect_batch(chunk, max_people=max_people)
            progress.step(len(chunk))
        return cls._output(images, results, "mediapipe")

    @classmethod
    def _output(cls, images, results, backend) -> io.NodeOutput:
        frames, skeletons, masks = [], [], []
        for i, (rgb, (frame, mask)) in enumerate(zip(images, results)):
            if not frame.people:
                log.warning(
                    "PoseLab Extract Pose: no person found in image %d of %d (%dx%d, %s)",
                    i + 1,
                    len(images),
                    rgb.shape[1],
                    rgb.shape[0],
                    backend,
                )
            frames.append(frame)
            skeletons.append(render.render_openpose(frame))
            masks.append(mask.astype(np.float32))
        pose = to_pose_keypoint(frames)
        return io.NodeOutput(
            pose,
            numpy_to_image_batch(skeletons),
            numpy_to_mask_batch(masks),
            ui={"openpose_json": [json.dumps(pose)]},
        )


NODES = [ExtractPose]
