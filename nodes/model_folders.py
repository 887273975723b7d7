"""Model folders under ComfyUI's ``models/`` that this pack reads, registered with ``folder_paths``.

Files are looked up only here (honouring ``extra_model_paths.yaml``) and nothing is ever
downloaded: a missing file gives an error that names the folder to put it in.
"""

from __future__ import annotations

import contextlib
import os

import comfy.model_management
import folder_paths

WEIGHT_EXTENSIONS = {".safetensors", ".pt", ".pth", ".bin", ".onnx", ".ckpt"}

# folder name -> what goes there (used in error messages and the README)
MODEL_FOLDERS = {
    "openpose": "OpenPose body/hand/face weights for controlnet-aux: body_pose_model.pth, hand_pose_model.pth, facenet.pth",
    "sams": "Segment Anything checkpoints (sam_vit_b_01ec64.pth, sam_vit_l_0b3195.pth, sam_vit_h_4b8939.pth)",
    "posegan": "Deformable-GAN checkpoints (.safetensors written by the PoseLab trainer)",
    "stable_pose": "Stable-Pose adapters for SD1.5 (.safetensors from the PoseLab trainer, or a released checkpoint's stable_pose_adapter.* weights)",
    "vgg": "torchvision VGG19 ImageNet weights (vgg19-dcbb9e9d.pth or a .safetensors of its state dict) for the Deformable GAN's nearest-neighbour loss",
    "lpips": "LPIPS backbone weights (alexnet/vgg16 torchvision state dicts) and linear layers",
    "inception": "Inception-v3 weights for FID/KID (pt_inception-2015-12-05 .pth)",
    "insightface": "insightface model packs (e.g. buffalo_l/ with det_10g.onnx and w600k_r50.onnx; antelopev2/ in "
    "insightface/models/ as the InstantID pack expects)",
    "ipadapter": "IP-Adapter weights, the IPAdapter_plus folder (ip-adapter_sd15.safetensors, ip-adapter-plus_sd15.safetensors, "
    "ip-adapter_sdxl_vit-h.safetensors; .bin files load safely too)",
    "instantid": "InstantID's ip-adapter.bin (face resampler + SDXL attention weights), the ComfyUI_InstantID folder",
}


def register_model_folders() -> None:
    for name in MODEL_FOLDERS:
        default = os.path.join(folder_paths.models_dir, name)
        if name in folder_paths.folder_names_and_paths:
            paths, exts = folder_paths.folder_names_and_paths[name]
            if default not in paths:
                paths.append(default)
            folder_paths.folder_names_and_paths[name] = (paths, set(exts) | WEIGHT_EXTENSIONS)
        else:
            folder_paths.folder_names_and_paths[name] = ([default], set(WEIGHT_EXTENSIONS))


class MissingModelError(FileNotFoundError):
    """A model file the user must provide; the message says which and where."""


class ModelFileError(ValueError):
    """A model file that is there but cannot be read (truncated, another format, wrong tensors)."""


# Shown in ComfyUI's error panel as "poselab.<Name>" instead of this module's file path.
MissingModelError.__module__ = ModelFileError.__module__ = "poselab"


@contextlib.contextmanager
def reading_model(folder: str, name: str):
    """Turn any failure while loading ``name`` from ``models/<folder>`` into one clear error that
    names the file and the folder (a truncated .pth otherwise surfaces as ``OSError: [Errno 22]``)."""
    try:
        yield
    except (MissingModelError, ModelFileError, comfy.model_management.InterruptProcessingException):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the loader raised, the user needs the file's name
        where = " or ".join(folder_locations(folder))
        reason = f"{type(exc).__name__}: {exc}"[:400]
        raise ModelFileError(
            f"cannot read '{name}' in {where}: {reason}. The file may be incomplete (an interrupted "
            f"download) or not the kind of file this input takes; replace it"
        ) from None


def folder_locations(folder: str) -> list[str]:
    register_model_folders()
    return list(folder_paths.get_folder_paths(folder))


def list_model_files(folder: str) -> list[str]:
    register_model_folders()
    return folder_paths.get_filename_list(folder)


def resolve_model_file(folder: str, filename: str) -> str:
    """Full path of ``filename`` inside a registered model folder, or a clear error.

    ``folder_paths.get_full_path`` already refuses names that escape the folder.
    """
    register_model_folders()
    path = folder_paths.get_full_path(folder, filename) if filename else None
    if path is None or not os.path.isfile(path):
        where = " or ".join(folder_locations(folder))
        what = MODEL_FOLDERS.get(folder, "")
        raise MissingModelError(f"model file '{filename}' not found: put it in {where} ({what})")
    return path
