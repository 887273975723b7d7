"""Keypoint formats and the POSE_KEYPOINT interchange type.

Internally a pose is a :class:`PoseFrame` (one image) holding :class:`Person` objects whose
keypoints are float32 arrays of ``(x, y, score)`` rows in **pixels** of the frame's canvas;
``score == 0`` means the joint is missing. Body joints follow OpenPose COCO-18 order.

On the wire (``POSE_KEYPOINT``) we write what comfyui_controlnet_aux's DWPose node writes, so
its renderers and every pack that reads that type understand us:

* a list with one dict per frame: ``{"people": [...], "canvas_width": W, "canvas_height": H}``;
* per person flat lists ``pose_keypoints_2d`` (18 triplets), ``hand_left_keypoints_2d`` /
  ``hand_right_keypoints_2d`` (21) and ``face_keypoints_2d`` (70), or ``None`` when absent;
* pixel coordinates and confidence ``1.0`` for a present point, ``[0, 0, 0]`` for a missing
  one, because controlnet_aux's decoder drops any point with ``c < 1``;
* the real detector scores under the extra person key ``"poselab_scores"``, which other
  readers ignore.

Reading accepts both conventions (pixels or coordinates normalised to [0, 1]), decided per
array, as OpenPose and DWPose output differ; a JSON string is accepted too.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

OPENPOSE18_NAMES = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)
J = {name: i for i, name in enumerate(OPENPOSE18_NAMES)}
NUM_BODY = 18
NUM_HAND = 21
NUM_FACE = 70

# Bones drawn by OpenPose (and controlnet_aux), as (from, to) joint indices, in OpenPose's
# colour order.
OPENPOSE18_LIMBS = (
    (1, 2),
    (1, 5),
    (2, 3),
    (3, 4),
    (5, 6),
    (6, 7),
    (1, 8),
    (8, 9),
    (9, 10),
    (1, 11),
    (11, 12),
    (12, 13),
    (1, 0),
    (0, 14),
    (14, 16),
    (0, 15),
    (15, 17),
)

# Left/right partner of each OpenPose-18 joint (for mirroring).
OPENPOSE18_FLIP = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)

COCO17_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
# COCO-17 index -> OpenPose-18 index (COCO has no neck).
COCO17_TO_OPENPOSE18 = tuple(J[name] for name in COCO17_NAMES)

# MediaPipe Pose (BlazePose, 33 landmarks) index -> OpenPose-18 index. The neck is
# synthesised from the shoulders (see :func:`mediapipe33_to_openpose18`).
MEDIAPIPE33_TO_OPENPOSE18 = {
    0: J["nose"],
    2: J["left_eye"],
    5: J["right_eye"],
    7: J["left_ear"],
    8: J["right_ear"],
    11: J["left_shoulder"],
    12: J["right_shoulder"],
    13: J["left_elbow"],
    14: J["right_elbow"],
    15: J["left_wrist"],
    16: J["right_wrist"],
    23: J["left_hip"],
    24: J["right_hip"],
    25: J["left_knee"],
    26: J["right_knee"],
    27: J["left_ankle"],
    28: J["right_ankle"],
}

SCORES_KEY = "poselab_scores"
_PARTS = (
    # (attribute, wire key, point count)
    ("body", "pose_keypoints_2d", NUM_BODY),
    ("left_hand", "hand_left_keypoints_2d", NUM_HAND),
    ("right_hand", "hand_right_keypoints_2d", NUM_HAND),
    ("face", "face_keypoints_2d", NUM_FACE),
)


# Bounds of what a node accepts, so one bad value cannot stall or exhaust the server: canvases as
# large as ComfyUI's largest image, a crowd's worth of people, points within a few canvas sizes of
# the canvas (an edit may push a limb off it; 1e30 is a bug upstream), JSON nesting as a pose has.
MAX_CANVAS_SIDE = 16384
MAX_PEOPLE = 1000
FAR_OFF_CANVAS = 16  # canvas sizes
MAX_JSON_DEPTH = 64


class PoseFormatError(ValueError):
    """A POSE_KEYPOINT value or pose JSON that cannot be read; the message says what and where."""


PoseFormatError.__module__ = "poselab"  # ComfyUI shows "poselab.PoseFormatError", not a file path


@dataclass
class Person:
    """One person's keypoints, ``(x, y, score)`` rows in pixels; score 0 = missing."""

    body: np.ndarray
    left_hand: np.ndarray | None = None
    right_hand: np.ndarray | None = None
    face: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.body = _as_points(self.body, NUM_BODY, "body")
        for name, count in (("left_hand", NUM_HAND), ("right_hand", NUM_HAND), ("face", NUM_FACE)):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, _as_points(value, count, name))

    @property
    def visible(self) -> np.ndarray:
        """Boolean mask of the body joints that are present."""
        return self.body[:, 2] > 0

    def copy(self) -> "Person":
        return copy.deepcopy(self)

    def bbox(self) -> tuple[float, float, float, float] | None:
        """``(x0, y0, x1, y1)`` around the present body joints, or None if there are none."""
        pts = self.body[self.visible, :2]
        if len(pts) == 0:
            return None
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)


