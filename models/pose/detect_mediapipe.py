"""Multi-person pose with MediaPipe Pose, the embedded default backend (its model ships in the wheel).

MediaPipe Pose (BlazePose, legacy ``mp.solutions.pose``) finds one person per call. To find
everyone we look in several places:

1. the whole image, then again with each found person painted out ("detect, blank, repeat"),
   which peels people off one by one, including those seen from behind;
2. body-sized crops below every face (MTCNN + MediaPipe face detection) at three scales,
   kept only when the skeleton's head lands on that face; they centre the pose model on
   people who are small or overlapped in the full view;
3. half-overlapping square windows across a wide photo, each holding fewer people;

then the skeletons are grouped by person, each group gets two more views (a tight crop around
it, as is and mirrored), a group seen by one view only is dropped as a likely phantom, and each
person's joints are the per-joint median of the group's views. On the shared annotated photos
this lifts PCK@0.1 from 0.42 (one call) to 0.83 over all annotated people, and from 0.67 to
0.89 on the largest person per photo (scripts/eval_pose_accuracy.py), for ~20-50 MediaPipe
calls plus face detection per photo instead of one.

Only ``model_complexity=1`` works offline (0 and 2 download their models at first use), and
``static_image_mode=True`` because every image is independent. Hands and face: BlazePose has
no 21-point hands or 70-point face, so they stay ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..common import legacy_mediapipe
from ..common.images import to_rgb_uint8
from . import person_finder
from .keypoints import J, Person, PoseFrame, mediapipe33_to_openpose18

# Building a MediaPipe graph is slow: build once (model_complexity=1 is the only model in the wheel).
_POSE = legacy_mediapipe.Graph(lambda mp_solutions: mp_solutions.pose.Pose(
    static_image_mode=True, model_complexity=1, enable_segmentation=True, min_detection_confidence=0.5))

MIN_SIDE = 32  # below this there is nothing a 256-px pose model can resolve
_MAX_SIDE = 1024  # larger crops are downscaled first: BlazePose works at 224/256 px anyway
_WORK_SIDE = 1600  # larger photos are searched at this size (bounds time and mask memory)


def _pose_graph():
    return _POSE.get()


@dataclass
class _Found:
    body: np.ndarray  # (18, 3) OpenPose-18 in full-image pixels, score = MediaPipe visibility
    mask: np.ndarray  # (H, W) bool person segmentation in full-image pixels
    score: float
    source: str = ""  # which search found it: peel, face, window, refine
    seen_in: np.ndarray | None = None  # peel: the image with the earlier people painted out


def run_pose(image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """One MediaPipe Pose call: ``(landmarks (33, 3) x, y, visibility in pixels, mask (H, W))``."""
    h, w = image_rgb.shape[:2]
    scale = min(1.0, _MAX_SIDE / max(h, w))
    small = cv2.resize(image_rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else image_rgb
    result = _POSE.process(np.ascontiguousarray(small))
    if result.pose_landmarks is None:
        return None
    lm = np.array([(p.x * w, p.y * h, p.visibility) for p in result.pose_landmarks.landmark], np.float32)
    mask = result.segmentation_mask
    if mask is None:
        mask = np.zeros((h, w), np.float32)
    elif mask.shape != (h, w):
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
    return lm, mask.astype(np.float32)


def _score(body: np.ndarray) -> float:
    core = body[person_finder.CORE_JOINTS, 2]
    return float(core.mean())


def _in_canvas(body: np.ndarray, w: int, h: int) -> np.ndarray:
    body = body.copy()
    out = (body[:, 0] < 0) | (body[:, 1] < 0) | (body[:, 0] >= w) | (body[:, 1] >= h)
    body[out] = 0.0
    return body


def _crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """``image[y0:y1, x0:x1]`` where the box may leave the image; the outside is black."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    inner = image[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)]
    return cv2.copyMakeBorder(
        inner, max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0), cv2.BORDER_CONSTANT, value=(0, 0, 0)
    )


