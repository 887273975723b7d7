"""Identity similarity: the insightface path with tiny random ONNX models in the real format
(an SCRFD-like detector with 9 outputs and an ArcFace-like 112x112 -> 512 recogniser, built
with onnx.helper at test time), and the MTCNN+HOG fallback on a real photo."""

import math

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from poselab.models.metrics import identity as idm

PHOTO = "051423444.jpg"  # MPII: one man, face visible


def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def build_arcface(path, seed=0):
    """(N, 3, 112, 112) -> (N, 512): strided conv, flatten, dense (the routing shape of ArcFace)."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 8, 8)).astype(np.float32) * 0.1, "w_conv"),
        numpy_helper.from_array(rng.standard_normal((784, 512)).astype(np.float32) * 0.05, "w_fc"),
        numpy_helper.from_array(np.array([0, -1], np.int64), "flat_shape"),
    ]
    nodes = [
        helper.make_node("Conv", ["data", "w_conv"], ["c"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Reshape", ["c", "flat_shape"], ["f"]),
        helper.make_node("MatMul", ["f", "w_fc"], ["fc1"]),
    ]
    graph = helper.make_graph(
        nodes, "arcface_tiny",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", 512])], inits,
    )
    _save(graph, path)


def build_scrfd(path, seed=1):
    """SCRFD's 9 outputs (scores, boxes, 5-point landmarks for strides 8/16/32, 2 anchors each),
    non-batched. Only stride 32 scores high, so few candidates reach NMS."""
    rng = np.random.default_rng(seed)
    inits, nodes, outputs = [], [], []
    heads = (("score", 1), ("bbox", 4), ("kps", 10))
    for kind, ch in heads:
        for s in (8, 16, 32):
            name = f"{kind}_{s}"
            w = rng.standard_normal((2 * ch, 3, s, s)).astype(np.float32) * (0.02 / s)
            bias = np.zeros(2 * ch, np.float32)
            if kind == "score":
                bias[:] = 3.0 if s == 32 else -10.0
            if kind == "bbox":
                bias[:] = 2.0  # boxes about 2 strides from each anchor
            inits += [numpy_helper.from_array(w, f"w_{name}"), numpy_helper.from_array(bias, f"b_{name}"),
                      numpy_helper.from_array(np.array([-1, ch], np.int64), f"shape_{name}")]
            nodes += [
                helper.make_node("Conv", ["input.1", f"w_{name}", f"b_{name}"], [f"c_{name}"], kernel_shape=[s, s], strides=[s, s]),
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
        nodes, "scrfd_tiny", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "H", "W"])], outputs, inits
    )
    _save(graph, path)


@pytest.fixture(scope="module")
def insightface_pack(tmp_path_factory):
    pack = tmp_path_factory.mktemp("insightface") / "tiny_pack"
    pack.mkdir()
    build_scrfd(pack / "det_tiny.onnx")
    build_arcface(pack / "w600k_tiny.onnx")
    return pack


@pytest.fixture(scope="module")
def photo(pose_data):
    img = cv2.imread(str(pose_data / PHOTO))
    assert img is not None, f"cannot read {pose_data / PHOTO}"
    return np.ascontiguousarray(cv2.resize(img, (640, 360))[:, :, ::-1])


def test_insightface_pack_embeds_and_compares(insightface_pack, photo):
    emb = idm.InsightFaceEmbedder(str(insightface_pack))
    assert emb.name == idm.INSIGHTFACE
    e, box = emb(photo)
    assert e is not None and e.shape == (512,) and np.isfinite(e).all()
    same = idm.identity_similarity(photo, photo, emb)
    assert same["embedder"] == "insightface-arcface" and same["similarity"] == pytest.approx(1.0, abs=1e-6)
    other = idm.identity_similarity(photo, np.ascontiguousarray(photo[:, ::-1]), emb)
    assert other["similarity"] < 1 - 1e-6  # a different crop gives a different (random-model) embedding
    assert other["note"] == ""


def test_insightface_pack_errors(tmp_path, insightface_pack):
    with pytest.raises(FileNotFoundError, match="insightface model pack"):
        idm.InsightFaceEmbedder(str(tmp_path))
    only_rec = tmp_path / "only_rec"
    only_rec.mkdir()
    build_arcface(only_rec / "rec.onnx")
    with pytest.raises(ValueError, match="lacks a detection model"):
        idm.InsightFaceEmbedder(str(only_rec))


def test_mtcnn_fallback_names_itself_and_handles_no_face(photo):
    emb = idm.get_embedder(None)
    assert emb.name == idm.FALLBACK
    res = idm.identity_similarity(photo, photo, emb)
    assert res["similarity"] == pytest.approx(1.0, abs=1e-9)
    assert "NOT a face-recognition model" in res["note"]
    blank = np.full_like(photo, 128)
    none = idm.identity_similarity(photo, blank, emb)
    assert math.isnan(none["similarity"]) and none["face_in_result"] is False and none["face_in_source"] is True
    assert "no face found in the result" in none["note"]