@dataclass
class PoseFrame:
    """All people found in one image, on a canvas of ``width`` x ``height`` pixels."""

    width: int
    height: int
    people: list[Person] = field(default_factory=list)

    def copy(self) -> "PoseFrame":
        return copy.deepcopy(self)


def _as_points(value: Any, count: int, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim == 1 and arr.size == count * 3:
        arr = arr.reshape(count, 3)
    if arr.shape == (count, 2):
        arr = np.concatenate([arr, np.ones((count, 1), np.float32)], axis=1)
    if arr.shape != (count, 3):
        raise PoseFormatError(
            f"{what}: expected {count} keypoints of (x, y, score), got shape {arr.shape}"
        )
    arr = arr.copy()
    bad = ~np.isfinite(arr).all(axis=1)
    arr[bad] = 0.0
    arr[arr[:, 2] <= 0] = 0.0
    return arr


def empty_body() -> np.ndarray:
    return np.zeros((NUM_BODY, 3), np.float32)


def mediapipe33_to_openpose18(landmarks: np.ndarray, min_visibility: float = 0.0) -> np.ndarray:
    """Map MediaPipe's 33 landmarks ``(x, y, visibility)`` in pixels to OpenPose-18.

    The neck, which MediaPipe lacks, is the midpoint of the shoulders when both are present,
    scored by the weaker shoulder. Points at or below ``min_visibility`` become missing.
    """
    lm = np.asarray(landmarks, dtype=np.float32)
    if lm.shape != (33, 3):
        raise ValueError(f"expected MediaPipe landmarks of shape (33, 3), got {lm.shape}")
    out = empty_body()
    for mp_idx, op_idx in MEDIAPIPE33_TO_OPENPOSE18.items():
        if lm[mp_idx, 2] > min_visibility:
            out[op_idx] = lm[mp_idx]
    rs, ls = out[J["right_shoulder"]], out[J["left_shoulder"]]
    if rs[2] > 0 and ls[2] > 0:
        out[J["neck"], :2] = (rs[:2] + ls[:2]) / 2
        out[J["neck"], 2] = min(rs[2], ls[2])
    return out


def coco17_to_openpose18(points: np.ndarray) -> np.ndarray:
    """COCO-17 ``(x, y, score)`` rows to OpenPose-18, synthesising the neck from the shoulders."""
    pts = np.asarray(points, dtype=np.float32)
    if pts.shape != (17, 3):
        raise ValueError(f"expected COCO-17 keypoints of shape (17, 3), got {pts.shape}")
    out = empty_body()
    out[list(COCO17_TO_OPENPOSE18)] = pts
    rs, ls = out[J["right_shoulder"]], out[J["left_shoulder"]]
    if rs[2] > 0 and ls[2] > 0:
        out[J["neck"]] = [(rs[0] + ls[0]) / 2, (rs[1] + ls[1]) / 2, min(rs[2], ls[2])]
    return out


def openpose18_to_coco17(body: np.ndarray) -> np.ndarray:
    """OpenPose-18 rows to COCO-17 rows (the neck is dropped)."""
    body = np.asarray(body, dtype=np.float32)
    return body[list(COCO17_TO_OPENPOSE18)].copy()


def scaled_bodies(frame: PoseFrame, width: int, height: int, dtype=np.float64) -> list[np.ndarray]:
    """Every person's body in the pixels of a ``width`` x ``height`` image (copies), for using a
    pose with an image whose canvas has another size."""
    sx, sy = width / frame.width, height / frame.height
    bodies = []
    for person in frame.people:
        body = person.body.astype(dtype)
        body[:, 0] *= sx
        body[:, 1] *= sy
        bodies.append(body)
    return bodies


# --------------------------------------------------------------------------- POSE_KEYPOINT I/O


def _is_normalized(arr: np.ndarray) -> bool:
    present = arr[arr[:, 2] > 0]
    return len(present) > 0 and bool(np.all(np.abs(present[:, :2]) <= 1.0))


def _read_part(
    person: dict, key: str, count: int, width: int, height: int, where: str
) -> np.ndarray | None:
    raw = person.get(key)
    if raw is None:
        return None
    if not isinstance(raw, (list, tuple)):
        raise PoseFormatError(
            f"{where}.{key}: expected a flat list of numbers, got {type(raw).__name__}"
        )
    if len(raw) == 0:
        return None
    if isinstance(raw[0], (list, tuple)):  # tolerate nested [[x, y, c], ...]
        raw = [v for triple in raw for v in triple]
    try:
        arr = np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise PoseFormatError(f"{where}.{key}: not a list of numbers ({exc})") from None
    if arr.size != count * 3:
        raise PoseFormatError(
            f"{where}.{key}: expected {count * 3} numbers ({count} x, y, c), got {arr.size}"
        )
    arr = arr.reshape(count, 3)
    # controlnet_aux writes missing points as [0, 0, 0] and some tools as [-1, -1, 0].
    arr[(arr[:, 2] <= 0) | ~np.isfinite(arr).all(axis=1)] = 0.0
    if _is_normalized(arr):
        arr[:, 0] *= width
        arr[:, 1] *= height
    _check_near_canvas(arr, width, height, f"{where}.{key}")
    return arr


def _check_near_canvas(arr: np.ndarray, width: int, height: int, where: str) -> None:
    limit = FAR_OFF_CANVAS * max(width, height)
    far = (arr[:, 2] > 0) & ((np.abs(arr[:, 0]) > limit) | (np.abs(arr[:, 1]) > limit))
    if far.any():
        i = int(np.flatnonzero(far)[0])
        raise PoseFormatError(
            f"{where}: point {i} at ({arr[i, 0]:.6g}, {arr[i, 1]:.6g}) is more than {FAR_OFF_CANVAS} "
            f"canvas sizes outside the {width}x{height} canvas; fix the pose upstream"
        )


def _parse_frame(frame: Any, index: int) -> PoseFrame:
    where = f"frame {index}"
    if not isinstance(frame, dict):
        raise PoseFormatError(f"{where}: expected a dict with 'people', got {type(frame).__name__}")
    try:
        width = int(frame.get("canvas_width", 0))
        height = int(frame.get("canvas_height", 0))
    except (TypeError, ValueError):
        raise PoseFormatError(f"{where}: canvas_width/canvas_height must be integers") from None
    if width <= 0 or height <= 0:
        raise PoseFormatError(
            f"{where}: canvas_width and canvas_height must be positive (got {width}x{height})"
        )
    if max(width, height) > MAX_CANVAS_SIDE:
        raise PoseFormatError(
            f"{where}: the {width}x{height} canvas is larger than {MAX_CANVAS_SIDE} pixels per side "
            "(ComfyUI's largest image); rescale the pose"
        )
    people_raw = frame.get("people", [])
    if people_raw is None:
        people_raw = []
    if not isinstance(people_raw, list):
        raise PoseFormatError(f"{where}.people: expected a list, got {type(people_raw).__name__}")
    if len(people_raw) > MAX_PEOPLE:
        raise PoseFormatError(
            f"{where}: {len(people_raw)} people; at most {MAX_PEOPLE} per frame are accepted"
        )
    people = []
    for p_idx, person in enumerate(people_raw):
        p_where = f"{where}.people[{p_idx}]"
        if not isinstance(person, dict):
            raise PoseFormatError(f"{p_where}: expected a dict, got {type(person).__name__}")
        parts = {}
        for attr, key, count in _PARTS:
            parts[attr] = _read_part(person, key, count, width, height, p_where)
        if parts["body"] is None:
            parts["body"] = empty_body()
        scores = person.get(SCORES_KEY)
        if isinstance(scores, dict):
            for attr, _, count in _PARTS:
                s = scores.get(attr)
                arr = parts[attr]
                if arr is not None and isinstance(s, list) and len(s) == count:
                    try:
                        s = np.asarray(s, dtype=np.float32)
                    except (TypeError, ValueError):
                        raise PoseFormatError(
                            f"{p_where}.{SCORES_KEY}.{attr}: expected {count} numbers"
                        ) from None
                    present = (arr[:, 2] > 0) & np.isfinite(s)
                    arr[present, 2] = np.clip(s[present], 1e-3, None)
        people.append(Person(**parts))
    return PoseFrame(width=width, height=height, people=people)


def parse_pose_keypoint(value: Any) -> list[PoseFrame]:
    """Read a POSE_KEYPOINT value (list of frames, a single frame dict, or a JSON string of either)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PoseFormatError(
                f"pose JSON is not UTF-8 text (byte {exc.start} is 0x{value[exc.start]:02x})"
            ) from None
    if isinstance(value, str):
        _check_json_depth(value)
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise PoseFormatError(
                f"pose JSON is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            ) from None
        except RecursionError:
            raise PoseFormatError(
                f"pose JSON is nested too deeply (a pose needs {MAX_JSON_DEPTH} levels at most)"
            ) from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise PoseFormatError(f"POSE_KEYPOINT must be a list of frames, got {type(value).__name__}")
    return [_parse_frame(frame, i) for i, frame in enumerate(value)]


def _check_json_depth(text: str) -> None:
    """Refuse absurdly nested JSON before parsing it (a 100 000-deep array is a RecursionError
    inside ``json`` otherwise). Brackets inside strings are counted too, which only overestimates."""
    depth = peak = 0
    for ch in re.sub(r"[^\[\]{}]+", "", text):
        if ch in "[{":
            depth += 1
            if depth > peak:
                peak = depth
                if peak > MAX_JSON_DEPTH:
                    raise PoseFormatError(
                        f"pose JSON is nested more than {MAX_JSON_DEPTH} levels deep; a pose needs "
                        "a handful"
                    )
        elif ch in "]}":
            depth -= 1


def has_joint_on_canvas(body: np.ndarray, width: int, height: int) -> bool:
    """Whether any present joint of ``body`` lies on the ``width`` x ``height`` canvas (an edit or
    a retarget can move a whole person off it)."""
    body = np.asarray(body)
    vis = body[:, 2] > 0
    x, y = body[vis, 0], body[vis, 1]
    return bool(((x >= 0) & (x < width) & (y >= 0) & (y < height)).any())


def read_frames(value: Any, what: str = "pose") -> list[PoseFrame]:
    """``parse_pose_keypoint`` for a node input, which must hold at least one frame."""
    frames = parse_pose_keypoint(value)
    if not frames:
        raise PoseFormatError(
            f"the {what} input holds no frames: connect a pose detector, the pose library or a "
            "pose JSON loader"
        )
    return frames


def _flat(arr: np.ndarray | None, count: int) -> tuple[list[float] | None, list[float] | None]:
    """Wire list (c in {0, 1}) and the real scores of one part."""
    if arr is None:
        return None, None
    out = np.zeros((count, 3), np.float32)
    present = arr[:, 2] > 0
    out[present, :2] = arr[present, :2]
    out[present, 2] = 1.0
    return [round(float(v), 3) for v in out.reshape(-1)], [round(float(v), 4) for v in arr[:, 2]]


def to_pose_keypoint(frames: Iterable[PoseFrame]) -> list[dict]:
    """Write frames as controlnet_aux-compatible POSE_KEYPOINT (pixels, c in {0, 1}, real scores kept aside)."""
    result = []
    for frame in frames:
        people = []
        for person in frame.people:
            entry: dict[str, Any] = {}
            scores: dict[str, list[float]] = {}
            for attr, key, count in _PARTS:
                wire, score = _flat(getattr(person, attr), count)
                entry[key] = wire
                if score is not None:
                    scores[attr] = score
            entry[SCORES_KEY] = scores
            people.append(entry)
        result.append(
            {"people": people, "canvas_width": int(frame.width), "canvas_height": int(frame.height)}
        )
    return result


def pose_keypoint_to_json(value: Any, indent: int | None = None) -> str:
    """Serialise a POSE_KEYPOINT value (validated) to a JSON string."""
    return json.dumps(to_pose_keypoint(parse_pose_keypoint(value)), indent=indent)
