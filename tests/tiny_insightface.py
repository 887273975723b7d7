"""A tiny insightface model pack in the real ONNX formats, built with onnx.helper at test time:
an SCRFD-like detector (9 outputs: scores, boxes and 5-point landmarks for strides 8/16/32) and an
ArcFace-like 112x112 -> 512 recogniser. Random weights: they route like the real models, they do
not recognise anyone."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def build_arcface(path, seed=0):
    """(N, 3, 112, 112) -> (N, 512): strided conv, flatten, dense (the routing shape of ArcFace)."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(
            rng.standard_normal((4, 3, 8, 8)).astype(np.float32) * 0.1, "w_conv"
        ),
        numpy_helper.from_array(rng.standard_normal((784, 512)).astype(np.float32) * 0.05, "w_fc"),
        numpy_helper.from_array(np.array([0, -1], np.int64), "flat_shape"),
    ]
    nodes = [
        helper.make_node("Conv", ["data", "w_conv"], ["c"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Reshape", ["c", "flat_shape"], ["f"]),
        helper.make_node("MatMul", ["f", "w_fc"], ["fc1"]),
    ]
    graph = helper.make_graph(
        nodes,
        "arcface_tiny",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", 512])],
        inits,
    )
    _save(graph, path)


def build_scrfd(path, seed=1, faces=True):
    """SCRFD's 9 outputs (scores, boxes, 5-point landmarks for strides 8/16/32, 2 anchors each),
    non-batched. Only stride 32 scores high, so few candidates reach NMS; ``faces=False`` scores
    nothing (a detector that finds no face)."""
    rng = np.random.default_rng(seed)
    inits, nodes, outputs = [], [], []
    heads = (("score", 1), ("bbox", 4), ("kps", 10))
    for kind, ch in heads:
        for s in (8, 16, 32):
            name = f"{kind}_{s}"
            w = rng.standard_normal((2 * ch, 3, s, s)).astype(np.float32) * (0.02 / s)
            bias = np.zeros(2 * ch, np.float32)
            if kind == "score":
                bias[:] = 3.0 if s == 32 and faces else -10.0
            if kind == "bbox":
                bias[:] = 2.0  # boxes about 2 strides from each anchor
            inits += [
                numpy_helper.from_array(w, f"w_{name}"),
                numpy_helper.from_array(bias, f"b_{name}"),
                numpy_helper.from_array(np.array([-1, ch], np.int64), f"shape_{name}"),
            ]
            nodes += [
                helper.make_node(
                    "Conv",
                    ["input.1", f"w_{name}", f"b_{name}"],
                    [f"c_{name}"],
                    kernel_shape=[s, s],
                    strides=[s, s],
                ),
                helper.make_node("Transpose", [f"c_{name}"], [f"t_{name}"], perm=[0, 2, 3, 1]),
                helper.make_node("Reshape", [f"t_{name}", f"shape_{name}"], [f"r_{name}"]),
            ]
            last = f"r_{name}"
            if kind == "score":
                nodes.append(helper.make_node("Sigmoid", [last], [name]))
            elif kind == "bbox":
                nodes.append(helper.make_node("Relu", [last], [name]))
            else:
                nodes.append(helper.make_node("Identity", [last], [name]))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["?", ch]))
    graph = helper.make_graph(
        nodes,
        "scrfd_tiny",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "H", "W"])],
        outputs,
        inits,
    )
    _save(graph, path)


def build_pack(folder, faces=True):
    """A pack folder (detector + recogniser) like insightface's antelopev2/ or buffalo_l/."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    build_scrfd(folder / "scrfd_tiny.onnx", faces=faces)
    build_arcface(folder / "glintr_tiny.onnx")
    return folder
