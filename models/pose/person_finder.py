"""Finding every person in a photo for a single-person pose model.

MediaPipe Pose sees one person per call, so the multi-person path needs places to look:
faces (MTCNN and MediaPipe's full-range face detector, both shipped inside their wheels)
give one body-sized crop each, and skeletons found more than once are merged here.
Everything works on ``(x0, y0, x1, y1)`` boxes in pixels of the full image.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from ..common import legacy_mediapipe
from .keypoints import J

log = logging.getLogger("poselab")
_LOCK = threading.Lock()
_FACE_MODELS: dict[str, object] = {}

# Joints used to judge whether two skeletons are the same person: the torso and limbs, which
# every backend places reliably (faces are tiny and eyes/ears flip between detectors).
CORE_JOINTS = np.array([J[n] for n in (
    "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "nose",
)])


def _mtcnn():
    """facenet-pytorch's MTCNN (weights inside the wheel), or None if the package is missing."""
    model = _FACE_MODELS.get("mtcnn")
    if model is False:
        return None
    if model is None:
        try:
            from facenet_pytorch import MTCNN
        except ImportError:
            log.warning("PoseLab: facenet-pytorch is not installed, so people are found with MediaPipe's face "
                        "detector alone (fewer people in crowded photos). Install it with: "
                        "pip install --no-deps facenet-pytorch")
            _FACE_MODELS["mtcnn"] = False
            return None

        # min_face_size 20: MTCNN's default; smaller faces belong to people too small to pose.
        model = MTCNN(keep_all=True, device="cpu", min_face_size=20, post_process=False)
        _FACE_MODELS["mtcnn"] = model
    return model


# model_selection=1: the full-range model (people up to ~5 m); it ships in the wheel.
_MP_FACES = legacy_mediapipe.Graph(
    lambda mp_solutions: mp_solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5))


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def nms(boxes: list[tuple[float, float, float, float, float]], iou: float = 0.4) -> list[tuple]:
    """Keep the highest-scoring of overlapping ``(x0, y0, x1, y1, score)`` boxes."""
    kept: list[tuple] = []
    for box in sorted(boxes, key=lambda b: -b[4]):
        if all(box_iou(box, k) < iou for k in kept):
            kept.append(box)
    return kept


def detect_faces(image_rgb: np.ndarray, min_score: float = 0.8, mtcnn: bool = True) -> list[tuple[float, float, float, float, float]]:
    """Faces as ``(x0, y0, x1, y1, score)``, from MTCNN and MediaPipe's full-range detector.

    The two miss different faces (MTCNN: profiles and dark faces; MediaPipe: small ones), so the
    union after NMS finds more people than either alone.
    """
    h, w = image_rgb.shape[:2]
    if min(h, w) < 32:
        return []
    boxes: list[tuple[float, float, float, float, float]] = []
    with _LOCK:
        face_model = _mtcnn() if mtcnn else None
        found, probs = face_model.detect(image_rgb) if face_model is not None else (None, None)
    result = _MP_FACES.process(image_rgb)
    if found is not None:
        # MTCNN returns object-dtype arrays (see docs/feasibility); make them plain floats.
        for box, prob in zip(np.asarray(found, dtype=np.float64), np.asarray(probs, dtype=np.float64)):
            if prob >= min_score:
                boxes.append((*(float(v) for v in box), float(prob)))
    for det in result.detections or []:
        rb = det.location_data.relative_bounding_box
        score = float(det.score[0])
        if score >= min_score - 0.3:  # MediaPipe's scores run lower than MTCNN's for the same face
            boxes.append((rb.xmin * w, rb.ymin * h, (rb.xmin + rb.width) * w, (rb.ymin + rb.height) * h, score))
    return nms(boxes, 0.3)


def body_crops_from_face(face, image_shape, scales=(7.0,)) -> list[tuple[int, int, int, int]]:
    """Square crops expected to hold the body below a face box (may extend past the image).

    A standing adult is about 7.5 head heights tall; the crop starts one face height above the
    face so the head sits near the top, and is centred on the face horizontally so outstretched
    arms fit. Several scales cover sitting/cut-off people (smaller) and wide poses (larger).
    """
    x0, y0, x1, y1 = face[:4]
    s = max(x1 - x0, y1 - y0)
    cx = (x0 + x1) / 2
    crops = []
    for k in scales:
        side = k * s
        top = y0 - 0.8 * s
        crops.append((int(round(cx - side / 2)), int(round(top)), int(round(cx + side / 2)), int(round(top + side))))
    return crops


def skeleton_size(body: np.ndarray) -> float:
    pts = body[body[:, 2] > 0, :2]
    if len(pts) < 2:
        return 0.0
    return float(np.max(pts.max(axis=0) - pts.min(axis=0)))


def same_person(a: np.ndarray, b: np.ndarray, tol: float = 0.12) -> bool:
    """Whether two OpenPose-18 skeletons are one person: their shared core joints lie, on
    average, within ``tol`` of the smaller skeleton's size of each other."""
    both = (a[CORE_JOINTS, 2] > 0) & (b[CORE_JOINTS, 2] > 0)
    if both.sum() < 3:
        return False
    idx = CORE_JOINTS[both]
    dist = np.linalg.norm(a[idx, :2] - b[idx, :2], axis=1)
    scale = max(min(skeleton_size(a), skeleton_size(b)), 1.0)
    return float(np.median(dist)) < tol * scale


def skeleton_hull_mask(frame) -> np.ndarray:
    """A rough person mask ``(H, W)`` float32 for a backend without segmentation: per person, the
    convex hull of its body joints, grown by a tenth of its size so the outline covers flesh."""
    import cv2

    mask = np.zeros((frame.height, frame.width), np.uint8)
    for person in frame.people:
        pts = person.body[person.body[:, 2] > 0, :2]
        if len(pts) == 0:
            continue
        size = max(skeleton_size(person.body), 8.0)
        hull = cv2.convexHull(np.round(pts).astype(np.int32))
        one = np.zeros_like(mask)
        cv2.fillConvexPoly(one, hull, 1)
        cv2.polylines(one, [hull], True, 1, thickness=max(1, int(size * 0.2)))
        mask |= one
    return mask.astype(np.float32)
