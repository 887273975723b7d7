"""Multi-person pose with MediaPipe's models, the embedded default backend (no ``mediapipe`` needed).

The models ship converted in models/mediapipe_port/ and run with torch or onnxruntime there
(parity with mediapipe 0.10.21 is tested). MediaPipe's own legacy graph keeps one detection and
so one person; here, in one batched pass per batch of images:

1. the pose detector runs on the whole image and on half-overlapping square tiles of 0.6 x the
   short side (zoomed-in views find people the 224-px whole-image pass sees too small), and
   **every** detection is kept; the tiles' detections are merged by MediaPipe's weighted NMS;
2. each detection gives a landmark ROI (MediaPipe's rule), and the landmark model runs on all
   ROIs of all images in one batch (optionally each crop mirrored too: ``mirror``);
3. results whose pose flag is below ``min_presence`` are dropped; the rest are grouped by
   keypoint similarity (NMS by keypoints), each person's joints are the flag x visibility
   weighted mean of its views, people whose flag x mean visibility is below ``min_person`` are
   dropped (phantoms score low on both), and of two skeletons sharing one head the better
   seen is kept;
4. optionally each person's hands (21 points) and face (70 points, from the 468-point mesh)
   are found from its pose, as MediaPipe Holistic does (models/mediapipe_port/hands.py, face.py),
   each stage batched over all people of all images.

The earlier extractor's extra searches were measured again on top of this and dropped: body
crops below faces found by the full-range face detector added no person (every such face was
already a pose detection), and a second pass with the found people painted out added no PCK.
Measured on the 18 annotated photos (31 people; scripts/eval_pose_accuracy.py): see the README.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from ..common.images import to_rgb_uint8
from ..mediapipe_port import face as mp_face
from ..mediapipe_port import geometry as geo
from ..mediapipe_port import hands as mp_hands
from ..mediapipe_port import pose as mp_pose
from ..mediapipe_port.runtime import image_tensor
from . import person_finder
from .keypoints import J, Person, PoseFrame, mediapipe33_to_openpose18

MIN_SIDE = 32  # below this there is nothing a 256-px pose model can resolve
WORK_SIDE = 1600  # larger photos are searched at this size (bounds crop aliasing and mask memory)


@dataclass
class _Person:
    views: list[int]  # indices into the landmark results
    points: np.ndarray = field(
        default=None
    )  # fused (33, 5): x, y, z, visibility, presence (pixels)
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


HEAD = np.arange(11)  # nose, eyes, ears, mouth of the 33 landmarks


def same_head(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two skeletons ``(33, >=4)`` put their head in the same place (within half the head's
    size): two people's heads cannot coincide, so they are one person seen twice."""
    both = (a[HEAD, 3] > 0.5) & (b[HEAD, 3] > 0.5)
    if both.sum() < 3:
        return False
    pa, pb = a[HEAD][both, :2], b[HEAD][both, :2]
    size = max(np.ptp(pa[:, 0]), np.ptp(pa[:, 1]), np.ptp(pb[:, 0]), np.ptp(pb[:, 1]), 1.0)
    return float(np.median(np.linalg.norm(pa - pb, axis=1))) < 0.5 * size


