"""Runs a converted MediaPipe model: the op list of scripts/convert_mediapipe.py over its weights.

A ``.safetensors`` file holds the weights and, in its metadata, the graph as a JSON list of ops
(convolutions with explicit TFLite padding, adds, pools, reshapes, ...). :class:`OpGraph` is a
plain ``torch.nn.Module`` that executes that list in order; activations are NCHW (rank-4
tensors) and any batch size runs (the flatbuffers fixed batch 1). Outputs come back in TFLite's
layout (rank-4 outputs as NHWC) so the pipeline code reads them as MediaPipe's graphs do.

Weights stored in fp16 are the values MediaPipe ships (its models dequantise them to fp32 at
load, as here); compute is fp32. On CUDA, TF32 must be off for parity (the landmark stage is
chaotic, see the design note): :func:`run` turns it off around each call.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
FORMAT = "poselab-tflite-ops/1"
# Models that only npm's @mediapipe/pose carries: converted on request, not shipped.
OPTIONAL = {"pose_landmark_heavy", "pose_landmark_lite"}


class MissingModelFile(FileNotFoundError):
    pass


def weight_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.safetensors"


def _act(x: torch.Tensor, act: str | None) -> torch.Tensor:
    if act is None:
        return x
    if act == "relu":
        return F.relu(x)
    return F.relu6(x)


def _to_nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1) if x.dim() == 4 else x


def _to_nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2) if x.dim() == 4 else x


class OpGraph(torch.nn.Module):
    """One converted model. ``forward(x)`` takes NCHW float32 input and returns the model's
    outputs (a tuple, in the flatbuffer's output order, TFLite layout)."""

    def __init__(self, tensors: dict[str, torch.Tensor], meta: dict[str, str]):
        super().__init__()
        if meta.get("format") != FORMAT:
            raise ValueError(
                f"not a converted MediaPipe model (format {meta.get('format')!r}, expected {FORMAT!r})"
            )
        self.name = meta.get("name", "?")
        self.ops = json.loads(meta["ops"])
        self.input_info = json.loads(meta["input"])
        self.output_info = json.loads(meta["outputs"])
        self.params = torch.nn.ParameterDict()
        for key, value in tensors.items():
            self.params[key] = torch.nn.Parameter(value.float(), requires_grad=False)
        # constant operands (e.g. a bias added by ADD) are looked up by tensor id
        self.const_ids = {int(k[1:]): k for k in tensors if k.startswith("c")}

    @property
    def input_size(self) -> tuple[int, int]:
        _, h, w, _ = self.input_info["shape"]
        return h, w

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.execute(x)

    def shapes(self) -> dict[int, tuple[int, ...]]:
        """Shape (runtime layout, batch 1) of every tensor the graph computes."""
        record: dict[int, tuple[int, ...]] = {}
        h, w = self.input_size
        with torch.inference_mode():
            self.execute(
                torch.zeros(1, 3, h, w, device=next(iter(self.params.values())).device), record
            )
        return record

    def execute(self, x: torch.Tensor, record: dict | None = None) -> tuple[torch.Tensor, ...]:
        p = self.params
        env: dict[int, torch.Tensor] = {self.input_info["id"]: x}
        for i, key in self.const_ids.items():
            env[i] = p[key]
        for op in self.ops:
            t = op["type"]
            a = env[op["in"][0]]
            if record is not None:
                record[op["in"][0]] = tuple(a.shape)
            if t == "conv":
                pad = op["pad"]
                if pad[0] == pad[1] and pad[2] == pad[3]:
                    y = F.conv2d(
                        a,
                        p[op["w"]],
                        p[op["b"]] if op["b"] else None,
                        op["stride"],
                        (pad[0], pad[2]),
                        1,
                        op["groups"],
                    )
                else:
                    a = F.pad(a, (pad[2], pad[3], pad[0], pad[1]))
                    y = F.conv2d(
                        a,
                        p[op["w"]],
                        p[op["b"]] if op["b"] else None,
                        op["stride"],
                        0,
                        1,
                        op["groups"],
                    )
                y = _act(y, op.get("act"))
            elif t == "add":
                y = _act(a + env[op["in"][1]], op.get("act"))
            elif t == "mul":
                y = _act(a * env[op["in"][1]], op.get("act"))
            elif t == "relu":
                y = F.relu(a)
            elif t == "relu6":
                y = F.relu6(a)
            elif t == "sigmoid":
                y = torch.sigmoid(a)
            elif t == "hardswish":
                y = F.hardswish(a)
            elif t == "prelu":
                y = F.prelu(a, p[op["w"]])
            elif t == "pad":
                y = F.pad(a, op["pad"])
            elif t == "maxpool":
                pad = op["pad"]
                if any(pad):
                    a = F.pad(a, (pad[2], pad[3], pad[0], pad[1]), value=float("-inf"))
                y = _act(F.max_pool2d(a, op["k"], op["stride"]), op.get("act"))
            elif t == "avgpool":
                y = _act(F.avg_pool2d(a, op["k"], op["stride"]), op.get("act"))
            elif t == "reshape":
                shape = [a.shape[0]] + op["shape"][1:]
                y = _to_nhwc(a).reshape(shape)
                y = _to_nchw(y)
            elif t == "concat":
                y = _act(torch.cat([env[i] for i in op["in"]], dim=op["axis"]), op.get("act"))
            elif t == "d2s":  # TFLite DEPTH_TO_SPACE is DCR: channel index = (by * b + bx) * C + c
                b = op["block"]
                n, c, h, w = a.shape
                y = (
                    a.reshape(n, b, b, c // (b * b), h, w)
                    .permute(0, 3, 4, 1, 5, 2)
                    .reshape(n, c // (b * b), h * b, w * b)
                )
            elif t == "resize":
                y = F.interpolate(a, size=op["size"], mode="bilinear", align_corners=False)
            elif t == "mean":
                y = a.mean(dim=op["dims"], keepdim=op["keepdim"])
            elif t == "fc":
                a = _to_nhwc(a).reshape(a.shape[0], -1)
                y = _act(F.linear(a, p[op["w"]], p[op["b"]] if op["b"] else None), op.get("act"))
            elif t == "tconv":
                y = F.conv_transpose2d(a, p[op["w"]], p[op["b"]], op["stride"])
            elif t == "slice":
                y = _to_nhwc(a)
                idx = [slice(None)] + [
                    slice(b, e, s)
                    for b, e, s in zip(op["begin"][1:], op["end"][1:], op["strides"][1:])
                ]
                y = _to_nchw(y[tuple(idx)])
            else:
                raise ValueError(f"{self.name}: unknown op {t!r}")
            env[op["out"][0]] = y
            if record is not None:
                record[op["out"][0]] = tuple(y.shape)
        return tuple(_to_nhwc(env[o["id"]]) for o in self.output_info)


def load_graph(
    name: str, device: torch.device | str = "cpu", folder: Path | None = None
) -> OpGraph:
    """Load ``<folder>/<name>.safetensors`` (default: the weights shipped with the pack)."""
    from safetensors import safe_open

    path = (folder or WEIGHTS_DIR) / f"{name}.safetensors"
    if not path.is_file():
        if name in OPTIONAL:
            raise MissingModelFile(
                f"the MediaPipe model {path.name} is not in {path.parent}: it does not ship with PoseLab; convert "
                f"it from npm's @mediapipe/pose with `python scripts/convert_mediapipe.py --npm-fetch {name}` "
                "(needs npm), or use pose_model full"
            )
        raise MissingModelFile(
            f"the converted MediaPipe model {path.name} is missing from {path.parent}: it ships with PoseLab; "
            "restore it from the pack's repository (or run scripts/convert_mediapipe.py)"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # a truncated or foreign file
        raise ValueError(f"cannot read {path.name} in {path.parent}: {exc}") from None
    return OpGraph(tensors, meta).to(device).eval()


@contextlib.contextmanager
def exact_fp32():
    """No TF32 on CUDA (parity with MediaPipe's fp32 CPU kernels needs full fp32 convs)."""
    if not torch.cuda.is_available():
        yield
        return
    conv, mm = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = conv
        torch.backends.cuda.matmul.allow_tf32 = mm


def run(graph: OpGraph, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.inference_mode(), exact_fp32():
        return graph(x)


__all__ = [
    "OpGraph",
    "load_graph",
    "run",
    "weight_path",
    "MissingModelFile",
    "WEIGHTS_DIR",
    "exact_fp32",
]
