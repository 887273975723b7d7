"""Person masks with MediaPipe's models (shipped converted inside the pack, models/mediapipe_port;
no ``mediapipe`` package, nothing downloaded), optionally restricted to one person of a pose frame.

* the selfie-segmentation model segments *all* people (and sometimes person-like clutter)
  into one soft mask; it is made for head-and-shoulders shots and misses legs and hands;
* the pose model's segmentation head segments one full body, run on a crop around the
  chosen person (the default for reposing: measured on the shared photos it follows legs
  and arms the selfie model leaves out or smears into the background).

Every call is independent (no graph is kept between calls), so an empty or off-canvas crop
just gives no mask and the next call works (issue 10).

:func:`restrict_to_person` keeps the part of a mask that belongs to one person's skeleton.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..mediapipe_port import pose as mp_pose
from ..mediapipe_port import segmentation as mp_segmentation
from ..mediapipe_port.runtime import image_tensor
from ..pose.keypoints import OPENPOSE18_LIMBS, J

MIN_CROP = 16  # a smaller crop holds nothing the 256-px pose model can segment


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}"
        )
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image is too small to segment: {image.shape[1]}x{image.shape[0]}")
    return np.ascontiguousarray(image)


def selfie_mask(image: np.ndarray, device=None) -> np.ndarray:
    """Soft person mask, float32 ``(H, W)`` in [0, 1], of all people in an RGB uint8 image."""
    image = _check_image(image)
    return mp_segmentation.selfie([image_tensor(image, device or "cpu")])[0]


def pose_model_mask(
    image: np.ndarray, body: np.ndarray | None = None, device=None
) -> np.ndarray | None:
    """Soft mask of one person from MediaPipe Pose's own segmentation head, or None if it finds nobody.

    Trained on full bodies, it follows legs and outstretched arms better than the selfie model
    (which is made for head-and-shoulders video calls) and it segments one person only. With
    ``body``, it runs on a crop around that person's joints so that it segments them and not
    a more prominent neighbour; a crop that misses the image (a pose moved off the canvas)
    gives None.
    """
    image = _check_image(image)
    H, W = image.shape[:2]
    x0, y0, x1, y1 = 0, 0, W, H
    if body is not None and (np.asarray(body)[:, 2] > 0).sum() >= 2:
        body = np.asarray(body, np.float32)
        pts = body[(body[:, 2] > 0) & np.isfinite(body).all(1), :2]
        if len(pts) < 2:
            return None
        size = max(float(np.ptp(pts[:, 0])), float(np.ptp(pts[:, 1])), 2.0 * body_scale(body), 16.0)
        cx, cy = (pts.min(0) + pts.max(0)) / 2
        half = (
            0.5 + 0.6
        ) * size  # half the body's extent plus 0.6 of it for hair, hands, feet and context
        x0, y0 = int(np.clip(cx - half, 0, W)), int(np.clip(cy - half, 0, H))
        x1, y1 = int(np.clip(cx + half, 0, W)), int(np.clip(cy + half, 0, H))
    if x1 - x0 < MIN_CROP or y1 - y0 < MIN_CROP:
        return None
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    found = mp_pose.single_pose(image_tensor(crop, device or "cpu"), with_mask=True)
    if found is None:
        return None
    mask = np.zeros((H, W), np.float32)
    mask[y0:y1, x0:x1] = np.clip(np.nan_to_num(found[1]), 0.0, 1.0)
    return mask


def body_scale(body: np.ndarray) -> float:
    """A length (pixels) for sizing strokes: the torso scale when shoulders and hips are present,
    else the keypoint bounding-box size, so sizes follow the person, not the canvas."""
    body = np.asarray(body, np.float32)
    vis = body[:, 2] > 0
    lengths = []
    for a, b in ((J["right_shoulder"], J["right_hip"]), (J["left_shoulder"], J["left_hip"])):
        if vis[a] and vis[b]:
            lengths.append(float(np.sum((body[a, :2] - body[b, :2]) ** 2)))
    if lengths:
        return float(np.sqrt(np.mean(lengths)))
    pts = body[vis, :2]
    if len(pts) >= 2:
        return float(max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]), 1.0)) / 2.0
    return 0.0


def skeleton_mask(
    body: np.ndarray, height: int, width: int, thickness: float | None = None
) -> np.ndarray:
    """Boolean ``(H, W)`` mask of a person's bones drawn as thick lines plus the joints as discs."""
    body = np.asarray(body, np.float32)
    vis = body[:, 2] > 0
    canvas = np.zeros((height, width), np.uint8)
    if not vis.any():
        return canvas.astype(bool)
    if thickness is None:
        thickness = max(3.0, 0.15 * body_scale(body))
    t = max(int(round(thickness)), 1)
    pts = np.round(body[:, :2]).astype(np.int64)
    for a, b in OPENPOSE18_LIMBS:
        if vis[a] and vis[b]:
            cv2.line(
                canvas,
                tuple(int(v) for v in pts[a]),
                tuple(int(v) for v in pts[b]),
                1,
                t,
                cv2.LINE_8,
            )
    for i in np.flatnonzero(vis):
        cv2.circle(canvas, tuple(int(v) for v in pts[i]), max(t // 2, 1), 1, -1)
    # the torso polygon, so its middle counts as this person's even where bones don't cross it
    torso = [J["right_shoulder"], J["left_shoulder"], J["left_hip"], J["right_hip"]]
    if vis[torso].all():
        cv2.fillPoly(canvas, [pts[torso].astype(np.int32)], 1)
    return canvas.astype(bool)


def restrict_to_person(
    mask: np.ndarray,
    bodies: list[np.ndarray],
    index: int,
    threshold: float = 0.5,
    add_skeleton: bool = True,
) -> np.ndarray:
    """Keep the part of an all-people mask that belongs to ``bodies[index]``.

    Pixels are first given to the nearest person's skeleton (so touching people are split
    between them), then only the connected regions that overlap the chosen skeleton are kept;
    stray blobs elsewhere in the picture are dropped. With ``add_skeleton`` the chosen
    person's bones are added to the mask, because the selfie model often misses outstretched
    hands and feet. Returns float32 ``(H, W)``: the soft mask inside the kept region.
    """
    mask = np.clip(np.nan_to_num(np.asarray(mask, np.float32)), 0.0, 1.0)
    if mask.ndim != 2:
        raise ValueError(f"expected a mask of shape (H, W), got {mask.shape}")
    if not 0 <= index < len(bodies):
        raise ValueError(
            f"person index {index} is out of range: the pose has {len(bodies)} people (use 0..{len(bodies) - 1})"
        )
    H, W = mask.shape
    skel = skeleton_mask(bodies[index], H, W)
    if not skel.any():
        raise ValueError(
            f"person {index} has no visible keypoints, so their mask cannot be found; pick another person index"
        )
    binary = mask > threshold
    if add_skeleton:
        binary |= skel
    if len(bodies) > 1:
        # distance from every pixel to each person's skeleton; a pixel belongs to the nearest
        dists = []
        for body in bodies:
            s = skeleton_mask(body, H, W)
            if not s.any():
                dists.append(np.full((H, W), np.inf, np.float32))
                continue
            dists.append(cv2.distanceTransform((~s).astype(np.uint8), cv2.DIST_L2, 3))
        dists = np.stack(dists)
        binary &= np.argmin(dists, axis=0) == index
    count, labels = cv2.connectedComponents(binary.astype(np.uint8), connectivity=8)
    keep_labels = np.unique(labels[skel & binary])
    keep_labels = keep_labels[keep_labels > 0]
    keep = np.isin(labels, keep_labels)
    out = np.where(keep, mask, 0.0).astype(np.float32)
    if add_skeleton:
        out[skel & keep] = 1.0
    return out


MEDIAPIPE_MODELS = ("pose", "selfie")


def person_mask_mediapipe(
    image: np.ndarray,
    bodies: list[np.ndarray] | None = None,
    index: int | None = None,
    threshold: float = 0.5,
    model: str = "pose",
    device=None,
) -> np.ndarray:
    """MediaPipe person mask of an RGB uint8 image; with ``bodies`` and ``index``, of that person only.

    ``model="pose"`` uses the pose model's segmentation (full bodies; falls back to the selfie
    model when it finds nobody), ``"selfie"`` the selfie-segmentation model (everyone at once).
    """
    if model not in MEDIAPIPE_MODELS:
        raise ValueError(f"unknown MediaPipe mask model {model!r}: use one of {MEDIAPIPE_MODELS}")
    mask = None
    if model == "pose":
        body = (
            bodies[index]
            if bodies is not None and index is not None and 0 <= index < len(bodies)
            else None
        )
        mask = pose_model_mask(image, body, device)
    if mask is None:
        mask = selfie_mask(image, device)
    if bodies is None or index is None:
        return mask
    return restrict_to_person(mask, bodies, index, threshold=threshold)
