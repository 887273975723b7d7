"""PoseLab: human pose manipulation nodes for ComfyUI.

Pure V3 pack: ComfyUI calls ``comfy_entrypoint``. Nothing heavy is imported here, so the
model code under ``models/`` stays importable (and testable) without ComfyUI.
"""

WEB_DIRECTORY = "./js"


async def comfy_entrypoint():
    from .nodes import PoseLabExtension

    return PoseLabExtension()


__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
