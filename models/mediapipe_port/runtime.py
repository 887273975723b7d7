"""Loaded models per device, the executor choice, and images as device tensors.

Every model runs through :func:`run_model`. On the CPU it uses onnxruntime when it is installed
(the same op list built as an ONNX graph in memory: on this 2-core CPU ~2x faster than torch
eager when idle and ~10x when other jobs share the cores, bench/bench_pose_extraction.py); on a GPU, or without onnxruntime, the torch
executor. ``POSELAB_MEDIAPIPE_BACKEND=torch`` (or ``onnxruntime``) forces one.

Models are read once per (model, device, executor) and shared; nothing else is kept between
calls, so a failed or odd call cannot leave state behind (every call builds its own crops and
results).
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np
import torch

from . import graph
from .geometry import Image

log = logging.getLogger("poselab")
_LOCK = threading.Lock()
_MODELS: dict[tuple, object] = {}
BACKENDS = ("auto", "torch", "onnxruntime")


def backend_for(device: torch.device | str) -> str:
    wanted = os.environ.get("POSELAB_MEDIAPIPE_BACKEND", "auto").strip().lower() or "auto"
    if wanted not in BACKENDS:
        raise ValueError(f"POSELAB_MEDIAPIPE_BACKEND={wanted!r}: use one of {', '.join(BACKENDS)}")
    if wanted == "torch" or torch.device(device).type != "cpu":
        return "torch"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        if wanted == "onnxruntime":
            raise ImportError(
                "POSELAB_MEDIAPIPE_BACKEND=onnxruntime but onnxruntime is not installed "
                "(pip install onnxruntime)"
            ) from None
        return "torch"
    return "onnxruntime"


class _OrtModel:
    """An onnxruntime session with the OpGraph's description (input size, outputs)."""

    def __init__(self, g: graph.OpGraph):
        from . import onnx_graph

        self.name = g.name
        self.input_size = g.input_size
        self.output_info = g.output_info
        self.session = onnx_graph.session(g, threads())

    def __call__(self, batch: torch.Tensor) -> list[np.ndarray]:
        return self.session.run(
            None, {"input": batch.detach().cpu().numpy().astype(np.float32, copy=False)}
        )


def threads() -> int:
    """onnxruntime threads per model: ``POSELAB_MEDIAPIPE_THREADS``, else torch's thread count (what
    ComfyUI set) up to 4 (these networks are small). Measured on the 2-core machine: 2 threads make
    the multi-person pass 1.5x faster when the cores are free; with other jobs on them, 1 thread is
    as fast or faster (bench/bench_pose_extraction.py), so shared machines may set it to 1."""
    value = os.environ.get("POSELAB_MEDIAPIPE_THREADS", "").strip()
    if not value:
        return max(1, min(torch.get_num_threads(), 4))
    try:
        return max(1, int(value))
    except ValueError:
        raise ValueError(
            f"POSELAB_MEDIAPIPE_THREADS={value!r}: expected a whole number of threads"
        ) from None


def get_model(name: str, device: torch.device | str = "cpu"):
    """The model ``name`` for ``device``: an :class:`~.graph.OpGraph` or an onnxruntime session."""
    device = torch.device(device)
    backend = backend_for(device)
    key = (name, str(device), backend)
    model = _MODELS.get(key)
    if model is None:
        with _LOCK:
            model = _MODELS.get(key)
            if model is None:
                g = graph.load_graph(name, "cpu" if backend == "onnxruntime" else device)
                model = _OrtModel(g) if backend == "onnxruntime" else g
                _MODELS[key] = model
    return model


def run_model(name: str, batch: torch.Tensor, max_batch: int = 32) -> list[np.ndarray]:
    """The model's outputs for an NCHW float32 batch, as float32 NumPy arrays in TFLite's layout
    (rank-4 outputs NHWC), chunked to bound memory."""
    model = get_model(name, batch.device)
    if batch.shape[0] == 0:
        return [np.zeros([0] + o["shape"][1:], np.float32) for o in model.output_info]
    chunks = []
    for i in range(0, batch.shape[0], max_batch):
        part = batch[i : i + max_batch]
        if isinstance(model, graph.OpGraph):
            chunks.append([o.float().cpu().numpy() for o in graph.run(model, part)])
        else:
            chunks.append(model(part))
    return [np.concatenate([c[k] for c in chunks]) for k in range(len(chunks[0]))]


def image_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> "Image":
    """An RGB uint8 ``(H, W, 3)`` image prepared for cropping on ``device``."""
    return Image(image, device)
