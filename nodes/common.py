"""Small pieces every stage's nodes share: custom types, progress and interruption."""

from __future__ import annotations

import comfy.model_management
import comfy.utils
from comfy_api.latest import io

# The interchange type of comfyui_controlnet_aux; the string must match exactly to connect.
PoseKeypoint = io.Custom("POSE_KEYPOINT")


class Progress:
    """ComfyUI progress bar; every update is also a cancellation point (ComfyUI's hook)."""

    def __init__(self, total: int):
        self.total = max(int(total), 1)
        self.bar = comfy.utils.ProgressBar(self.total)

    def step(self, n: int = 1) -> None:
        self.bar.update(n)


def check_interrupted() -> None:
    """Raise ComfyUI's interruption if the user pressed cancel."""
    comfy.model_management.throw_exception_if_processing_interrupted()
