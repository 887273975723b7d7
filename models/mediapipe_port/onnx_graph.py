"""The same op list as an ONNX model, for onnxruntime on the CPU (faster than torch eager there for
these small depthwise networks, and far steadier when the cores are shared; bench/bench_pose_extraction.py).

The model is built in memory at load time from the loaded :class:`~.graph.OpGraph` (its weights
and op list), so the pack ships one set of files and needs neither the ``onnx`` package nor a
conversion step: this module writes the few ONNX protobuf messages it needs by hand (ONNX IR 8,
opset 17, which onnxruntime >= 1.13 reads). Layouts are the torch executor's (NCHW activations);
TFLite's NHWC-order reshapes become Transpose + Reshape, and rank-4 outputs come back as NHWC.
"""

from __future__ import annotations

import struct

import numpy as np

IR_VERSION = 8
OPSET = 17
FLOAT, INT64 = 1, 7  # TensorProto.DataType


# ----------------------------------------------------------------------------- protobuf wire format


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 as two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(int(value))


def _bytes(field: int, value: bytes | str) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    return _key(field, 2) + _varint(len(value)) + value


def _float(field: int, value: float) -> bytes:
    return _key(field, 5) + struct.pack("<f", value)


def _tensor(name: str, array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array)
    dtype = {np.dtype(np.float32): FLOAT, np.dtype(np.int64): INT64}[array.dtype]
    out = b"".join(_int(1, d) for d in array.shape) + _int(2, dtype) + _bytes(8, name)
    return out + _bytes(9, array.astype(array.dtype.newbyteorder("<")).tobytes())


def _attr(name: str, value) -> bytes:
    out = _bytes(1, name)
    if isinstance(value, float):
        return out + _int(20, 1) + _float(2, value)
    if isinstance(value, int):
        return out + _int(20, 2) + _int(3, value)
    if isinstance(value, str):
        return out + _int(20, 3) + _bytes(4, value)
    if isinstance(value, (list, tuple)):
        return out + _int(20, 7) + b"".join(_int(8, v) for v in value)
    raise TypeError(f"attribute {name}: {type(value).__name__}")


def _node(op_type: str, inputs: list[str], outputs: list[str], **attrs) -> bytes:
    out = b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs)
    out += _bytes(4, op_type)
    return out + b"".join(_bytes(5, _attr(k, v)) for k, v in attrs.items())


