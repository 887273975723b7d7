"""The converted MediaPipe models and their torch executor (models/mediapipe_port/graph.py):
shipped files, licence, batching, the TFLite semantics that are easy to get wrong (SAME
padding, DEPTH_TO_SPACE order, sparse weights), and that the converter reproduces the files."""

from __future__ import annotations

import json
import math

import convert_mediapipe
import numpy as np
import pytest
import torch
from safetensors import safe_open

from poselab.models.mediapipe_port import graph

SHIPPED = convert_mediapipe.DEFAULT_SET


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_runs_batched_with_its_output_shapes(name):
    g = graph.load_graph(name)
    h, w = g.input_size
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, h, w, generator=gen)
    single = graph.run(g, x)
    batch = graph.run(
        g, torch.cat([torch.rand(1, 3, h, w, generator=gen), x, torch.zeros(1, 3, h, w)])
    )
    for info, one, many in zip(g.output_info, single, batch):
        assert list(one.shape) == info["shape"], (name, info)
        assert many.shape[0] == 3 and list(many.shape[1:]) == info["shape"][1:]
        # batching does not mix images: item 1 of the batch is the single run (up to the convolution
        # algorithm's summation order, visible at 1e-3 on the pose segmentation logits of ~1500)
        assert torch.allclose(
            many[1], one[0], rtol=1e-4, atol=2e-3 * max(1.0, one.abs().max().item())
        ), (name, info["name"])
        assert torch.isfinite(many).all()


def test_every_file_carries_its_licence_and_statement_of_changes():
    notice = (graph.WEIGHTS_DIR / "NOTICE.md").read_text()
    assert "Apache License, Version 2.0" in (graph.WEIGHTS_DIR / "LICENSE").read_text()
    for name in SHIPPED:
        with safe_open(str(graph.weight_path(name)), framework="pt") as f:
            meta = f.metadata()
        assert "Apache-2.0" in meta["licence"] and "densified" in meta["changes"]
        assert meta["source_sha256"] in notice and f"`{name}.safetensors`" in notice
        assert meta["source_sha256"] in convert_mediapipe.SOURCES[name][3]


def test_missing_or_broken_file_names_the_file_and_folder(tmp_path):
    with pytest.raises(
        graph.MissingModelFile, match=r"pose_detection\.safetensors.*" + str(tmp_path)
    ):
        graph.load_graph("pose_detection", folder=tmp_path)
    (tmp_path / "pose_detection.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(ValueError, match=r"cannot read pose_detection\.safetensors in "):
        graph.load_graph("pose_detection", folder=tmp_path)


@pytest.mark.parametrize("n,k,s", [(256, 3, 2), (255, 3, 2), (64, 5, 2), (32, 3, 1), (7, 2, 2)])
def test_same_padding_is_tflites(n, k, s):
    top, bottom, _, _ = convert_mediapipe._same_pads((n, n), (k, k), (s, s), 0)
    assert (n + top + bottom - k) // s + 1 == math.ceil(n / s)  # SAME keeps ceil(n / s) outputs
    assert bottom - top in (0, 1)  # the odd pixel goes to the bottom/right, as in TFLite
    assert convert_mediapipe._same_pads((n, n), (k, k), (s, s), 1) == [0, 0, 0, 0]


def test_depth_to_space_is_nhwc_dcr():
    b, c, h, w = 2, 3, 2, 2
    nhwc = np.arange(h * w * c * b * b, dtype=np.float32).reshape(1, h, w, c * b * b)
    # TFLite/TensorFlow DEPTH_TO_SPACE: out[y*b + dy, x*b + dx, ch] = in[y, x, (dy*b + dx)*C + ch]
    expected = np.zeros((1, h * b, w * b, c), np.float32)
    for y in range(h):
        for x in range(w):
            for dy in range(b):
                for dx in range(b):
                    expected[0, y * b + dy, x * b + dx] = nhwc[
                        0, y, x, (dy * b + dx) * c : (dy * b + dx + 1) * c
                    ]
    meta = {
        "format": graph.FORMAT,
        "name": "d2s",
        "ops": json.dumps([{"type": "d2s", "in": [0], "out": [1], "block": b}]),
        "input": json.dumps({"id": 0, "shape": [1, h, w, c * b * b]}),
        "outputs": json.dumps([{"id": 1, "name": "y", "shape": [1, h * b, w * b, c]}]),
    }
    (out,) = graph.OpGraph({}, meta)(torch.from_numpy(nhwc).permute(0, 3, 1, 2))
    np.testing.assert_array_equal(out.numpy(), expected)


def test_densify_reads_csr_weights():
    tflite = pytest.importorskip("tflite", reason="the converter's flatbuffer parser (ci/lock.txt)")
    import importlib

    import flatbuffers

    # the builder functions live in the modules (the package re-exports the classes under the same names)
    DM, IV, SP = (
        importlib.import_module(f"tflite.{m}")
        for m in ("DimensionMetadata", "Int32Vector", "SparsityParameters")
    )

    dense = np.array([[0, 2, 0, 0], [1, 0, 0, 3], [0, 0, 0, 0]], np.float32)
    rows, cols = np.nonzero(dense)
    segments = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=3))]).astype(np.int32)
    b = flatbuffers.Builder(256)

    def int_vector(values):
        IV.StartValuesVector(b, len(values))
        for v in reversed(values.tolist()):
            b.PrependInt32(v)
        vec = b.EndVector()
        IV.Start(b)
        IV.AddValues(b, vec)
        return IV.End(b)

    seg, idx = int_vector(segments), int_vector(cols.astype(np.int32))
    DM.Start(b)
    DM.AddFormat(b, 0)
    DM.AddDenseSize(b, 3)
    d0 = DM.End(b)
    DM.Start(b)
    DM.AddFormat(b, 1)
    DM.AddArraySegmentsType(b, 1)
    DM.AddArraySegments(b, seg)
    DM.AddArrayIndicesType(b, 1)
    DM.AddArrayIndices(b, idx)
    d1 = DM.End(b)
    SP.StartTraversalOrderVector(b, 2)
    b.PrependInt32(1)
    b.PrependInt32(0)
    order = b.EndVector()
    SP.StartDimMetadataVector(b, 2)
    b.PrependUOffsetTRelative(d1)
    b.PrependUOffsetTRelative(d0)
    dims = b.EndVector()
    SP.Start(b)
    SP.AddTraversalOrder(b, order)
    SP.AddDimMetadata(b, dims)
    b.Finish(SP.End(b))
    sparsity = tflite.SparsityParameters.GetRootAs(b.Output(), 0)
    out = convert_mediapipe._densify([3, 4], dense[rows, cols], sparsity)
    np.testing.assert_array_equal(out, dense)