def drop_same_head(groups: list) -> list:
    """Of people sharing one head, keep the one seen by the most views (then the surest)."""
    order = sorted(groups, key=lambda g: (-len(g.views), -g.flag))
    kept = []
    for g in order:
        if not any(same_head(g.points, k.points) for k in kept):
            kept.append(g)
    return kept


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
    the detector's threshold (MediaPipe's 0.5), ``min_presence`` the pose flag's (and the hand and
    face flags'), ``min_person`` the person score's. ``tiles`` switches the zoomed detector tiles,
    ``mirror`` a mirrored second view of every crop (+0.3 PCK points, +11 % time: off).
    ``device``: where the models run (None: CPU).
    """

    def __init__(
        self,
        min_score: float = 0.1,
        hands: bool = False,
        face: bool = False,
        model: str = "full",
        min_detection: float = 0.5,
        min_presence: float = 0.5,
        min_person: float = 0.5,
        tiles: bool = True,
        tile_size: float = 0.6,
        mirror: bool = False,
        same_person: float = 0.5,
        device: torch.device | str | None = None,
    ):
        if model not in mp_pose.LANDMARK_MODELS:
            raise ValueError(
                f"unknown pose model {model!r}: use one of {', '.join(mp_pose.LANDMARK_MODELS)}"
            )
        self.min_score = float(min_score)
        self.hands = hands
        self.face = face
        self.model = model
        self.min_detection = float(min_detection)
        self.min_presence = float(min_presence)
        self.min_person = float(min_person)
        self.tiles = tiles
        self.tile_size = float(tile_size)
        self.mirror = mirror
        self.same_person = float(same_person)
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    # ------------------------------------------------------------------ stages
    def _people(
        self, images: list[torch.Tensor]
    ) -> tuple[list[list[_Person]], mp_pose.PoseLandmarks, np.ndarray]:
        """Detect, crop, run the landmark model and group the views into people, for every image."""
        regions = [
            tile_rois(img.shape[1], img.shape[0], self.tile_size) if self.tiles else []
            for img in images
        ]
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
            rois, owner, mirror = (
                np.concatenate([rois, rois]),
                np.concatenate([owner, owner]),
                np.r_[mirror, ~mirror],
            )
        res = mp_pose.landmarks(
            images, rois, owner, model=self.model, with_mask=True, mirror=mirror
        )
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
            # a person's confidence: pose flag x mean visibility of the body (phantoms score low on both)
            groups = [
                g for g in groups if g.flag * float(g.points[:25, 3].mean()) >= self.min_person
            ]
            people.append(drop_same_head(groups))
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
    def detect_batch(
        self, images: list[np.ndarray], max_people: int = 10, masks: bool = True
    ) -> list[tuple[PoseFrame, np.ndarray]]:
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
                rgb = cv2.resize(
                    rgb, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA
                )
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
                union = cv2.resize(
                    union.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST
                ).astype(bool)
            out[i] = (frame, union.astype(np.float32))
        return out

    def _extras(self, images: list, people: list[list[_Person]]) -> list[list[dict]]:
        """Hands (Holistic's pose-seeded ROIs, refined by the recrop model) and faces (short-range
        face detector inside the pose's head ROI, then the 468-point mesh) of every person of
        every image, each stage in one batch. Returns per person ``{"left_hand": (21, 3), ...}``
        with the hand / face presence as every point's score (points off the image: 0)."""
        extras = [[{} for _ in per_image] for per_image in people]
        who = [(j, n) for j, per_image in enumerate(people) for n in range(len(per_image))]
        if not who:
            return extras
        if self.hands:
            rois, owner, slot = [], [], []
            for side, attr in (("left", "left_hand"), ("right", "right_hand")):
                for j, n in who:
                    img = images[j]
                    h, w = img.shape[:2]
                    r, visible = mp_hands.rois_from_pose(people[j][n].points[None], side, w, h)
                    if visible[0] and geo.valid_rois(r, w, h)[0]:
                        rois.append(r[0])
                        owner.append(j)
                        slot.append((j, n, attr))
            if rois:
                owner = np.asarray(owner)
                refined = mp_hands.recrop(images, np.stack(rois), owner)
                ok = np.array(
                    [
                        geo.valid_rois(
                            refined[k : k + 1], images[owner[k]].shape[1], images[owner[k]].shape[0]
                        )[0]
                        for k in range(len(refined))
                    ]
                )
                res = mp_hands.landmarks(images, refined[ok], owner[ok])
                for k, (j, n, attr) in enumerate(s for s, good in zip(slot, ok) if good):
                    if res.flag[k] >= self.min_presence:
                        extras[j][n][attr] = _scored(res.points[k, :, :2], res.flag[k], images[j])
        if self.face:
            rois, owner, slot = [], [], []
            for j, n in who:
                h, w = images[j].shape[:2]
                r = mp_face.rois_from_pose(people[j][n].points[None], w, h)
                if geo.valid_rois(r, w, h)[0]:
                    rois.append(r[0])
                    owner.append(j)
                    slot.append((j, n))
            if rois:
                found = mp_face.detect(images, np.stack(rois), np.asarray(owner), model="short")
                mesh_rois, mesh_owner, mesh_slot = [], [], []
                for (boxes, scores), (j, n) in zip(found, slot):
                    if len(scores):
                        h, w = images[j].shape[:2]
                        r = mp_face.detection_rois(boxes[:1], w, h)
                        if geo.valid_rois(r, w, h)[0]:
                            mesh_rois.append(r[0])
                            mesh_owner.append(j)
                            mesh_slot.append((j, n))
                if mesh_rois:
                    res = mp_face.mesh(images, np.stack(mesh_rois), np.asarray(mesh_owner))
                    for k, (j, n) in enumerate(mesh_slot):
                        if res.flag[k] >= self.min_presence:
                            extras[j][n]["face"] = _scored(
                                mp_face.openpose70(res.points[k]), res.flag[k], images[j]
                            )
        return extras

    def detect(self, image_rgb: np.ndarray, max_people: int = 10) -> tuple[PoseFrame, np.ndarray]:
        """``(PoseFrame, union person mask (H, W) float32 in {0, 1})`` for one image."""
        return self.detect_batch([image_rgb], max_people=max_people)[0]

    def __call__(self, image_rgb: np.ndarray, max_people: int = 10) -> PoseFrame:
        return self.detect(image_rgb, max_people=max_people)[0]


def _scored(points: np.ndarray, score: float, image) -> np.ndarray:
    """``(K, 3)`` rows x, y, score; points off the image are missing (0)."""
    h, w = image.shape[:2]
    out = np.concatenate(
        [points[:, :2], np.full((len(points), 1), max(float(score), 1e-3), np.float32)], 1
    )
    off = (
        (out[:, 0] < 0)
        | (out[:, 1] < 0)
        | (out[:, 0] >= w)
        | (out[:, 1] >= h)
        | ~np.isfinite(out).all(1)
    )
    out[off] = 0.0
    return out.astype(np.float32)


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