def _value_info(name: str, shape: list) -> bytes:
    dims = b"".join(_bytes(1, _bytes(2, d) if isinstance(d, str) else _int(1, d)) for d in shape)
    tensor_type = _int(1, FLOAT) + _bytes(2, dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


# ----------------------------------------------------------------------------- op list -> graph


def build_model(graph) -> bytes:
    """Serialized ONNX ModelProto of an :class:`~.graph.OpGraph` (batch dimension free)."""
    shapes = graph.shapes()
    params = {k: v.detach().float().cpu().numpy() for k, v in graph.params.items()}
    nodes: list[bytes] = []
    inits: list[bytes] = []
    counter = [0]

    def fresh(stem: str) -> str:
        counter[0] += 1
        return f"{stem}_{counter[0]}"

    def const(array: np.ndarray, stem: str = "k") -> str:
        name = fresh(stem)
        inits.append(_tensor(name, array))
        return name

    def node(op_type, inputs, **attrs) -> str:
        out = fresh(op_type.lower())
        nodes.append(_node(op_type, inputs, [out], **attrs))
        return out

    def act(x: str, kind: str | None) -> str:
        if kind == "relu":
            return node("Relu", [x])
        if kind == "relu6":
            return node("Clip", [x, const(np.array(0, np.float32)), const(np.array(6, np.float32))])
        return x

    def nhwc(x: str, rank: int) -> str:
        return node("Transpose", [x], perm=[0, 2, 3, 1]) if rank == 4 else x

    def nchw(x: str, rank: int) -> str:
        return node("Transpose", [x], perm=[0, 3, 1, 2]) if rank == 4 else x

    weight_names = {k: const(v, k) for k, v in params.items()}
    names = {graph.input_info["id"]: "input"}
    for i, key in graph.const_ids.items():
        names[i] = weight_names[key]
    for op in graph.ops:
        t = op["type"]
        x = names[op["in"][0]]
        rank = len(shapes[op["in"][0]])
        if t == "conv":
            top, bottom, left, right = op["pad"]
            ins = [x, weight_names[op["w"]]] + ([weight_names[op["b"]]] if op["b"] else [])
            k = params[op["w"]].shape[2:]
            y = act(
                node(
                    "Conv",
                    ins,
                    kernel_shape=list(k),
                    strides=op["stride"],
                    pads=[top, left, bottom, right],
                    group=op["groups"],
                    dilations=[1, 1],
                ),
                op.get("act"),
            )
        elif t == "tconv":
            k = params[op["w"]].shape[2:]
            y = node(
                "ConvTranspose",
                [x, weight_names[op["w"]], weight_names[op["b"]]],
                kernel_shape=list(k),
                strides=op["stride"],
            )
        elif t in ("add", "mul"):
            y = act(node(t.capitalize(), [x, names[op["in"][1]]]), op.get("act"))
        elif t == "relu":
            y = act(x, "relu")
        elif t == "relu6":
            y = act(x, "relu6")
        elif t == "sigmoid":
            y = node("Sigmoid", [x])
        elif t == "hardswish":
            y = node("HardSwish", [x])
        elif t == "prelu":
            slope = const(params[op["w"]].reshape(-1, 1, 1))
            y = node("PRelu", [x, slope])
        elif t == "pad":
            left, right, tp, b, c0, c1 = op["pad"]
            y = node(
                "Pad",
                [x, const(np.array([0, c0, tp, left, 0, c1, b, right], np.int64))],
                mode="constant",
            )
        elif t in ("maxpool", "avgpool"):
            top, bottom, left, right = op["pad"]
            y = act(
                node(
                    "MaxPool" if t == "maxpool" else "AveragePool",
                    [x],
                    kernel_shape=op["k"],
                    strides=op["stride"],
                    pads=[top, left, bottom, right],
                ),
                op.get("act"),
            )
        elif t == "reshape":
            out_rank = len(op["shape"])
            y = node("Reshape", [nhwc(x, rank), const(np.array(op["shape"], np.int64))])
            y = nchw(y, out_rank)
        elif t == "concat":
            y = act(node("Concat", [names[i] for i in op["in"]], axis=op["axis"]), op.get("act"))
        elif t == "d2s":
            y = node("DepthToSpace", [x], blocksize=op["block"], mode="DCR")
        elif t == "resize":
            _, _, h, w = shapes[op["in"][0]]
            scales = np.array([1.0, 1.0, op["size"][0] / h, op["size"][1] / w], np.float32)
            y = node(
                "Resize",
                [x, "", const(scales)],
                mode="linear",
                coordinate_transformation_mode="half_pixel",
            )
        elif t == "mean":
            y = node("ReduceMean", [x], axes=op["dims"], keepdims=int(op["keepdim"]))
        elif t == "fc":
            flat = node("Flatten", [nhwc(x, rank)], axis=1)
            ins = [flat, weight_names[op["w"]]] + ([weight_names[op["b"]]] if op["b"] else [])
            y = act(node("Gemm", ins, transB=1), op.get("act"))
        elif t == "slice":
            axes = list(range(1, rank))
            y = node(
                "Slice",
                [
                    nhwc(x, rank),
                    const(np.array(op["begin"][1:], np.int64)),
                    const(np.array(op["end"][1:], np.int64)),
                    const(np.array(axes, np.int64)),
                    const(np.array(op["strides"][1:], np.int64)),
                ],
            )
            y = nchw(y, rank)
        else:
            raise ValueError(f"{graph.name}: no ONNX mapping for op {t!r}")
        names[op["out"][0]] = y
    outputs = []
    for info in graph.output_info:
        src = names[info["id"]]
        rank = len(shapes[info["id"]])
        nodes.append(
            _node(
                "Transpose" if rank == 4 else "Identity",
                [src],
                [info["name"]],
                **({"perm": [0, 2, 3, 1]} if rank == 4 else {}),
            )
        )
        outputs.append(_value_info(info["name"], ["batch"] + list(info["shape"][1:])))
    h, w = graph.input_size
    body = (
        b"".join(_bytes(1, n) for n in nodes)
        + _bytes(2, graph.name)
        + b"".join(_bytes(5, i) for i in inits)
        + _bytes(11, _value_info("input", ["batch", 3, h, w]))
        + b"".join(_bytes(12, o) for o in outputs)
    )
    return (
        _int(1, IR_VERSION)
        + _bytes(2, "poselab")
        + _bytes(7, body)
        + _bytes(8, _bytes(1, "") + _int(2, OPSET))
    )


def session(graph, threads: int):
    """An onnxruntime CPU session for the graph (raises ImportError without onnxruntime)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # no busy-waiting between the many small runs: it only burns the cores other work needs
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(build_model(graph), options, providers=["CPUExecutionProvider"])