def test_converter_reproduces_the_shipped_files():
    pytest.importorskip("tflite", reason="the converter's flatbuffer parser (ci/lock.txt)")
    mp = pytest.importorskip(
        "mediapipe", reason="the mediapipe 0.10.21 wheel is the conversion source"
    )
    from pathlib import Path

    mp_dir = Path(mp.__file__).parent
    for name in (
        "pose_detection",
        "face_detection_full_range_sparse",
        "selfie_segmentation",
    ):  # sparse, sparse, custom op
        data, source = convert_mediapipe.read_source(name, mp_dir, None)
        weights, meta = convert_mediapipe.convert(data, name, source)
        with safe_open(str(graph.weight_path(name)), framework="numpy") as f:
            assert f.metadata() == meta
            assert sorted(f.keys()) == sorted(weights)
            for key, value in weights.items():
                shipped = f.get_tensor(key)
                assert shipped.dtype == value.dtype and np.array_equal(shipped, value), (name, key)


@pytest.mark.parametrize("name", SHIPPED)
def test_onnx_graph_computes_what_the_torch_executor_does(name):
    """The ONNX model built in memory (models/mediapipe_port/onnx_graph.py) for onnxruntime."""
    pytest.importorskip("onnxruntime", reason="the CPU accelerator is optional")
    from poselab.models.mediapipe_port import onnx_graph

    g = graph.load_graph(name)
    h, w = g.input_size
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    ref = graph.run(g, x)
    out = onnx_graph.session(g, 1).run(None, {"input": x.numpy()})
    for info, a, b in zip(g.output_info, out, ref):
        scale = max(1.0, float(b.abs().max()))
        assert a.shape == tuple(b.shape)
        # (the pose segmentation logits reach ~1600, where fp32 summation order shows at 1e-3)
        assert np.abs(a - b.numpy()).max() <= 2e-3 * scale, (name, info["name"])


@pytest.mark.parametrize("border", ["zero", "replicate"])
def test_cpu_crop_equals_the_device_gather(border):
    """geometry.crop has a NumPy path (CPU) and a torch gather path (GPUs): same bits."""
    from poselab.models.mediapipe_port import geometry as geo

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    rois = np.array(
        [
            [60, 40, 80, 80, 0.4],
            [0, 0, 50, 30, -2.0],
            [130, 96, 300, 300, 3.0],
            [65, 48, 20, 20, 0],
        ],
        np.float32,
    )
    cpu = geo.Image(rgb)
    gathered = geo.Image(rgb)
    gathered.spread = None  # take the device path, on the CPU
    gathered.tensor = torch.from_numpy(rgb).reshape(-1, 3)
    a = geo.crop(cpu, rois, (64, 48), border, (-1.0, 1.0))
    b = geo.crop(gathered, rois, (64, 48), border, (-1.0, 1.0))
    assert a.shape == (4, 3, 48, 64) and torch.equal(a, b)
    # an axis-aligned ROI on whole pixels samples the pixels themselves (u/W, no half-pixel shift)
    one = geo.crop(
        cpu, np.array([[10 + 4, 20 + 3, 8, 6, 0]], np.float32), (8, 6), border, (0.0, 255.0)
    )
    np.testing.assert_array_equal(
        one[0].permute(1, 2, 0).numpy(), rgb[20:26, 10:18].astype(np.float32)
    )
