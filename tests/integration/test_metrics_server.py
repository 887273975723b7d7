"""The metric nodes through a real ComfyUI server: registration, the evaluate_repose workflow
on a real same-person pair (numbers equal to the library's), LPIPS with a backbone file in
models/lpips, identity with the fallback embedder, and the missing-weights errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import comfy_host
import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from poselab.models.metrics import image_quality

REPO = Path(__file__).resolve().parents[2]
NODE_IDS = (
    "PoseLabImageMetrics",
    "PoseLabPoseAccuracy",
    "PoseLabIdentitySimilarity",
    "PoseLabClipScore",
    "PoseLabFIDKID",
)
PAIR = (
    "051423444.jpg",
    "004645041.jpg",
)  # same man, same camera, two poses (pairs.json, same_person)
SIZE = (480, 270)  # smaller copies keep the CPU run short


def _number(text: str, label: str) -> float:
    m = re.search(re.escape(label) + r" (-?[0-9.]+(?:e[-+]?[0-9]+)?|inf|n/a)", text)
    assert m, f"'{label}' not in {text!r}"
    return {"inf": float("inf"), "n/a": float("nan")}.get(m.group(1)) or float(m.group(1))


def _ui_text(entry: dict, node: str) -> str:
    return entry["outputs"][node]["text"][0]


def _saved(server, entry: dict, node: str) -> np.ndarray:
    item = entry["outputs"][node]["images"][0]
    return np.asarray(
        Image.open(server.base_dir / "output" / item["subfolder"] / item["filename"]).convert("RGB")
    )


@pytest.fixture(scope="module")
def pair(comfy_server, pose_data):
    """The pair, resized, in the server's input folder under the workflow's names; returns the
    float images exactly as LoadImage will read them."""
    loaded = []
    for name, photo in zip(("pair_source.jpg", "pair_target.jpg"), PAIR):
        img = cv2.resize(cv2.imread(str(pose_data / photo)), SIZE, interpolation=cv2.INTER_AREA)
        cv2.imwrite(
            str(comfy_server.base_dir / "input" / name), img, [cv2.IMWRITE_JPEG_QUALITY, 100]
        )
        # read back the way LoadImage does (PIL, RGB, /255)
        rgb = (
            np.asarray(
                Image.open(comfy_server.base_dir / "input" / name).convert("RGB"), np.float32
            )
            / 255.0
        )
        loaded.append(torch.from_numpy(rgb)[None])
    return loaded


def test_metric_nodes_registered_with_tooltips(comfy_server):
    info = comfy_server.object_info()
    for node_id in NODE_IDS:
        assert node_id in info, f"{node_id} is not registered"
        assert info[node_id]["category"] == "PoseLab/metrics"
        assert info[node_id]["output_node"] is True
        for name, spec in info[node_id]["input"]["required"].items():
            assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    assert info["PoseLabImageMetrics"]["output"] == [
        "FLOAT",
        "FLOAT",
        "FLOAT",
        "FLOAT",
        "STRING",
        "IMAGE",
    ]
    assert info["PoseLabPoseAccuracy"]["output"][:5] == [
        "FLOAT",
        "FLOAT",
        "FLOAT",
        "FLOAT",
        "POSE_KEYPOINT",
    ]
    assert info["PoseLabClipScore"]["input"]["required"]["clip"][0] == "CLIP"
    assert info["PoseLabClipScore"]["input"]["required"]["clip_vision"][0] == "CLIP_VISION"


def test_evaluate_repose_workflow(comfy_server, pair):
    """Part-warp repose vs the identity baseline (result = source), scored against the target photo."""
    prompt = json.loads((REPO / "workflows" / "api" / "evaluate_repose.json").read_text())
    entry = comfy_server.run_ok(prompt)
    src, tgt = pair
    base = _ui_text(entry, "9")
    # the node's numbers are the library's on the same pixels
    assert _number(base, "SSIM") == pytest.approx(image_quality.ssim(src, tgt).item(), abs=1e-4)
    assert _number(base, "PSNR") == pytest.approx(image_quality.psnr(src, tgt).item(), abs=1e-3)
    assert 0.0 < _number(base, "SSIM") < 0.9  # different poses: far from identical
    repose_img = _saved(comfy_server, entry, "6").astype(np.float32) / 255.0
    assert _number(_ui_text(entry, "7"), "SSIM") == pytest.approx(
        image_quality.ssim(torch.from_numpy(repose_img)[None], tgt).item(), abs=1e-4
    )
    pck = {}
    for node in ("11", "13"):
        text = _ui_text(entry, node)
        p05, p1, p2 = (_number(text, f"PCK@{a}") for a in (0.05, 0.1, 0.2))
        assert 0.0 <= p05 <= p1 <= p2 <= 1.0  # looser thresholds never score lower
        assert _number(text, "people") == 1
        pck[node] = p2
    # the repose moves the man towards the target pose; the baseline leaves him where he was
    assert pck["11"] > pck["13"], pck
    ident = _ui_text(entry, "15")
    assert "mtcnn-hog-fallback" in ident and 0.0 < _number(ident, "identity") <= 1.0
    for node in ("8", "10", "12", "14"):
        report = _saved(comfy_server, entry, node)
        assert report.shape[0] > 60 and report.shape[1] > 200 and report.std() > 10


def test_identical_images_lpips_from_models_folder_and_identity(comfy_server, pair):
    import torchvision

    with torch.device("meta"):
        shapes = {
            k: v.shape for k, v in torchvision.models.alexnet(weights=None).state_dict().items()
        }
    gen = torch.Generator().manual_seed(0)
    sd = {
        k: torch.randn(s, generator=gen) * 0.05
        for k, s in shapes.items()
        if k.startswith("features.")
    }
    lp_dir = comfy_server.base_dir / "models" / "lpips"
    lp_dir.mkdir(parents=True, exist_ok=True)
    torch.save(sd, lp_dir / "alexnet_test.pth")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "pair_source.jpg"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "pair_target.jpg"}},
        "3": {
            "class_type": "PoseLabImageMetrics",
            "inputs": {
                "image": ["1", 0],
                "reference": ["1", 0],
                "lpips_weights": "alexnet_test.pth",
            },
        },
        "4": {
            "class_type": "PoseLabImageMetrics",
            "inputs": {
                "image": ["2", 0],
                "reference": ["1", 0],
                "lpips_weights": "alexnet_test.pth",
            },
        },
        "5": {
            "class_type": "PoseLabIdentitySimilarity",
            "inputs": {
                "source": ["1", 0],
                "result": ["1", 0],
                "insightface_pack": "(fallback: mtcnn+hog)",
            },
        },
    }
    entry = comfy_server.run_ok(prompt)
    same, diff = _ui_text(entry, "3"), _ui_text(entry, "4")
    assert _number(same, "SSIM") == pytest.approx(1.0, abs=1e-9)
    assert _number(same, "PSNR") == float("inf")
    assert _number(same, "LPIPS") == pytest.approx(0.0, abs=1e-6)
    assert _number(diff, "LPIPS") > 0.0
    ident = _ui_text(entry, "5")
    assert "mtcnn-hog-fallback" in ident and _number(ident, "identity") == pytest.approx(
        1.0, abs=1e-6
    )


def test_missing_weights_errors_say_where(comfy_server, pair):
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "pair_source.jpg"}},
        "2": {
            "class_type": "PoseLabFIDKID",
            "inputs": {
                "images_a": ["1", 0],
                "images_b": ["1", 0],
                "inception_weights": "(none)",
                "kid_subset_size": 100,
            },
        },
    }
    entry = comfy_server.run(prompt, timeout=120)
    err = comfy_host.execution_error(entry)
    assert err is not None and "MissingModelError" in err
    assert "inception" in err and "put" in err


def _unit_helpers(name: str):
    """Builders of the tiny real-format model files, shared with the unit tests."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        f"_metrics_{name}", REPO / "tests" / "unit" / f"{name}.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fid_kid_and_insightface_nodes_with_model_files(comfy_server, pair):
    """Model files dropped into models/inception and models/insightface are listed and used."""
    fid_helpers = _unit_helpers("test_metrics_fid_kid_clip")
    id_helpers = _unit_helpers("test_metrics_identity")
    inc = comfy_server.base_dir / "models" / "inception"
    inc.mkdir(parents=True, exist_ok=True)
    fid_helpers._random_inception_state(inc / "inception_test.safetensors")
    pack = comfy_server.base_dir / "models" / "insightface" / "tiny_pack"
    pack.mkdir(parents=True, exist_ok=True)
    id_helpers.build_scrfd(pack / "det_tiny.onnx")
    id_helpers.build_arcface(pack / "w600k_tiny.onnx")
    info = comfy_server.object_info()
    assert (
        "tiny_pack"
        in info["PoseLabIdentitySimilarity"]["input"]["required"]["insightface_pack"][1]["options"]
    )
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "pair_source.jpg"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "pair_target.jpg"}},
        "3": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
        "4": {
            "class_type": "PoseLabFIDKID",
            "inputs": {
                "images_a": ["3", 0],
                "images_b": ["3", 0],
                "inception_weights": "inception_test.safetensors",
                "kid_subset_size": 100,
            },
        },
        "5": {
            "class_type": "ImageFlip",
            "inputs": {"image": ["3", 0], "flip_method": "x-axis: vertically"},
        },
        "6": {
            "class_type": "PoseLabFIDKID",
            "inputs": {
                "images_a": ["3", 0],
                "images_b": ["5", 0],
                "inception_weights": "inception_test.safetensors",
                "kid_subset_size": 100,
            },
        },
        "7": {
            "class_type": "PoseLabIdentitySimilarity",
            "inputs": {"source": ["1", 0], "result": ["1", 0], "insightface_pack": "tiny_pack"},
        },
    }
    entry = comfy_server.run_ok(prompt)
    same, other = _ui_text(entry, "4"), _ui_text(entry, "6")
    assert abs(_number(same, "FID")) < 1e-3
    assert _number(other, "FID") > 1e-3  # upside-down images have other Inception statistics
    ident = _ui_text(entry, "7")
    assert "insightface-arcface" in ident and _number(ident, "identity") == pytest.approx(
        1.0, abs=1e-5
    )
