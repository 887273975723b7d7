"""The ``mediapipe`` package's legacy ``solutions`` API, or a clear error saying what to install.

mediapipe removed ``solutions`` and its bundled models in 0.10.30, and no release that has them
exists for Python 3.13. 0.10.14 is the newest with them that accepts numpy 2 (0.10.15-0.10.21
require numpy < 2), which is what requirements.txt asks for on Python < 3.13.
"""

from __future__ import annotations

import sys
import threading


class MediaPipeUnavailable(RuntimeError):
    """The installed mediapipe (or none) has no legacy solutions and their models."""


MediaPipeUnavailable.__module__ = "poselab"  # shown by ComfyUI as poselab.MediaPipeUnavailable, not a file path


def solutions():
    """``mediapipe.solutions``; raises MediaPipeUnavailable with the fix when it is missing."""
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    try:
        import mediapipe
    except ImportError as exc:
        raise MediaPipeUnavailable(_advice(f"mediapipe is not installed ({exc})", py)) from None
    sol = getattr(mediapipe, "solutions", None)
    if sol is None:
        version = getattr(mediapipe, "__version__", "?")
        raise MediaPipeUnavailable(_advice(
            f"the installed mediapipe {version} has no legacy 'solutions' API and ships no models "
            "(removed in mediapipe 0.10.30)", py)) from None
    return sol


def _advice(what: str, py: str) -> str:
    if sys.version_info >= (3, 13):
        fix = (f"no mediapipe release with these models exists for Python {py}; use the 'openpose' backend "
               "(its files in models/openpose) or a ComfyUI on Python 3.10-3.12")
    else:
        fix = "install it into ComfyUI's Python with: pip install \"mediapipe==0.10.14\" (works with numpy 1 and 2)"
    return f"PoseLab's MediaPipe pose/segmentation models are unavailable: {what}. Fix: {fix}."


class Graph:
    """One legacy MediaPipe graph: built on first use, used by one caller at a time (graphs are
    not re-entrant), and thrown away after any failure. A graph that raised once stays in error
    ("Graph has errors: ... ROI width and height must be > 0") for every later call, so keeping it
    would let one bad request break every request after it until ComfyUI restarts."""

    def __init__(self, build):
        self._build = build  # solutions -> graph
        self._graph = None
        self._lock = threading.Lock()

    def process(self, image):
        with self._lock:
            if self._graph is None:
                self._graph = self._build(solutions())
            try:
                return self._graph.process(image)
            except Exception:
                graph, self._graph = self._graph, None
                try:
                    graph.close()
                except Exception:  # noqa: BLE001 - already broken; the original error matters
                    pass
                raise

    def get(self):
        """The built graph (for tests that check it is reused)."""
        with self._lock:
            if self._graph is None:
                self._graph = self._build(solutions())
            return self._graph