class MediaPipePoseDetector:
    """MediaPipe Pose made multi-person (see the module docstring).

    ``min_score`` drops joints whose MediaPipe visibility is at or below it. The other options
    switch the search strategies (all on by default, as measured by scripts/eval_pose_accuracy.py):
    ``peel`` (detect, paint out, repeat; at most ``max_peel`` rounds), ``use_faces`` (crops of
    ``face_scales`` face sizes below each face, favoured by ``face_bonus`` when grouping),
    ``windows`` (square windows, ``window_stride`` apart in short sides), ``refine``/``flip``
    (a tight crop per person, mirrored too), ``fuse`` (median of a person's views rather than
    its single most confident one). ``flip_faces``/``flip_windows`` mirror those crops as well
    (off: slower for no measured gain). A person must be seen by at least ``min_views`` views.
    ``mtcnn=False`` leaves faces to MediaPipe's detector alone: faster (MTCNN is most of the
    CPU time at 512 px) but it misses profiles, and PCK@0.1 over all people drops 0.83 -> 0.75.
    """

    def __init__(self, min_score: float = 0.1, use_faces: bool = True, peel: bool = True,
                 face_scales: tuple[float, ...] = (5.0, 7.0, 10.0), max_peel: int = 6, face_bonus: float = 0.25, fuse: bool = True,
                 refine: bool = True, flip: bool = True, flip_faces: bool = False,
                 windows: bool = True, window_stride: float = 0.5, flip_windows: bool = False,
                 min_views: int = 2, mtcnn: bool = True):
        self.min_score = float(min_score)
        self.use_faces = use_faces
        self.peel = peel
        self.face_scales = face_scales
        self.max_peel = max_peel
        self.face_bonus = face_bonus
        self.fuse = fuse
        self.refine = refine
        self.flip = flip
        self.flip_faces = flip_faces
        self.windows = windows
        self.window_stride = window_stride
        self.flip_windows = flip_windows
        self.min_views = int(min_views)
        self.mtcnn = mtcnn

    # ------------------------------------------------------------------ finding
    def _found(self, lm: np.ndarray, mask: np.ndarray) -> _Found:
        body = mediapipe33_to_openpose18(lm)
        return _Found(body=body, mask=mask, score=_score(body))

    def _peel(self, image: np.ndarray, limit: int) -> list[_Found]:
        work = image.copy()
        fill = np.median(image.reshape(-1, 3), axis=0).astype(np.uint8)
        found: list[_Found] = []
        for _ in range(limit):
            res = run_pose(work)
            if res is None:
                break
            f = self._found(res[0], res[1] > 0.5)
            if any(person_finder.same_person(f.body, g.body) for g in found):
                break  # painting out did not remove them: stop rather than loop
            f.source = "peel"
            f.seen_in = work.copy()
            found.append(f)
            region = self._region(f, image.shape[:2])
            if region.mean() > 0.9:
                break
            work[region] = fill
        return found

    @staticmethod
    def _region(f: _Found, shape: tuple[int, int]) -> np.ndarray:
        """Pixels to paint out for a found person: the segmentation, grown by a margin, plus a
        hull of the skeleton for limbs the segmentation missed."""
        h, w = shape
        region = f.mask.astype(np.uint8)
        pts = f.body[f.body[:, 2] > 0.5, :2]
        if len(pts) >= 3:
            hull = cv2.convexHull(pts.astype(np.int32))
            cv2.fillConvexPoly(region, hull, 1)
        size = max(person_finder.skeleton_size(f.body), 8.0)
        k = int(max(3, size * 0.08)) | 1
        region = cv2.dilate(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        return region.astype(bool)

    def _views(self, image: np.ndarray, box: tuple[int, int, int, int], mirrored: bool) -> list[_Found]:
        """MediaPipe on ``image`` cropped to ``box`` (and on its mirror image), in full-image pixels."""
        h, w = image.shape[:2]
        crop = _crop(image, box)
        if min(crop.shape[:2]) < MIN_SIDE:
            return []
        out = []
        for flip in (False, True) if mirrored else (False,):
            res = run_pose(np.ascontiguousarray(crop[:, ::-1]) if flip else crop)
            if res is None:
                continue
            lm, mask = res
            if flip:  # undo the mirror: x back, and left/right landmarks swap names
                lm[:, 0] = crop.shape[1] - 1 - lm[:, 0]
                lm = lm[_MP33_FLIP]
                mask = mask[:, ::-1]
            lm[:, 0] += box[0]
            lm[:, 1] += box[1]
            full_mask = np.zeros((h, w), np.float32)
            x0, y0, x1, y1 = max(box[0], 0), max(box[1], 0), min(box[2], w), min(box[3], h)
            full_mask[y0:y1, x0:x1] = mask[y0 - box[1]:y1 - box[1], x0 - box[0]:x1 - box[0]]
            out.append(self._found(lm, full_mask > 0.5))
        return out

    def _from_faces(self, image: np.ndarray) -> list[_Found]:
        """Skeletons from body crops below every face, at several scales; only those whose head
        lies on that face are kept (the others centred on a neighbour, found from their own face)."""
        found = []
        for face in person_finder.detect_faces(image, mtcnn=self.mtcnn):
            for box in person_finder.body_crops_from_face(face, image.shape, self.face_scales):
                for f in self._views(image, box, self.flip_faces):
                    if _head_in_face(f.body, face):
                        f.score += self.face_bonus
                        f.source = "face"
                        found.append(f)
        return found

    def _from_windows(self, image: np.ndarray) -> list[_Found]:
        """Square windows of the short side's size, half-overlapping along the long side: in a
        wide group photo each window holds fewer people, so the pose model picks someone else."""
        h, w = image.shape[:2]
        side = min(h, w)
        long = max(h, w)
        if long < side * 1.25:
            return []
        n = int(np.ceil((long - side) / (side * self.window_stride))) + 1
        starts = np.linspace(0, long - side, n).round().astype(int)
        found = []
        for s0 in starts:
            box = (s0, 0, s0 + side, side) if w >= h else (0, s0, side, s0 + side)
            for f in self._views(image, box, self.flip_windows):
                f.source = "window"
                found.append(f)
        return found

    def _refine(self, image: np.ndarray, f: _Found) -> list[_Found]:
        """More views of a found person: a square crop around its skeleton, as is and mirrored.
        Views that land on someone else are dropped."""
        pts = f.body[f.body[:, 2] > 0.3, :2]
        if len(pts) < 3:
            return []
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        side = max(x1 - x0, y1 - y0) * 1.4 + 16
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        box = (int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
        views = [g for g in self._views(image, box, self.flip) if person_finder.same_person(g.body, f.body)]
        for g in views:
            g.source = "refine"
        return views

    # ------------------------------------------------------------------ API
    def detect(self, image_rgb: np.ndarray, max_people: int = 10) -> tuple[PoseFrame, np.ndarray]:
        """``(PoseFrame, union person mask (H, W) float32 in {0, 1})`` for one image."""
        rgb = to_rgb_uint8(image_rgb)
        h, w = rgb.shape[:2]
        if min(h, w) < MIN_SIDE or max_people <= 0:
            return PoseFrame(width=w, height=h), np.zeros((h, w), np.float32)
        k = min(1.0, _WORK_SIDE / max(h, w))
        if k == 1.0:
            frame, union = self._detect(rgb, max_people)
            return frame, union.astype(np.float32)
        small = cv2.resize(rgb, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
        frame, union = self._detect(small, max_people)
        for person in frame.people:
            person.body[:, :2] /= k
        union = cv2.resize(union.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        return PoseFrame(width=w, height=h, people=frame.people), union.astype(np.float32)

    def _detect(self, rgb: np.ndarray, max_people: int) -> tuple[PoseFrame, np.ndarray]:
        h, w = rgb.shape[:2]
        frame = PoseFrame(width=w, height=h)
        union = np.zeros((h, w), bool)
        candidates: list[_Found] = []
        if self.peel:
            candidates += self._peel(rgb, min(self.max_peel, max_people + 1))
        else:
            res = run_pose(rgb)
            if res is not None:
                candidates.append(self._found(res[0], res[1] > 0.5))
        if self.use_faces:
            candidates += self._from_faces(rgb)
        if self.windows:
            candidates += self._from_windows(rgb)
        clusters: list[list[_Found]] = []
        for cand in sorted(candidates, key=lambda c: -c.score):
            for cluster in clusters:
                if person_finder.same_person(cand.body, cluster[0].body):
                    cluster.append(cand)
                    break
            else:
                clusters.append([cand])
        if self.refine:
            for cluster in clusters:
                views = self._refine(rgb, _fuse(cluster))
                if not views and len(cluster) == 1 and cluster[0].seen_in is not None:
                    # found only once the people in front were painted out: look again there
                    views = self._refine(cluster[0].seen_in, cluster[0])
                cluster.extend(views)
        # A person seen by a single view is too often a phantom (a truck's grille, a coat on a
        # chair): real people are found again by another search or by the tight re-crop.
        clusters = [c for c in clusters if len(c) >= self.min_views]
        self.last_clusters = clusters  # for diagnostics
        kept = [_fuse(c) if self.fuse else c[0] for c in clusters]
        people = []
        for f in kept:
            body = f.body.copy()
            body[body[:, 2] <= self.min_score] = 0.0
            body = _in_canvas(body, w, h)
            if (body[:, 2] > 0).sum() < 3:
                continue
            people.append((f, Person(body=body)))
        # largest first: the main subject is person 0 for nodes that pick one
        people.sort(key=lambda fp: -person_finder.skeleton_size(fp[1].body))
        people = people[:max_people]
        for f, person in people:
            frame.people.append(person)
            union |= f.mask
        return frame, union

    def __call__(self, image_rgb: np.ndarray, max_people: int = 10) -> PoseFrame:
        return self.detect(image_rgb, max_people=max_people)[0]


# Left/right partner of each MediaPipe-33 landmark, to undo a mirrored view.
_MP33_FLIP = np.array([0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21,
                       24, 23, 26, 25, 28, 27, 30, 29, 32, 31])


def _fuse(cluster: list[_Found]) -> _Found:
    """One skeleton from several views of the same person: per joint, the median position of
    the views that see it (visibility > 0.5), else of all views; the masks' union."""
    if len(cluster) == 1:
        return cluster[0]
    bodies = np.stack([f.body for f in cluster])
    body = cluster[0].body.copy()
    for j in range(bodies.shape[1]):
        vis = bodies[:, j, 2]
        sel = vis > 0.5
        if not sel.any():
            sel = vis > 0
        if not sel.any():
            continue
        body[j, :2] = np.median(bodies[sel, j, :2], axis=0)
        body[j, 2] = float(vis.max())
    rs, ls, neck = J["right_shoulder"], J["left_shoulder"], J["neck"]
    if body[rs, 2] > 0 and body[ls, 2] > 0:  # the neck stays the shoulders' midpoint, as in the contract
        body[neck, :2] = (body[rs, :2] + body[ls, :2]) / 2
        body[neck, 2] = min(body[rs, 2], body[ls, 2])
    mask = cluster[0].mask.copy()
    for f in cluster[1:]:
        mask |= f.mask
    return _Found(body=body, mask=mask, score=cluster[0].score)


def _head_in_face(body: np.ndarray, face) -> bool:
    x0, y0, x1, y1 = face[:4]
    m = 0.5 * max(x1 - x0, y1 - y0)
    for j in (0, 14, 15):  # nose, eyes
        x, y, s = body[j]
        if s > 0.3 and x0 - m <= x <= x1 + m and y0 - m <= y <= y1 + m:
            return True
    return False


def single_call(image_rgb: np.ndarray, min_score: float = 0.1) -> PoseFrame:
    """One MediaPipe call on the whole image (at most one person): the baseline we improve on."""
    rgb = to_rgb_uint8(image_rgb)
    h, w = rgb.shape[:2]
    frame = PoseFrame(width=w, height=h)
    if min(h, w) < MIN_SIDE:
        return frame
    res = run_pose(rgb)
    if res is not None:
        body = mediapipe33_to_openpose18(res[0])
        body[body[:, 2] <= min_score] = 0.0
        body = _in_canvas(body, w, h)
        if (body[:, 2] > 0).sum() >= 3:
            frame.people.append(Person(body=body))
    return frame

