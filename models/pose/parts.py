"""Body-part geometry shared by the classical part-warp repose and the Deformable GAN.

Follows Siarohin et al. (CVPR 2018), ``pose_transform.py``: ten parts (torso, head, eight limb
segments), one least-squares affine per part and one mask per part in the target frame.

Conventions
-----------
* Bodies are OpenPose-18 ``(18, 3)`` arrays of ``(x, y, score)`` in pixels, score 0 = missing
  (``keypoints.Person.body``). No (y, x) swap as in the Keras original.
* Pixel centres sit at integer coordinates (OpenCV's convention, which the renderers use).
* Affines map **target** pixel coordinates to **source** pixel coordinates (inverse warp): for
  each output pixel of the target pose, where to sample in the source image.
* An invalid part (missing in the target, missing in the source together with its mirror,
  or degenerate) is flagged ``valid=False`` and its affine is the paper's "no-point"
  transform: identity plus a far translation (:data:`NO_POINT_SHIFT` px) so a warp samples
  outside the image and yields zeros. Its mask is zero too.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .keypoints import NUM_BODY, J

PART_NAMES = (
    "torso",
    "head",
    "right_upper_arm",
    "right_forearm",
    "left_upper_arm",
    "left_forearm",
    "right_thigh",
    "right_shin",
    "left_thigh",
    "left_shin",
)
NUM_PARTS = len(PART_NAMES)

TORSO_JOINTS = (
    J["right_hip"],
    J["left_hip"],
    J["left_shoulder"],
    J["right_shoulder"],
)  # polygon order
HEAD_JOINTS = (J["nose"], J["right_eye"], J["left_eye"], J["right_ear"], J["left_ear"])
SHOULDERS = (J["right_shoulder"], J["left_shoulder"])

# part name -> (from joint, to joint, is_lower_limb, mirrored part name)
LIMBS = {
    "right_upper_arm": (J["right_shoulder"], J["right_elbow"], False, "left_upper_arm"),
    "right_forearm": (J["right_elbow"], J["right_wrist"], True, "left_forearm"),
    "left_upper_arm": (J["left_shoulder"], J["left_elbow"], False, "right_upper_arm"),
    "left_forearm": (J["left_elbow"], J["left_wrist"], True, "right_forearm"),
    "right_thigh": (J["right_hip"], J["right_knee"], False, "left_thigh"),
    "right_shin": (J["right_knee"], J["right_ankle"], True, "left_shin"),
    "left_thigh": (J["left_hip"], J["left_knee"], False, "right_thigh"),
    "left_shin": (J["left_knee"], J["left_ankle"], True, "right_shin"),
}

# Rectangle proportions from the paper's code (fractions of the segment / of the torso scale).
INC_FROM = 0.1
AFFINE_INC_TO = {False: 0.1, True: 0.3}  # upper / lower limb
MASK_INC_TO = {False: 0.1, True: 0.5}
HALF_WIDTH = 0.2
HEAD_BOX = 0.4
TORSO_MARGIN = 0.1

# Far enough that bilinear sampling of any realistic image falls outside it (the paper used
# 1000 px for 256-px images; we go further because ComfyUI images can be 4k).
NO_POINT_SHIFT = 1.0e5

TORSO_MASK_MODES = ("polygon", "box", "ones")


def _check_body(body, what: str = "body") -> np.ndarray:
    arr = np.asarray(body, dtype=np.float32)
    if arr.shape != (NUM_BODY, 3):
        raise ValueError(
            f"{what}: expected an OpenPose-18 array of shape (18, 3) (x, y, score), got {arr.shape}"
        )
    return arr


def _present(body: np.ndarray, *idx: int) -> bool:
    return all(body[i, 2] > 0 for i in idx)


def torso_scale(body) -> float:
    """Torso size ``sqrt(mean(|Rhip-Rsho|^2, |Lhip-Lsho|^2))`` in pixels (Siarohin et al.).

    Fallbacks, in order, when a side is missing: the one complete side; the neck-to-hip
    distance; 1.4x the shoulder (or hip) width, a typical adult ratio; a third of the height
    of the present joints' bounding box. Returns 0.0 only for a body with fewer than two joints.
    """
    b = _check_body(body)
    sides = []
    for sho, hip in ((J["right_shoulder"], J["right_hip"]), (J["left_shoulder"], J["left_hip"])):
        if _present(b, sho, hip):
            sides.append(float(np.sum((b[hip, :2] - b[sho, :2]) ** 2)))
    if sides:
        return math.sqrt(sum(sides) / len(sides))
    neck = J["neck"]
    for hip in (J["right_hip"], J["left_hip"]):
        if _present(b, neck, hip):
            return float(np.linalg.norm(b[hip, :2] - b[neck, :2]))
    for a, c in (SHOULDERS, (J["right_hip"], J["left_hip"])):
        if _present(b, a, c):
            return 1.4 * float(np.linalg.norm(b[a, :2] - b[c, :2]))
    pts = b[b[:, 2] > 0, :2]
    if len(pts) >= 2:
        return float(np.ptp(pts[:, 1])) / 3.0 or float(np.ptp(pts[:, 0])) / 3.0
    return 0.0


def limb_rectangle(
    a: np.ndarray, b: np.ndarray, inc_from: float, inc_to: float, half_width: float
) -> np.ndarray | None:
    """Corners ``(4, 2)`` of the rectangle around segment a->b, extended by ``inc_from``/``inc_to``
    segment lengths at each end, ``half_width`` px either side. None for a zero-length segment."""
    a = np.asarray(a, np.float64)[:2]
    b = np.asarray(b, np.float64)[:2]
    d = b - a
    length = float(np.hypot(*d))
    if length < 1e-6 or half_width <= 0:
        return None
    start = a - inc_from * d
    end = b + inc_to * d
    n = np.array([-d[1], d[0]]) / length * half_width
    # Fixed corner order (start+n, end+n, end-n, start-n) so two rectangles fit by a rotation,
    # never by a reflection.
    return np.stack([start + n, end + n, end - n, start - n])


def fit_affine(tgt_pts: np.ndarray, src_pts: np.ndarray) -> np.ndarray | None:
    """Least-squares affine ``A (2, 3)`` with ``A @ [tgt; 1] ~= src``, or None if degenerate
    (fewer than 3 non-collinear points, or a singular result)."""
    tgt = np.asarray(tgt_pts, np.float64).reshape(-1, 2)
    src = np.asarray(src_pts, np.float64).reshape(-1, 2)
    if len(tgt) < 3 or len(tgt) != len(src):
        return None
    design = np.concatenate([tgt, np.ones((len(tgt), 1))], axis=1)
    # Collinear (or coincident) targets leave the fit underdetermined.
    sv = np.linalg.svd(tgt - tgt.mean(0), compute_uv=False)
    if sv[0] <= 0 or sv[-1] < 1e-6 * sv[0]:
        return None
    sol, _, rank, _ = np.linalg.lstsq(design, src, rcond=None)
    if rank < 3:
        return None
    affine = sol.T  # (2, 3)
    lin = affine[:, :2]
    # A (near-)singular linear part would collapse the part to a line: the paper's no-point case.
    if (
        abs(np.linalg.det(lin)) < 1e-8 * max(np.abs(lin).max(), 1e-12) ** 2
        or not np.isfinite(affine).all()
    ):
        return None
    return affine


def no_point_affine() -> np.ndarray:
    return np.array([[1.0, 0.0, NO_POINT_SHIFT], [0.0, 1.0, NO_POINT_SHIFT]], np.float32)


def part_affines(src_body, tgt_body) -> tuple[np.ndarray, np.ndarray]:
    """Per-part affines mapping target pixels to source pixels, as in docs/methods.md §B.3.

    Returns ``(affines float32 (10, 2, 3), valid bool (10,))`` in :data:`PART_NAMES` order.
    Torso: fit on those of {Rhip, Lhip, Lsho, Rsho} present in both (at least 3). Head: the
    head points present in both plus the shoulders present in both. Limbs: 4 corners of the
    rotated rectangle of each pose (its own torso scale); a limb missing in the source borrows
    its mirror; missing in the target, or degenerate, gives ``valid=False`` + no-point affine.
    """
    src = _check_body(src_body, "source body")
    tgt = _check_body(tgt_body, "target body")
    st_src, st_tgt = torso_scale(src), torso_scale(tgt)
    affines = np.repeat(no_point_affine()[None], NUM_PARTS, axis=0)
    valid = np.zeros(NUM_PARTS, bool)

    def store(i: int, affine: np.ndarray | None) -> None:
        if affine is not None:
            affines[i] = affine.astype(np.float32)
            valid[i] = True

    both = [j for j in TORSO_JOINTS if src[j, 2] > 0 and tgt[j, 2] > 0]
    if len(both) >= 3:
        store(0, fit_affine(tgt[both, :2], src[both, :2]))

    head = [j for j in HEAD_JOINTS if src[j, 2] > 0 and tgt[j, 2] > 0]
    if head:  # the shoulders alone would describe the torso, not the head
        head += [j for j in SHOULDERS if src[j, 2] > 0 and tgt[j, 2] > 0]
        store(1, fit_affine(tgt[head, :2], src[head, :2]))

    for i, name in enumerate(PART_NAMES[2:], start=2):
        a, b, lower, mirror = LIMBS[name]
        if not _present(tgt, a, b):
            continue
        inc_to = AFFINE_INC_TO[lower]
        tgt_rect = limb_rectangle(tgt[a], tgt[b], INC_FROM, inc_to, HALF_WIDTH * st_tgt)
        if _present(src, a, b):
            sa, sb = a, b
        else:
            sa, sb, _, _ = LIMBS[mirror]
            if not _present(src, sa, sb):
                continue
        src_rect = limb_rectangle(src[sa], src[sb], INC_FROM, inc_to, HALF_WIDTH * st_src)
        if tgt_rect is None or src_rect is None:
            continue
        store(i, fit_affine(tgt_rect, src_rect))
    return affines, valid


# ----------------------------------------------------------------------------------- masks


def _fill(mask: np.ndarray, poly: np.ndarray) -> None:
    # 4 fractional bits: sub-pixel accurate edges without anti-aliasing (masks stay binary).
    pts = np.round(np.asarray(poly, np.float64) * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(mask, [pts], 1.0, lineType=cv2.LINE_8, shift=4)


def part_masks(tgt_body, height: int, width: int, torso: str = "polygon", valid=None) -> np.ndarray:
    """Binary masks ``float32 (10, height, width)`` of the parts in the target frame (section B.4).

    ``torso``: ``"polygon"`` (default) the quadrilateral Rhip-Lhip-Lsho-Rsho grown by 0.1 torso
    scales, ``"box"`` its bounding box with that margin (the paper's commented-out option),
    ``"ones"`` the whole image (the paper's code, fine inside a GAN, which learns to ignore it,
    but for a classical warp it pastes a torso-warped background everywhere). Head: box of
    +-0.4 torso scales around the head points' centroid. Limbs: the rotated rectangles with
    ``inc_to`` 0.1 (upper) / 0.5 (lower), half-width 0.2 torso scales. Parts whose joints are
    missing, or with ``valid[i]`` False when ``valid`` is given, get a zero mask.
    """
    body = _check_body(tgt_body, "target body")
    if torso not in TORSO_MASK_MODES:
        raise ValueError(f"torso mask mode must be one of {TORSO_MASK_MODES}, got {torso!r}")
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise ValueError(f"mask size must be positive, got {height}x{width}")
    masks = np.zeros((NUM_PARTS, height, width), np.float32)
    st = torso_scale(body)
    margin = TORSO_MARGIN * st

    present = [j for j in TORSO_JOINTS if body[j, 2] > 0]
    if torso == "ones":
        masks[0] = 1.0
    elif len(present) >= 3:
        pts = body[present, :2].astype(np.float64)
        if torso == "box":
            x0, y0 = pts.min(0) - margin
            x1, y1 = pts.max(0) + margin
            _fill(masks[0], np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
        else:
            hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)
            centre = hull.mean(0)
            # Grow each vertex outwards by the margin (radially: cheap, close enough for a mask).
            vec = hull - centre
            norm = np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-6)
            _fill(masks[0], hull + vec / norm * margin)

    head = [j for j in HEAD_JOINTS if body[j, 2] > 0]
    if head and st > 0:
        cx, cy = body[head, :2].mean(0)
        r = HEAD_BOX * st
        _fill(
            masks[1],
            np.array([[cx - r, cy - r], [cx + r, cy - r], [cx + r, cy + r], [cx - r, cy + r]]),
        )

    for i, name in enumerate(PART_NAMES[2:], start=2):
        a, b, lower, _ = LIMBS[name]
        if not _present(body, a, b):
            continue
        rect = limb_rectangle(body[a], body[b], INC_FROM, MASK_INC_TO[lower], HALF_WIDTH * st)
        if rect is not None:
            _fill(masks[i], rect)

    if valid is not None:
        valid = np.asarray(valid, bool).reshape(-1)
        if valid.shape != (NUM_PARTS,):
            raise ValueError(
                f"valid must have {NUM_PARTS} entries (one per part), got {valid.shape}"
            )
        masks[~valid] = 0.0
    return masks


# ----------------------------------------------------------------------------------- warping


def pixel_affines_to_theta(affines: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Pixel affines ``(..., 2, 3)`` (target px -> source px, integer pixel centres, in an image of
    ``image_size=(h, w)``) to ``F.affine_grid`` thetas in the ``align_corners=False`` convention.

    With ``align_corners=False`` the normalised square [-1, 1]^2 is the image *extent* at every
    resolution, so one theta is right for feature maps of any size: this is how the
    translations get rescaled to the feature resolution. Pixel x maps to u = (2x + 1) / w - 1.
    """
    h, w = int(image_size[0]), int(image_size[1])
    aff = affines.to(torch.float32) if not affines.is_floating_point() else affines
    dtype, device = aff.dtype, aff.device
    to_norm = torch.tensor(
        [[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]],
        dtype=dtype,
        device=device,
    )
    from_norm = torch.tensor(
        [[w / 2.0, 0.0, (w - 1) / 2.0], [0.0, h / 2.0, (h - 1) / 2.0], [0.0, 0.0, 1.0]],
        dtype=dtype,
        device=device,
    )
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=dtype, device=device).expand(*aff.shape[:-2], 1, 3)
    full = torch.cat([aff, bottom], dim=-2)
    return (to_norm @ full @ from_norm)[..., :2, :]


