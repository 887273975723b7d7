"""Safe loading of the metric backbones' state dicts (safetensors or weights-only pickles)."""

from __future__ import annotations

import os

import torch


def load_state_dict(path: str) -> dict[str, torch.Tensor]:
    """A flat ``name -> tensor`` dict from ``.safetensors`` or a ``torch.save``d state dict.

    Pickles are read with ``weights_only=True`` (no code execution). A checkpoint wrapping the
    weights under ``state_dict`` / ``model`` is unwrapped.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the message of a refused pickle is long; say what to do
        raise ValueError(
            f"{path}: cannot be read as a weights-only state dict ({type(exc).__name__}: {str(exc)[:200]}); "
            "re-save it with torch.save(model.state_dict(), path) or as .safetensors"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict of tensors, got {type(obj).__name__}")
    return obj
