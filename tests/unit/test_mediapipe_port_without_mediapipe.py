"""The default pose extraction and person masks work where the ``mediapipe`` package cannot be
imported (mediapipe >= 0.10.30 dropped the models and the solutions API; Python 3.13 has no wheel
with them), and without onnxruntime too (the torch executor)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = r"""
import json, sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None  # any `import name` now raises ImportError
sys.path.insert(0, "scripts")
import pack  # noqa: F401  (the repo root as the package poselab)
import cv2, numpy as np
from poselab.models.pose.detect_mediapipe import MediaPipePoseDetector
from poselab.models.segmentation import masks
from poselab.models.mediapipe_port import runtime
rgb = cv2.cvtColor(cv2.imread("assets/samples/cameraman.png"), cv2.COLOR_BGR2RGB)
frame, mask = MediaPipePoseDetector(hands=True, face=True).detect(rgb)
person = frame.people[0]
print(json.dumps({
    "people": len(frame.people), "joints": int((person.body[:, 2] > 0).sum()),
    "face": person.face is not None, "mask": float(mask.mean()),
    "pose_mask": float(masks.person_mask_mediapipe(rgb, [person.body], 0).mean()),
    "selfie": float(masks.selfie_mask(rgb).mean()),
    "backend": runtime.backend_for("cpu"),
    "mediapipe_loaded": any(m == "mediapipe" or m.startswith("mediapipe.") for m, v in sys.modules.items() if v is not None),
}))
"""


@pytest.mark.parametrize("blocked", ["mediapipe", "mediapipe,onnxruntime"])
def test_extraction_without_mediapipe(blocked):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, blocked],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["people"] == 1 and out["joints"] >= 12 and out["face"]
    assert 0.05 < out["mask"] < 0.6 and 0.05 < out["pose_mask"] < 0.6 and 0.05 < out["selfie"] < 0.6
    assert not out["mediapipe_loaded"]
    has_ort = importlib.util.find_spec("onnxruntime") is not None
    assert out["backend"] == (
        "onnxruntime" if has_ort and "onnxruntime" not in blocked else "torch"
    )
