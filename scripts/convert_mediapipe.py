"""Convert MediaPipe's .tflite models into the safetensors + op-list files the pack runs with torch.

    python scripts/convert_mediapipe.py [--mediapipe DIR] [--npm DIR] [--out models/mediapipe_port/weights] [names...]
    python scripts/convert_mediapipe.py --npm-fetch pose_landmark_heavy     # `npm pack`s @mediapipe/pose first

Offline, at development time only: the pack itself never reads a .tflite file and never imports
``mediapipe`` or ``tflite`` at run time. Sources are the Apache-2.0 model files inside the
mediapipe 0.10.21 wheel (``--mediapipe``: its package folder, found by import when installed) and
the npm packages ``@mediapipe/pose`` etc. (``--npm``: a folder holding ``npm pack`` tarballs or their
extracted ``package/`` folders; the only source of pose_landmark_heavy/lite). Each source file is
checked against the sha256 listed in docs (the design note's table) before it is converted.

What the conversion does (the "statement of changes" written into every file's metadata and
into models/mediapipe_port/weights/NOTICE.md):
* DENSIFY: sparse weights (pose_detection, face full-range) are expanded to dense tensors;
* DEQUANTIZE: fp16 weights are kept as fp16 (the values the model was shipped with) and cast
  to fp32 when loaded, as TFLite does; fp32 constants stay fp32;
* layouts: NHWC activations become NCHW, conv weights OHWI -> OIHW, depthwise [1,kh,kw,C] ->
  [C,1,kh,kw], transposed-conv OHWI -> IOHW, PReLU alphas -> [C];
* TFLite's SAME padding (asymmetric for stride 2) is written out as explicit pads;
* the graph becomes a JSON list of ops (safetensors metadata ``ops``) that
  models/mediapipe_port/graph.py executes; batch-1 reshapes are written with a free batch dim.
Needs the ``tflite`` flatbuffer parser (PyPI ``tflite``, Apache-2.0; in ci/lock.txt).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tarfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "models" / "mediapipe_port" / "weights"
FORMAT = "poselab-tflite-ops/1"

# name -> (wheel path under mediapipe/modules, npm package, npm path, accepted sha256s of the
# source file: wheel copy first, then npm copy; both hold byte-identical tensors).
SOURCES = {
    "pose_detection": (
        "pose_detection/pose_detection.tflite",
        "pose",
        "pose_solution_packed_assets.data:/third_party/mediapipe/modules/pose_detection/pose_detection.tflite",
        (
            "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
            "a63c614bef30d35947f13be361820b1e4e3bec9cfeebf4d11216a18373108e85",
        ),
    ),
    "pose_landmark_full": (
        "pose_landmark/pose_landmark_full.tflite",
        "pose",
        "pose_landmark_full.tflite",
        ("e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",),
    ),
    "pose_landmark_lite": (
        None,
        "pose",
        "pose_landmark_lite.tflite",
        ("f17bfbecadb61c3be1baa8b8d851cc6619c870a87167b32848ad20db306b9d61",),
    ),
    "pose_landmark_heavy": (
        None,
        "pose",
        "pose_landmark_heavy.tflite",
        ("59e42d71bcd44cbdbabc419f0ff76686595fd265419566bd4009ef703ea8e1fe",),
    ),
    "palm_detection_full": (
        "palm_detection/palm_detection_full.tflite",
        None,
        None,
        ("1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",),
    ),
    "hand_landmark_full": (
        "hand_landmark/hand_landmark_full.tflite",
        "hands",
        "hand_landmark_full.tflite",
        (
            "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
            "8c026882c9ec059ce0f8e75266bee5a9a23c341a40e0000df755374d3d1b9b68",
        ),
    ),
    "hand_recrop": (
        "holistic_landmark/hand_recrop.tflite",
        None,
        None,
        ("67d996ce96f9d36fe17d2693022c6da93168026ab2f028f9e2365398d8ac7d5d",),
    ),
    "face_detection_short_range": (
        "face_detection/face_detection_short_range.tflite",
        None,
        None,
        ("bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",),
    ),
    "face_detection_full_range_sparse": (
        "face_detection/face_detection_full_range_sparse.tflite",
        None,
        None,
        ("2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",),
    ),
    "face_landmark": (
        "face_landmark/face_landmark.tflite",
        None,
        None,
        ("1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",),
    ),
    "selfie_segmentation": (
        "selfie_segmentation/selfie_segmentation.tflite",
        None,
        None,
        ("9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",),
    ),
}
# What the pack ships (models/mediapipe_port/weights); the rest convert on request.
DEFAULT_SET = (
    "pose_detection",
    "pose_landmark_full",
    "palm_detection_full",
    "hand_landmark_full",
    "hand_recrop",
    "face_detection_short_range",
    "face_detection_full_range_sparse",
    "face_landmark",
    "selfie_segmentation",
)
NPM_VERSIONS = {"pose": "0.5.1675469404", "hands": "0.4.1675469240"}


# ----------------------------------------------------------------------------- reading sources


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npm_file(npm_dir: Path, package: str, inner: str) -> bytes | None:
    """A file of an npm package, from an extracted ``package/`` folder or an ``npm pack`` tarball;
    ``a.data:/path`` names a file inside a packed-assets ``.data`` file (ranges in its loader .js)."""

    def read(rel: str) -> bytes | None:
        for base in (npm_dir / f"mediapipe-{package}", npm_dir / package, npm_dir):
            p = base / "package" / rel
            if p.is_file():
                return p.read_bytes()
        for tgz in sorted(npm_dir.glob(f"mediapipe-{package}-*.tgz")):
            with tarfile.open(tgz) as tar:
                try:
                    return tar.extractfile(f"package/{rel}").read()
                except KeyError:
                    continue
        return None

    if ":" not in inner:
        return read(inner)
    data_name, path = inner.split(":", 1)
    data = read(data_name)
    loader = read(data_name.replace(".data", "_loader.js"))
    if data is None or loader is None:
        return None
    start = loader.decode().find(json.dumps(path)[1:-1])
    if start < 0:
        return None
    tail = loader.decode()[start : start + 200]
    s = int(tail.split('"start":')[1].split(",")[0])
    e = int(tail.split('"end":')[1].split("}")[0].split(",")[0])
    return data[s:e]


def read_source(name: str, mediapipe_dir: Path | None, npm_dir: Path | None) -> tuple[bytes, str]:
    wheel_path, package, npm_path, hashes = SOURCES[name]
    tried = []
    if wheel_path and mediapipe_dir is not None:
        p = mediapipe_dir / "modules" / wheel_path
        tried.append(str(p))
        if p.is_file():
            data = p.read_bytes()
            _check_hash(name, data, hashes, p)
            return data, f"mediapipe 0.10.21 wheel: mediapipe/modules/{wheel_path}"
    if package and npm_dir is not None:
        data = _npm_file(npm_dir, package, npm_path)
        tried.append(f"{npm_dir} (@mediapipe/{package} package/{npm_path})")
        if data is not None:
            src = f"npm @mediapipe/{package}@{NPM_VERSIONS[package]}: package/{npm_path}"
            _check_hash(name, data, hashes, src)
            return data, src
    hint = (
        f"run `npm pack @mediapipe/{package}@{NPM_VERSIONS[package]}` in a folder and pass it as --npm"
        if package
        else "pass the mediapipe 0.10.21 package folder as --mediapipe"
    )
    raise FileNotFoundError(
        f"{name}: no source file found (tried {', '.join(tried) or 'nothing'}); {hint}"
    )


def _check_hash(name, data, hashes, where):
    digest = sha256(data)
    if digest not in hashes:
        raise ValueError(
            f"{name}: {where} has sha256 {digest}, expected one of {', '.join(hashes)}: "
            "not the model file this converter was checked against"
        )


# ----------------------------------------------------------------------------- flatbuffer -> op list


def _opname_table():
    from tflite.BuiltinOperator import BuiltinOperator

    return {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}


_ACT = {0: None, 1: "relu", 3: "relu6"}
_NP_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}


def _options(op, cls):
    table = op.BuiltinOptions()
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    return obj


def _densify(dense_shape, values: np.ndarray, sparsity) -> np.ndarray:
    """TFLite's sparse-to-dense for the formats these files use (no block map)."""
    import tflite

    if sparsity.BlockMapLength():
        raise NotImplementedError("block-sparse tensors are not used by these models")
    order = sparsity.TraversalOrderAsNumpy()
    prev = np.zeros(1, np.int64)  # compressed position per path
    coords = np.zeros((1, 0), np.int64)
    for level in range(sparsity.DimMetadataLength()):
        dm = sparsity.DimMetadata(level)
        if dm.Format() == 0:  # DENSE
            n = dm.DenseSize()
            prev = (prev[:, None] * n + np.arange(n)[None]).reshape(-1)
            coords = np.concatenate(
                [np.repeat(coords, n, axis=0), np.tile(np.arange(n), len(coords))[:, None]], 1
            )
        else:

            def vec(kind, table):
                cls = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}[kind]
                v = cls()
                v.Init(table.Bytes, table.Pos)
                return v.ValuesAsNumpy().astype(np.int64)

            seg = vec(dm.ArraySegmentsType(), dm.ArraySegments())
            idx = vec(dm.ArrayIndicesType(), dm.ArrayIndices())
            counts = seg[prev + 1] - seg[prev]
            starts = np.repeat(seg[prev], counts)
            offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            new_prev = starts + offs
            coords = np.concatenate([np.repeat(coords, counts, axis=0), idx[new_prev][:, None]], 1)
            prev = new_prev
    dense = np.zeros(dense_shape, values.dtype)
    full = np.zeros((len(prev), len(dense_shape)), np.int64)
    full[:, order] = coords
    dense[tuple(full.T)] = values[prev]
    return dense


