"""Identity similarity: cosine between face embeddings of the source and the result.

Two embedders, and every result says which one produced it:

* ``insightface-arcface``: an insightface model pack (a folder with a detection ONNX such as
  SCRFD ``det_10g.onnx`` and a recognition ONNX such as ArcFace ``w600k_r50.onnx``), the
  standard for identity preservation. Used whenever such a folder is given.
* ``mtcnn-hog-fallback``: the MTCNN face detector that ships inside facenet-pytorch, the crop
  aligned on its 5 landmarks to ArcFace's 112x112 template, and a HOG descriptor of that crop.
  HOG is **not a face-recognition model**: it is a weak proxy that mostly rewards the same
  face geometry and lighting. It exists so the metric runs without downloads; put an
  insightface pack in ``models/insightface`` for numbers worth reporting.

When no face is found in either image, the similarity is NaN (nothing to compare), not 0.
"""

from __future__ import annotations

import glob
import logging
import os
import threading

import cv2
import numpy as np

from ..common.images import to_rgb_uint8

log = logging.getLogger("poselab")

INSIGHTFACE = "insightface-arcface"
FALLBACK = "mtcnn-hog-fallback"
FALLBACK_NOTE = (
    "mtcnn-hog-fallback: MTCNN crop + HOG descriptor, NOT a face-recognition model (weak proxy); "
    "put an insightface pack (e.g. buffalo_l/) in models/insightface for ArcFace"
)

# ArcFace's 5-point template at 112x112 (insightface utils/face_align.py).
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    np.float32,
)

_LOCK = threading.Lock()
_CACHE: dict = {}


def cosine(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return float("nan")
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(a @ b / (na * nb))


def is_insightface_pack(folder: str) -> bool:
    return os.path.isdir(folder) and bool(glob.glob(os.path.join(folder, "*.onnx")))


class InsightFaceEmbedder:
    """ArcFace embedding of the largest face, through insightface's FaceAnalysis on local files."""

    name = INSIGHTFACE

    def __init__(self, pack_dir: str, det_size: int = 640):
        from insightface.app import FaceAnalysis

        if not is_insightface_pack(pack_dir):
            raise FileNotFoundError(
                f"{pack_dir}: not an insightface model pack (no .onnx files): put e.g. buffalo_l/ with det_10g.onnx "
                "and w600k_r50.onnx there"
            )
        try:
            self.app = FaceAnalysis(
                name=pack_dir,
                allowed_modules=["detection", "recognition"],
                providers=["CPUExecutionProvider"],
            )
        except AssertionError:  # insightface asserts that a detector was found
            raise ValueError(
                f"{pack_dir}: the insightface pack lacks a detection model (e.g. det_10g.onnx, SCRFD)"
            ) from None
        missing = {"detection", "recognition"} - set(self.app.models)
        if missing:
            raise ValueError(
                f"{pack_dir}: the insightface pack lacks a {' and a '.join(sorted(missing))} model "
                "(e.g. det_10g.onnx for detection, w600k_r50.onnx for recognition)"
            )
        self.app.prepare(ctx_id=-1, det_size=(det_size, det_size))
        self.pack_dir = pack_dir

    def __call__(self, image_rgb: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        bgr = np.ascontiguousarray(to_rgb_uint8(image_rgb)[:, :, ::-1])
        faces = self.app.get(bgr)
        faces = [f for f in faces if getattr(f, "embedding", None) is not None]
        if not faces:
            return None, None
        face = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
        return np.asarray(face.embedding, np.float64), np.asarray(face.bbox[:4], np.float64)


class MTCNNHogEmbedder:
    """Fallback: MTCNN (weights inside facenet-pytorch) + aligned 112x112 crop + HOG."""

    name = FALLBACK

    def __init__(self):
        from facenet_pytorch import MTCNN

        self.mtcnn = MTCNN(keep_all=True, device="cpu", post_process=False)

    def aligned_crop(self, image_rgb: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        rgb = to_rgb_uint8(image_rgb)
        boxes, probs, points = self.mtcnn.detect(rgb, landmarks=True)
        if boxes is None or len(boxes) == 0:
            return None, None
        # facenet-pytorch returns object-dtype arrays; make them numeric first.
        boxes = np.asarray(boxes, dtype=float)
        points = np.asarray(points, dtype=float)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        i = int(np.argmax(areas))
        m, _ = cv2.estimateAffinePartial2D(points[i].astype(np.float32), ARCFACE_TEMPLATE)
        if m is None:
            return None, None
        crop = cv2.warpAffine(rgb, m, (112, 112), borderMode=cv2.BORDER_REPLICATE)
        return crop, boxes[i]

    def __call__(self, image_rgb: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        from skimage.feature import hog

        crop, box = self.aligned_crop(image_rgb)
        if crop is None:
            return None, None
        gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255.0
        feat = hog(
            gray,
            orientations=9,
            pixels_per_cell=(8, 8),
            cells_per_block=(2, 2),
            feature_vector=True,
        )
        return feat, box


def get_embedder(insightface_pack: str | None):
    """The ArcFace embedder for a pack folder, or the MTCNN+HOG fallback when None (cached)."""
    key = (os.path.abspath(insightface_pack),) if insightface_pack else (FALLBACK,)
    with _LOCK:
        if key not in _CACHE:
            _CACHE.clear()
            _CACHE[key] = (
                InsightFaceEmbedder(insightface_pack) if insightface_pack else MTCNNHogEmbedder()
            )
        return _CACHE[key]


def identity_similarity(source_rgb: np.ndarray, result_rgb: np.ndarray, embedder) -> dict:
    """``{"similarity", "embedder", "face_in_source", "face_in_result", "note"}``."""
    e_src, _ = embedder(source_rgb)
    e_out, _ = embedder(result_rgb)
    sim = cosine(e_src, e_out)
    note = FALLBACK_NOTE if embedder.name == FALLBACK else ""
    if e_src is None or e_out is None:
        where = " and ".join(w for w, e in (("source", e_src), ("result", e_out)) if e is None)
        note = (f"no face found in the {where}; " + note).strip("; ")
        log.warning("PoseLab identity: no face found in the %s", where)
    return {
        "similarity": sim,
        "embedder": embedder.name,
        "face_in_source": e_src is not None,
        "face_in_result": e_out is not None,
        "note": note,
    }