def warp_parts(
    feats: torch.Tensor,
    affines: torch.Tensor,
    masks: torch.Tensor,
    image_size: tuple[int, int],
    agg: str = "max",
) -> torch.Tensor:
    """Deform ``feats (B, C, H, W)`` part by part and aggregate (Siarohin et al.'s deformable skip).

    ``affines (B, P, 2, 3)`` are pixel affines (target -> source) of an image of
    ``image_size=(h, w)``; feats may be any resolution of that image. ``masks (B, P, Hm, Wm)``
    in the target frame are nearest-resized to ``(H, W)`` if needed (as the paper does). Each
    part's copy is inverse-warped with bilinear ``grid_sample`` (zeros outside), multiplied by
    its mask, then ``agg="max"`` takes the max over parts, ``"avg"`` the mean over the parts
    whose masks cover a pixel (0 where none does). Differentiable in ``feats`` and ``affines``.
    """
    if feats.ndim != 4:
        raise ValueError(f"feats must be (B, C, H, W), got {tuple(feats.shape)}")
    b, c, h, w = feats.shape
    if affines.ndim != 4 or affines.shape[0] != b or affines.shape[-2:] != (2, 3):
        raise ValueError(f"affines must be (B={b}, P, 2, 3), got {tuple(affines.shape)}")
    p = affines.shape[1]
    if masks.ndim != 4 or masks.shape[:2] != (b, p):
        raise ValueError(f"masks must be (B={b}, P={p}, H, W), got {tuple(masks.shape)}")
    if agg not in ("max", "avg"):
        raise ValueError(f"agg must be 'max' or 'avg', got {agg!r}")
    masks = masks.to(device=feats.device, dtype=feats.dtype)
    if masks.shape[-2:] != (h, w):
        masks = F.interpolate(masks, size=(h, w), mode="nearest")

    # The grid is built in float32 even for half-precision features: half has ~3 significant
    # digits, i.e. a few tenths of a pixel at 256 px, and cannot hold the no-point shift.
    theta = pixel_affines_to_theta(affines.to(device=feats.device, dtype=torch.float32), image_size)
    grid = F.affine_grid(theta.reshape(b * p, 2, 3), [b * p, c, h, w], align_corners=False).to(
        feats.dtype
    )
    tiled = feats.unsqueeze(1).expand(b, p, c, h, w).reshape(b * p, c, h, w)
    warped = F.grid_sample(tiled, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    warped = warped.reshape(b, p, c, h, w) * masks.unsqueeze(2)
    if agg == "max":
        return warped.max(dim=1).values
    cover = masks.sum(dim=1, keepdim=False).unsqueeze(1)  # (B, 1, H, W)
    return warped.sum(dim=1) / cover.clamp_min(1e-6) * (cover > 0).to(feats.dtype)
