"""ComfyUI glue: one module per stage, each exporting ``NODES``; this file registers them all.

A stage whose optional dependency is missing is skipped with a logged error naming the
missing package, and the rest of the pack keeps working (the controlnet_aux pattern).
"""

from __future__ import annotations

import importlib
import logging

from comfy_api.latest import ComfyExtension, io

from .model_folders import register_model_folders

log = logging.getLogger("poselab")

# Stage modules under nodes/, in menu order; each line is one stage (add yours on its own line).
STAGE_MODULES = (
    "pose",
    "pose_tools",
    "pose_editor",
    "segmentation",
    "repose",
    "posegan",
    "stable_pose",
    "onepose",
    "ip2p",
    "inversion",
    "metrics",
)


def load_stage_nodes() -> list[type[io.ComfyNode]]:
    nodes: list[type[io.ComfyNode]] = []
    for name in STAGE_MODULES:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ImportError as exc:
            # Our own module missing is a packaging bug, not a missing optional dependency.
            if exc.name and (exc.name == __name__ or exc.name.startswith(__name__ + ".")):
                raise
            log.error(
                "PoseLab: the %s nodes are unavailable: %s (install the pack's requirements.txt)",
                name,
                exc,
            )
            continue
        nodes.extend(module.NODES)
    return nodes


class PoseLabExtension(ComfyExtension):
    async def on_load(self) -> None:
        register_model_folders()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return load_stage_nodes()