def _same_pads(in_hw, k_hw, stride_hw, padding: int) -> list[int]:
    """[top, bottom, left, right] of TFLite padding (0 = SAME: extra row/col at the bottom/right)."""
    if padding == 1:
        return [0, 0, 0, 0]
    pads = []
    for n, k, s in zip(in_hw, k_hw, stride_hw):
        out = math.ceil(n / s)
        total = max((out - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return pads


def _axis_nchw(axis: int, rank: int) -> int:
    axis = axis % rank
    return (0, 2, 3, 1)[axis] if rank == 4 else axis


def convert(data: bytes, name: str, source: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    import tflite

    names = _opname_table()
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1:
        raise NotImplementedError(f"{name}: expected one subgraph")
    g = model.Subgraphs(0)

    def tensor(i):
        return g.Tensors(i)

    def shape(i):
        return [int(v) for v in tensor(i).ShapeAsNumpy()]

    consts: dict[int, np.ndarray] = {}
    for i in range(g.TensorsLength()):
        t = tensor(i)
        buf = model.Buffers(t.Buffer())
        if buf is not None and buf.DataLength() > 0:
            raw = buf.DataAsNumpy().tobytes()
            arr = np.frombuffer(raw, _NP_TYPES[t.Type()])
            if t.Sparsity() is not None:
                consts[i] = ("sparse", arr, t.Sparsity(), shape(i))
            else:
                consts[i] = arr.reshape(shape(i))

    weights: dict[str, np.ndarray] = {}
    ops: list[dict] = []
    used_consts: set[int] = set()

    def const(i) -> np.ndarray:
        v = consts[i]
        if isinstance(v, tuple):
            raise ValueError(f"{name}: tensor {i} is still sparse")
        return v

    def weight(key: str, arr: np.ndarray) -> str:
        # fp16 constants stay fp16 (the shipped values), everything else fp32.
        weights[key] = np.ascontiguousarray(
            arr.astype(np.float16 if arr.dtype == np.float16 else np.float32)
        )
        return key

    def act_const(i) -> int:
        """A constant used as an activation operand: stored in the runtime layout (NCHW if rank 4)."""
        arr = const(i)
        if arr.ndim == 4:
            arr = arr.transpose(0, 3, 1, 2)
        weight(f"c{i}", arr)
        used_consts.add(i)
        return i

    for k in range(g.OperatorsLength()):
        op = g.Operators(k)
        oc = model.OperatorCodes(op.OpcodeIndex())
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        kind = names.get(code) if code != 32 else oc.CustomCode().decode()
        ins = [int(v) for v in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(v) for v in op.OutputsAsNumpy()]
        # constant folding: the weight-preparation ops
        if kind == "DENSIFY":
            _, arr, sp, shp = consts[ins[0]]
            consts[outs[0]] = _densify(shp, arr, sp)
            continue
        if kind == "DEQUANTIZE":
            v = consts[ins[0]]
            if isinstance(v, tuple):
                raise ValueError(f"{name}: DEQUANTIZE of a sparse tensor")
            consts[outs[0]] = v  # kept in fp16; cast to fp32 at load
            continue
        x = ins[0]
        entry: dict = {"in": [x], "out": outs}
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = const(ins[1])
            b = const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
            if kind == "CONV_2D":
                o = _options(op, tflite.Conv2DOptions)
                w_t = w.transpose(0, 3, 1, 2)
                groups = 1
                if w.shape[3] != shape(x)[3]:
                    raise NotImplementedError(f"{name}: grouped conv")
            else:
                o = _options(op, tflite.DepthwiseConv2DOptions)
                if o.DepthMultiplier() not in (0, 1) and w.shape[3] != shape(x)[3]:
                    raise NotImplementedError(f"{name}: depth multiplier {o.DepthMultiplier()}")
                w_t = w.transpose(3, 0, 1, 2)
                groups = w.shape[3]
            if (o.DilationHFactor(), o.DilationWFactor()) != (1, 1):
                raise NotImplementedError(f"{name}: dilated conv")
            kh, kw = w.shape[1], w.shape[2]
            stride = [o.StrideH(), o.StrideW()]
            entry.update(
                type="conv",
                w=weight(f"w{k}", w_t),
                b=weight(f"b{k}", b) if b is not None else None,
                stride=stride,
                pad=_same_pads(shape(x)[1:3], (kh, kw), stride, o.Padding()),
                groups=groups,
                act=_ACT[o.FusedActivationFunction()],
            )
        elif kind == "Convolution2DTransposeBias":
            w, b = const(ins[1]), const(ins[2])
            params = np.frombuffer(
                op.CustomOptionsAsNumpy().tobytes()[:12], np.int32
            )  # padding, stride_w, stride_h
            if w.shape[1:3] != (params[2], params[1]):
                raise NotImplementedError(f"{name}: transposed conv with kernel != stride")
            entry.update(
                type="tconv",
                w=weight(f"w{k}", w.transpose(3, 0, 1, 2)),
                b=weight(f"b{k}", b),
                stride=[int(params[2]), int(params[1])],
            )
        elif kind in ("ADD", "MUL"):
            o = _options(op, tflite.AddOptions if kind == "ADD" else tflite.MulOptions)
            entry["in"] = [act_const(i) if i in consts else i for i in ins]
            entry.update(type=kind.lower(), act=_ACT[o.FusedActivationFunction()])
        elif kind in ("RELU", "RELU6", "LOGISTIC", "HARD_SWISH"):
            entry.update(
                type={
                    "RELU": "relu",
                    "RELU6": "relu6",
                    "LOGISTIC": "sigmoid",
                    "HARD_SWISH": "hardswish",
                }[kind]
            )
        elif kind == "PRELU":
            alpha = const(ins[1]).reshape(-1)
            entry.update(type="prelu", w=weight(f"a{k}", alpha))
        elif kind == "PAD":
            p = const(ins[1]).reshape(-1, 2)
            rank = len(shape(x))
            if rank != 4 or p[0].any():
                raise NotImplementedError(f"{name}: PAD of rank {rank} / on the batch")
            entry.update(
                type="pad",
                pad=[int(v) for v in (p[2, 0], p[2, 1], p[1, 0], p[1, 1], p[3, 0], p[3, 1])],
            )
        elif kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            o = _options(op, tflite.Pool2DOptions)
            k_hw = [o.FilterHeight(), o.FilterWidth()]
            stride = [o.StrideH(), o.StrideW()]
            pads = _same_pads(shape(x)[1:3], k_hw, stride, o.Padding())
            if kind == "AVERAGE_POOL_2D" and any(pads):
                raise NotImplementedError(f"{name}: SAME average pooling")
            entry.update(
                type="maxpool" if kind == "MAX_POOL_2D" else "avgpool",
                k=k_hw,
                stride=stride,
                pad=pads,
                act=_ACT[o.FusedActivationFunction()],
            )
        elif kind == "RESHAPE":
            new = shape(outs[0])
            entry.update(type="reshape", shape=[-1] + new[1:], in_rank=len(shape(x)))
        elif kind == "CONCATENATION":
            o = _options(op, tflite.ConcatenationOptions)
            entry["in"] = ins
            entry.update(
                type="concat",
                axis=_axis_nchw(o.Axis(), len(shape(x))),
                act=_ACT[o.FusedActivationFunction()],
            )
        elif kind == "DEPTH_TO_SPACE":
            entry.update(type="d2s", block=_options(op, tflite.DepthToSpaceOptions).BlockSize())
        elif kind == "RESIZE_BILINEAR":
            o = _options(op, tflite.ResizeBilinearOptions)
            if o.AlignCorners() or not o.HalfPixelCenters():
                raise NotImplementedError(f"{name}: resize without half-pixel centres")
            entry.update(type="resize", size=[int(v) for v in const(ins[1])])
        elif kind == "MEAN":
            o = _options(op, tflite.ReducerOptions)
            rank = len(shape(x))
            entry.update(
                type="mean",
                dims=sorted(_axis_nchw(int(a), rank) for a in const(ins[1]).reshape(-1)),
                keepdim=bool(o.KeepDims()),
            )
        elif kind == "FULLY_CONNECTED":
            o = _options(op, tflite.FullyConnectedOptions)
            b = const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
            entry.update(
                type="fc",
                w=weight(f"w{k}", const(ins[1])),
                b=weight(f"b{k}", b) if b is not None else None,
                act=_ACT[o.FusedActivationFunction()],
                in_rank=len(shape(x)),
            )
        elif kind == "STRIDED_SLICE":
            o = _options(op, tflite.StridedSliceOptions)
            if o.EllipsisMask() or o.NewAxisMask() or o.ShrinkAxisMask():
                raise NotImplementedError(f"{name}: strided slice masks")
            begin, end, strides = (const(i).reshape(-1).tolist() for i in ins[1:4])
            in_shape = shape(x)
            for d in range(len(in_shape)):
                if o.BeginMask() >> d & 1:
                    begin[d] = 0
                if o.EndMask() >> d & 1:
                    end[d] = in_shape[d]
            entry.update(type="slice", begin=begin, end=end, strides=strides, in_rank=len(in_shape))
        else:
            raise NotImplementedError(f"{name}: op {kind} is not supported")
        if entry.get("act", "x") is None:
            del entry["act"]
        if "act" in entry and entry["act"] not in ("relu", "relu6"):
            raise NotImplementedError(f"{name}: fused activation {entry['act']}")
        ops.append(entry)

    inputs = [int(v) for v in g.InputsAsNumpy()]
    outputs = [int(v) for v in g.OutputsAsNumpy()]
    meta = {
        "format": FORMAT,
        "name": name,
        "source": source,
        "source_sha256": sha256(data),
        "licence": "Apache-2.0, Copyright The MediaPipe Authors (see NOTICE.md beside this file)",
        "changes": "converted from the .tflite flatbuffer by scripts/convert_mediapipe.py: sparse weights densified, "
        "fp16 weights kept as fp16 (cast to fp32 at load), NHWC -> NCHW, SAME padding made explicit, "
        "graph written as the op list in 'ops'",
        "ops": json.dumps(ops, separators=(",", ":")),
        "input": json.dumps({"id": inputs[0], "shape": shape(inputs[0])}),
        "outputs": json.dumps(
            [{"id": o, "name": tensor(o).Name().decode(), "shape": shape(o)} for o in outputs]
        ),
    }
    if len(inputs) != 1:
        raise NotImplementedError(f"{name}: {len(inputs)} inputs")
    return weights, meta


NOTICE_HEAD = """# Converted MediaPipe models

The `.safetensors` files in this folder are Derivative Works of model files of MediaPipe
(Copyright The MediaPipe Authors), licensed under the Apache License, Version 2.0: see `LICENSE`
in this folder (the text shipped with mediapipe 0.10.21). MediaPipe v0.10.21 has no NOTICE file.
They are not covered by PoseLab's MIT licence.

Changes made (by `scripts/convert_mediapipe.py`; the same statement is in each file's metadata):
the `.tflite` flatbuffer was parsed and its graph written as a JSON op list (metadata `ops`);
sparse weights were densified; fp16 weights are kept as fp16 (cast to fp32 at load, as TFLite
does), other constants stay fp32; NHWC layouts became NCHW (conv OHWI -> OIHW, depthwise
[1,kh,kw,C] -> [C,1,kh,kw], transposed conv OHWI -> IOHW, PReLU alphas -> [C]); TFLite SAME
padding was made explicit; the batch dimension of reshapes was freed. No weight value was changed.
The models' intended and out-of-scope uses are in MediaPipe's model cards
(https://github.com/google-ai-edge/mediapipe/blob/master/docs/solutions/models.md).

| file | converted from | source sha256 |
|---|---|---|
"""


def write_notice(folder: Path) -> None:
    from safetensors import safe_open

    rows = []
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata()
        rows.append(f"| `{path.name}` | {meta['source']} | `{meta['source_sha256']}` |")
    (folder / "NOTICE.md").write_text(NOTICE_HEAD + "\n".join(rows) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "names",
        nargs="*",
        help=f"models to convert (default: the shipped set {', '.join(DEFAULT_SET)})",
    )
    ap.add_argument(
        "--mediapipe", type=Path, help="the mediapipe package folder (default: found by import)"
    )
    ap.add_argument(
        "--npm",
        type=Path,
        help="folder with `npm pack` tarballs of @mediapipe/pose, @mediapipe/hands",
    )
    ap.add_argument(
        "--npm-fetch",
        action="store_true",
        help="download the npm packages the named models need with `npm pack` (into a temporary folder)",
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if args.npm_fetch:
        import shutil
        import subprocess
        import tempfile

        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("--npm-fetch needs npm (Node.js) on the PATH")
        tmp = tempfile.TemporaryDirectory(prefix="poselab-npm-")
        args.npm = Path(tmp.name)
        for package in sorted(
            {SOURCES[n][1] for n in args.names if n in SOURCES and SOURCES[n][1]}
        ):
            spec = f"@mediapipe/{package}@{NPM_VERSIONS[package]}"
            print(f"npm pack {spec}")
            subprocess.run(
                [npm, "pack", spec, "--silent"], cwd=tmp.name, check=True, stdout=subprocess.DEVNULL
            )
    mp_dir = args.mediapipe
    if mp_dir is None:
        import importlib.util

        spec = importlib.util.find_spec("mediapipe")
        mp_dir = Path(spec.origin).parent if spec and spec.origin else None
    from safetensors.numpy import save_file

    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or DEFAULT_SET:
        if name not in SOURCES:
            raise SystemExit(f"unknown model {name!r}: choose from {', '.join(SOURCES)}")
        data, source = read_source(name, mp_dir, args.npm)
        weights, meta = convert(data, name, source)
        path = args.out / f"{name}.safetensors"
        part = path.with_suffix(".tmp")
        save_file(weights, str(part), metadata=meta)
        os.chmod(part, 0o644)
        os.replace(part, path)
        n = sum(v.size for v in weights.values())
        print(
            f"{name}: {len(json.loads(meta['ops']))} ops, {n / 1e6:.2f}M values, {path.stat().st_size / 1e6:.1f} MB "
            f"<- {source}"
        )
    write_notice(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
