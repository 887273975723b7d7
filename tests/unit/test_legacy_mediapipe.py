"""Without a mediapipe that has the legacy solutions, the nodes say what to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _message(setup: str) -> str:
    code = (f"import sys, types\n{setup}\n"
            f"sys.path.insert(0, {str(REPO / 'scripts')!r})\n"
            "import pack\n"
            "from poselab.models.common import legacy_mediapipe\n"
            "try:\n    legacy_mediapipe.solutions()\nexcept legacy_mediapipe.MediaPipeUnavailable as e:\n    print(e)\n"
            "else:\n    print('available')\n")
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout


def test_missing_mediapipe_names_the_fix():
    msg = _message("sys.modules['mediapipe'] = None")
    assert "mediapipe is not installed" in msg
    assert 'pip install "mediapipe==0.10.14"' in msg


def test_mediapipe_without_solutions_names_the_removal():
    msg = _message("m = types.ModuleType('mediapipe'); m.__version__ = '1.2.3'; sys.modules['mediapipe'] = m")
    assert "mediapipe 1.2.3 has no legacy 'solutions'" in msg and "0.10.30" in msg


def test_the_pinned_mediapipe_is_available():
    assert _message("").strip() == "available"


def test_a_failed_call_does_not_break_the_next_ones():
    """A MediaPipe graph that raised once stays in error; ours is rebuilt, so the next image works."""
    import cv2
    import numpy as np
    import pytest

    from poselab.models.segmentation import masks

    photo = cv2.imread(str(REPO / "assets" / "samples" / "cameraman.png"))[..., ::-1].copy()
    with pytest.raises(RuntimeError, match="ROI width and height must be > 0"):
        masks._POSE.process(np.zeros((0, 4, 3), np.uint8))
    assert masks.pose_model_mask(photo) is not None
    off_canvas = np.zeros((18, 3), np.float32)
    off_canvas[:, :2], off_canvas[:, 2] = (20000.0, 100.0), 1.0
    assert masks.pose_model_mask(photo, off_canvas) is None  # nobody of them on the image: no crop, no error
    assert masks.pose_model_mask(photo) is not None
