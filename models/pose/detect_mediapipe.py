"""Multi-person pose with MediaPipe's models, the embedded default backend (no ``mediapipe`` needed).

The models ship converted in models/mediapipe_port/ and run with torch or onnxruntime there
(parity with mediapipe 0.10.21 is tested). MediaPipe's own legacy graph keeps one detection and
so one person; here, in one batched pass per batch of images:

1. the pose detector runs on the whole image and on half-overlapping square tiles of 0.6 x the
   short side (zoomed-in views find people the 224-px whole-image pass sees too small), and
   **every** detection is kept; the tiles' detections are merged by MediaPipe's weighted NMS;
2. each detection gives a landmark ROI (MediaPipe's rule), and the landmark model runs on all
   ROIs of all images in one batch, each crop also mirrored;
3. results whose pose flag is below ``min_presence`` are dropped; the rest are grouped by
   keypoint similarity (NMS by keypoints), and each person's joints are the flag x visibility
   weighted mean of its views;
4. optionally each person's hands (21 points) and face (70 points, from the 468-point mesh)
   are found from its pose, as MediaPipe Holistic does (models/mediapipe_port/hands.py, face.py).

Measured on the 18 annotated photos (31 people; scripts/eval_pose_accuracy.py): see the README.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from ..common.images import to_rgb_uint8
from ..mediapipe_port import geometry as geo
from ..mediapipe_port import pose as mp_pose
from ..mediapipe_port.runtime import image_tensor
from . import person_finder
from .keypoints import J, Person, PoseFrame, mediapipe33_to_openpose18

MIN_SIDE = 32  # below this there is nothing a 256-px pose model can resolve
WORK_SIDE = 1600  # larger photos are searched at this size (bounds crop aliasing and mask memory)


@dataclass
class _Person:
    views: list[int]  # indices into the landmark results
    points: np.ndarray = field(default=None)  # fused (33, 5): x, y, z, visibility, presence (pixels)
    flag: float = 0.0


def tile_rois(width: int, height: int, fraction: float = 0.6) -> list[np.ndarray]:
    """Square tiles ``fraction`` x the short side, half-overlapping, covering the image (pixel ROIs)."""
    side = fraction * min(width, height)
    step = side / 2
    nx = int(np.ceil((width - side) / step - 1e-6)) + 1 if width > side else 1
    ny = int(np.ceil((height - side) / step - 1e-6)) + 1 if height > side else 1
    xs = np.linspace(side / 2, width - side / 2, nx) if nx > 1 else [width / 2]
    ys = np.linspace(side / 2, height - side / 2, ny) if ny > 1 else [height / 2]
    return [np.array([cx, cy, side, side, 0.0], np.float32) for cy in ys for cx in xs]


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """OKS-like similarity of two MediaPipe-33 skeletons ``(33, >=4)``: mean of exp(-d^2 / 2s^2)
    over the joints both see (s = a tenth of the first skeleton's mean extent)."""
    both = (a[:, 3] > 0.5) & (b[:, 3] > 0.5)
    if both.sum() < 3:
        both = np.ones(len(a), bool)
    size = max((np.ptp(a[both, 0]) + np.ptp(a[both, 1])) / 2, 1.0)
    d = np.linalg.norm(a[both, :2] - b[both, :2], axis=1)
    return float(np.mean(np.exp(-((d / (0.1 * size)) ** 2) / 2)))


def fuse(points: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """One skeleton from several views ``(V, 33, 5)``: per joint, the flag x visibility weighted
    mean position of the views that see it (visibility > 0.5; else of all views); visibility and
    presence are the views' maximum."""
    if len(points) == 1:
        return points[0].copy()
    out = points[0].copy()
    vis = points[:, :, 3]
    seen = vis > 0.5
    use = np.where(seen.any(0, keepdims=True), seen, True)
    weight = use * flags[:, None] * np.maximum(vis, 1e-3)
    weight = weight / weight.sum(0, keepdims=True)
    out[:, :3] = (points[:, :, :3] * weight[:, :, None]).sum(0)
    out[:, 3:] = points[:, :, 3:].max(0)
    return out


class MediaPipePoseDetector:
    """MediaPipe's pose models made multi-person (see the module docstring).

    ``min_score`` drops joints whose visibility is at or below it. ``hands``/``face`` add 21-point
    hands and the 70-point OpenPose face. ``model`` picks the landmark model (``full`` ships with
    the pack; ``heavy``/``lite`` after scripts/convert_mediapipe.py --npm). ``min_detection`` is
    the detector's threshold (MediaPipe's 0.5), ``min_presence`` the pose flag's. ``tiles`` and
    ``mirror`` switch the zoomed detector tiles and the mirrored second view (both on: measured).
    ``device``: where the models run (None: CPU).
    """

    def __init__(self, min_score: float = 0.1, hands: bool = False, face: bool = False, model: str = "full",
                 min_detection: float = 0.5, min_presence: float = 0.5, tiles: bool = True, tile_size: float = 0.6,
                 mirror: bool = True, same_person: float = 0.5, device: torch.device | str | None = None):
        if model not in mp_pose.LANDMARK_MODELS:
            raise ValueError(f"unknown pose model {model!r}: use one of {', '.join(mp_pose.LANDMARK_MODELS)}")
        self.min_score = float(min_score)
        self.hands = hands
        self.face = face
        self.model = model
        self.min_detection = float(min_detection)
        self.min_presence = float(min_presence)
        self.tiles = tiles
        self.tile_size = float(tile_size)
        self.mirror = mirror
        self.same_person = float(same_person)
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    # ------------------------------------------------------------------ stages
    def _people(self, images: list[torch.Tensor]) -> tuple[list[list[_Person]], mp_pose.PoseLandmarks, np.ndarray]:
        """Detect, crop, run the landmark model and group the views into people, for every image."""
        regions = [tile_rois(img.shape[1], img.shape[0], self.tile_size) if self.tiles else [] for img in images]
        found = mp_pose.detect(images, min_score=self.min_detection, regions=regions)
        rois, owner = [], []
        for i, (img, per_region) in enumerate(zip(images, found)):
            h, w = img.shape[:2]
            boxes = np.concatenate([d.boxes for d in per_region])
            scores = np.concatenate([d.scores for d in per_region])
            boxes, scores = geo.weighted_nms(boxes, scores, 0.3)
            r = mp_pose.detection_rois(mp_pose.Detections(boxes, scores), w, h)
            r = r[geo.valid_rois(r, w, h)]
            rois.append(r)
            owner += [i] * len(r)
        rois = np.concatenate(rois) if rois else np.zeros((0, 5), np.float32)
        owner = np.asarray(owner, np.int64)
        n = len(rois)
        mirror = np.zeros(n, bool)
        if self.mirror:
            rois, owner, mirror = np.concatenate([rois, rois]), np.concatenate([owner, owner]), np.r_[mirror, ~mirror]
        res = mp_pose.landmarks(images, rois, owner, model=self.model, with_mask=True, mirror=mirror)
        people: list[list[_Person]] = []
        for i in range(len(images)):
            views = [k for k in np.flatnonzero(owner == i) if res.flag[k] >= self.min_presence]
            views.sort(key=lambda k: -res.flag[k])
            groups: list[_Person] = []
            for k in views:
                for g in groups:
                    if similarity(res.points[g.views[0]], res.points[k]) >= self.same_person:
                        g.views.append(k)
                        break
                else:
                    groups.append(_Person(views=[k]))
            for g in groups:
                g.points = fuse(res.points[g.views], res.flag[g.views])
                g.flag = float(res.flag[g.views].max())
            people.append(groups)
        return people, res, owner

    def _body(self, p: _Person, w: int, h: int) -> np.ndarray:
        body = mediapipe33_to_openpose18(p.points[:, [0, 1, 3]])
        body[body[:, 2] <= self.min_score] = 0.0
        out = (body[:, 0] < 0) | (body[:, 1] < 0) | (body[:, 0] >= w) | (body[:, 1] >= h)
        body[out] = 0.0
        rs, ls, neck = J["right_shoulder"], J["left_shoulder"], J["neck"]
        if body[neck, 2] > 0 and (body[rs, 2] == 0 or body[ls, 2] == 0):
            body[neck] = 0.0  # the neck is the shoulders' midpoint, so it needs both
        return body

    # ------------------------------------------------------------------ API
    def detect_batch(self, images: list[np.ndarray], max_people: int = 10,
                     masks: bool = True) -> list[tuple[PoseFrame, np.ndarray]]:
        """``(PoseFrame, union person mask (H, W) float32 in {0, 1})`` for each image, in one pass."""
        rgbs = [to_rgb_uint8(im) for im in images]
        out: list[tuple[PoseFrame, np.ndarray] | None] = [None] * len(rgbs)
        work, scales, index = [], [], []
        for i, rgb in enumerate(rgbs):
            h, w = rgb.shape[:2]
            if min(h, w) < MIN_SIDE or max_people <= 0:
                out[i] = (PoseFrame(width=w, height=h), np.zeros((h, w), np.float32))
                continue
            k = min(1.0, WORK_SIDE / max(h, w))
            if k < 1.0:
                rgb = cv2.resize(rgb, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
            work.append(image_tensor(rgb, self.device))
            scales.append(k)
            index.append(i)
        if not work:
            return out
        people, res, owner = self._people(work)
        extras = self._extras(work, people) if (self.hands or self.face) else None
        for j, i in enumerate(index):
            h, w = rgbs[i].shape[:2]
            wh, ww = work[j].shape[:2]
            k = scales[j]
            kept = []
            for n, p in enumerate(people[j]):
                body = self._body(p, ww, wh)
                if (body[:, 2] > 0).sum() < 3:
                    continue
                kept.append((p, n, body))
            kept.sort(key=lambda t: -person_finder.skeleton_size(t[2]))
            kept = kept[:max_people]
            frame = PoseFrame(width=w, height=h)
            union = np.zeros((wh, ww), bool)
            for p, n, body in kept:
                person = Person(body=body)
                if extras is not None:
                    for attr, value in extras[j][n].items():
                        setattr(person, attr, value)
                frame.people.append(person)
                if masks:
                    best = p.views[0]
                    union |= mp_pose.mask_in_image(res, best, ww, wh) > 0.5
            if k < 1.0:
                for person in frame.people:
                    for part in (person.body, person.left_hand, person.right_hand, person.face):
                        if part is not None:
                            part[:, :2] /= k
                union = cv2.resize(union.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
            out[i] = (frame, union.astype(np.float32))
        return out

    def _extras(self, images: list[torch.Tensor], people: list[list[_Person]]) -> list[list[dict]]:
        """Hands and face per person (empty dicts when switched off)."""
        return [[{} for _ in per_image] for per_image in people]

    def detect(self, image_rgb: np.ndarray, max_people: int = 10) -> tuple[PoseFrame, np.ndarray]:
        """``(PoseFrame, union person mask (H, W) float32 in {0, 1})`` for one image."""
        return self.detect_batch([image_rgb], max_people=max_people)[0]

    def __call__(self, image_rgb: np.ndarray, max_people: int = 10) -> PoseFrame:
        return self.detect(image_rgb, max_people=max_people)[0]


def single_call(image_rgb: np.ndarray, min_score: float = 0.1, device=None) -> PoseFrame:
    """MediaPipe's own legacy pipeline (best detection only, at most one person): the baseline."""
    rgb = to_rgb_uint8(image_rgb)
    h, w = rgb.shape[:2]
    frame = PoseFrame(width=w, height=h)
    if min(h, w) < MIN_SIDE:
        return frame
    res = mp_pose.single_pose(image_tensor(rgb, device or "cpu"), with_mask=False)
    if res is not None:
        body = mediapipe33_to_openpose18(res[0][:, [0, 1, 3]])
        body[body[:, 2] <= min_score] = 0.0
        out = (body[:, 0] < 0) | (body[:, 1] < 0) | (body[:, 0] >= w) | (body[:, 1] >= h)
        body[out] = 0.0
        if (body[:, 2] > 0).sum() >= 3:
            frame.people.append(Person(body=body))
    return frame
