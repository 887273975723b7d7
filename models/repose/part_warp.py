"""Classical, non-learned pose transfer: move a person's body parts into a new pose by per-part
affine warps (Siarohin et al.'s ten parts), over an inpainted background.

This is the baseline every learned method must beat. It cannot invent what the source does
not show (a turned head, a hidden arm) and it stretches clothes rigidly, but it keeps the
person's exact pixels and needs no weights.

Pipeline for one image and one person:

1. fill the background where the source person was (OpenCV inpainting of the dilated mask);
2. split the source person's mask into the ten parts: each pixel goes to the nearest part
   "core" (torso polygon, head points, limb bones; an arm only within a sleeve-wide band) of
   the source skeleton, then each limb's region is grown a little into its neighbours around
   its joints so bent joints leave no gaps;
3. warp every part's pixels and region by its affine (target -> source, inverse map) into the
   target pose, clipped to a generous neighbourhood of the part's mask in the target frame;
4. stack the parts back to front (torso, thighs, upper arms, shins, forearms, head), then
   paste the stack over the filled background with an inward-feathered edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..pose import parts
from ..pose.keypoints import NUM_BODY, J
from ..segmentation.fill import dilate, fill_background

# Back to front: limbs in front of the torso, the extremities in front of the limbs they hang
# from, the head over everything (what a person facing the camera shows).
DEPTH_ORDER = (
    "torso",
    "right_thigh",
    "left_thigh",
    "right_upper_arm",
    "left_upper_arm",
    "right_shin",
    "left_shin",
    "right_forearm",
    "left_forearm",
    "head",
)
ALIGN_MODES = ("none", "source")

# Fractions of the torso scale.
LIMB_BAND = 0.3  # how far from its bone a source pixel can still belong to an arm
HEAD_PRIORITY = 0.2  # pixels this close to the head's points are the head's, whatever else is near
GROW = 0.15  # how far a limb's source region reaches into its neighbours (covers bent joints)...
JOINT_ZONE = 0.3  # ...within this distance of its joints: elsewhere it would drag neighbours along
# How far outside its target mask a warped part may land: the torso and head need room for
# loose shirts and hair; limb masks already run past the joints, and a wide reach would let
# a limb drag torso pixels along as a flap.
REACH = {"torso": 0.3, "head": 0.3}
LIMB_REACH = 0.12


@dataclass
class ReposeResult:
    image: np.ndarray  # uint8 (H, W, 3): the person in the target pose over the filled background
    mask: np.ndarray  # float32 (H, W): where the reposed person is
    background: np.ndarray  # uint8 (H, W, 3): the source with the person inpainted away


def _check_body(body, what: str) -> np.ndarray:
    arr = np.asarray(body, np.float32)
    if arr.shape != (NUM_BODY, 3):
        raise ValueError(
            f"{what}: expected an OpenPose-18 array of shape (18, 3) (x, y, score), got {arr.shape}"
        )
    return arr


def torso_centre(body: np.ndarray) -> np.ndarray | None:
    """Mean of the present shoulders and hips; else the neck; else the centre of the present joints."""
    body = np.asarray(body, np.float32)
    idx = [j for j in parts.TORSO_JOINTS if body[j, 2] > 0]
    if idx:
        return body[idx, :2].mean(0)
    if body[J["neck"], 2] > 0:
        return body[J["neck"], :2].copy()
    vis = body[:, 2] > 0
    return body[vis, :2].mean(0) if vis.any() else None


def align_to_source(tgt_body, src_body) -> np.ndarray:
    """The target pose moved and scaled so its torso centre and torso scale match the source's.

    Use when the target pose comes from another photo: the person then keeps their place and
    size in their own picture and only the pose changes.
    """
    tgt = _check_body(tgt_body, "target body").copy()
    src = _check_body(src_body, "source body")
    ct, cs = torso_centre(tgt), torso_centre(src)
    st, ss = parts.torso_scale(tgt), parts.torso_scale(src)
    if ct is None or cs is None:
        raise ValueError(
            "cannot align the target pose to the source: one of them has no visible keypoints"
        )
    scale = ss / st if st > 0 and ss > 0 else 1.0
    vis = tgt[:, 2] > 0
    tgt[vis, :2] = (tgt[vis, :2] - ct) * scale + cs
    return tgt


def head_similarity(src: np.ndarray, tgt: np.ndarray) -> np.ndarray | None:
    """Target -> source similarity (rotation, uniform scale, shift; never a reflection) for the head.

    The least-squares affine on a few close head points plus the shoulders shears the face
    when the head turns; a head is rigid, so it only follows its centre, the neck's direction
    and the torso-scale ratio. None when the head points are missing in either pose.
    """
    both = [j for j in parts.HEAD_JOINTS if src[j, 2] > 0 and tgt[j, 2] > 0]
    if not both:
        return None
    cs, ct = src[both, :2].mean(0).astype(np.float64), tgt[both, :2].mean(0).astype(np.float64)
    ss, st = parts.torso_scale(src), parts.torso_scale(tgt)
    k = ss / st if ss > 0 and st > 0 else 1.0
    angle = 0.0
    neck = J["neck"]
    if src[neck, 2] > 0 and tgt[neck, 2] > 0:
        ds, dt = cs - src[neck, :2], ct - tgt[neck, :2]
        if np.hypot(*ds) > 1e-3 and np.hypot(*dt) > 1e-3:
            angle = float(np.arctan2(ds[1], ds[0]) - np.arctan2(dt[1], dt[0]))
    rot = k * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.concatenate([rot, (cs - rot @ ct)[:, None]], axis=1).astype(np.float32)


def _part_cores(body: np.ndarray, height: int, width: int, st: float) -> dict[int, np.ndarray]:
    """uint8 images of each part's core in the source frame (only parts the source shows)."""
    cores: dict[int, np.ndarray] = {}
    pts = body[:, :2].astype(np.float64)
    vis = body[:, 2] > 0

    def pt(j):
        return tuple(int(round(v)) for v in pts[j])

    torso = [j for j in parts.TORSO_JOINTS if vis[j]]
    core = np.zeros((height, width), np.uint8)
    if len(torso) >= 3:
        cv2.fillPoly(core, [np.round(pts[torso]).astype(np.int32)], 1)
    else:
        chain = [j for j in (J["neck"], *parts.TORSO_JOINTS) if vis[j]]
        for a, b in zip(chain, chain[1:]):
            cv2.line(core, pt(a), pt(b), 1, 1)
    if core.any():
        cores[0] = core
    head = [j for j in parts.HEAD_JOINTS if vis[j]]
    if head:
        core = np.zeros((height, width), np.uint8)
        if len(head) >= 3:
            cv2.fillPoly(core, [cv2.convexHull(np.round(pts[head]).astype(np.int32))], 1)
        for j in head:
            cv2.circle(core, pt(j), max(int(round(0.08 * st)), 1), 1, -1)
        cores[1] = core
    for i, name in enumerate(parts.PART_NAMES[2:], start=2):
        a, b, _, _ = parts.LIMBS[name]
        if vis[a] and vis[b]:
            core = np.zeros((height, width), np.uint8)
            cv2.line(core, pt(a), pt(b), 1, 1)
            cores[i] = core
    return cores


def _source_part_of(src: np.ndarray) -> list[int | None]:
    """Which source part supplies each part's pixels: itself, its mirror, or nothing."""
    vis = src[:, 2] > 0
    out: list[int | None] = [0, 1]
    for name in parts.PART_NAMES[2:]:
        a, b, _, mirror = parts.LIMBS[name]
        if vis[a] and vis[b]:
            out.append(parts.PART_NAMES.index(name))
        else:
            ma, mb, _, _ = parts.LIMBS[mirror]
            out.append(parts.PART_NAMES.index(mirror) if vis[ma] and vis[mb] else None)
    return out


def source_part_regions(
    src_body, person_mask: np.ndarray, use: set[int] | None = None
) -> dict[int, np.ndarray]:
    """Soft regions float32 ``(H, W)`` of the source person belonging to each source part.

    Every person pixel goes to the nearest part core, so nothing of the person is lost (hands
    join the forearms, feet the shins, hair the head). A limb's region then grows by ``GROW``
    torso scales into its neighbours near its joints (its proximal joint, and the elbow or knee
    for upper limbs), still inside the person, so bent joints close without gaps. With ``use``,
    only those parts get a region: the pixels of the others go to their nearest used part.
    """
    src = _check_body(src_body, "source body")
    mask = np.clip(np.nan_to_num(np.asarray(person_mask, np.float32)), 0.0, 1.0)
    H, W = mask.shape
    person = mask > 0.02
    if not person.any():
        return {}
    st = max(parts.torso_scale(src), 1.0)
    # work inside the person's box (plus the joints): distance transforms cost per pixel
    ys, xs = np.nonzero(person)
    vis = src[:, 2] > 0
    x0 = int(max(min(xs.min(), src[vis, 0].min() if vis.any() else W) - 2, 0))
    y0 = int(max(min(ys.min(), src[vis, 1].min() if vis.any() else H) - 2, 0))
    x1 = int(min(max(xs.max(), src[vis, 0].max() if vis.any() else 0) + 3, W))
    y1 = int(min(max(ys.max(), src[vis, 1].max() if vis.any() else 0) + 3, H))
    local = src.copy()
    local[:, 0] -= x0
    local[:, 1] -= y0
    cores = _part_cores(local, y1 - y0, x1 - x0, st)
    if use is not None:
        cores = {k: v for k, v in cores.items() if k in use}
    if not cores:
        return {}
    keys = sorted(cores)
    dists = np.stack(
        [cv2.distanceTransform((1 - cores[k]).astype(np.uint8), cv2.DIST_L2, 3) for k in keys]
    )
    # a limb owns only a sleeve-wide band around its bone: in a turned or back view the
    # shoulder joint sits inside the shirt, and the nearest-bone rule alone would hand a
    # slab of back to the upper arm, which then swings out with it as a flap
    for n, k in enumerate(keys):
        if "arm" in parts.PART_NAMES[k]:  # legs keep the plain rule: trousers are wide at the hip
            dists[n][dists[n] > LIMB_BAND * st] = 1e6
    nearest = np.argmin(dists, axis=0)
    if 1 in cores:
        # the face belongs to the head even where a hand touches it (a phone, a camera, a
        # hand on the chin): otherwise the raised hand would carry a second copy of the face
        h = keys.index(1)
        nearest[dists[h] <= HEAD_PRIORITY * st] = h
    crop_mask = mask[y0:y1, x0:x1]
    grow = max(int(round(GROW * st)), 1)
    zone_r = JOINT_ZONE * st
    regions = {}
    for n, k in enumerate(keys):
        own = (nearest == n) & (crop_mask > 0.02)
        grown = own
        if k >= 2:
            # limbs reach into their neighbours only around the joints where the body bends
            a, b, lower, _ = parts.LIMBS[parts.PART_NAMES[k]]
            zone = np.zeros(own.shape, np.uint8)
            for j in (a,) if lower else (a, b):
                cv2.circle(
                    zone,
                    tuple(int(round(v)) for v in local[j, :2]),
                    max(int(round(zone_r)), 1),
                    1,
                    -1,
                )
            grown = own | (dilate(own, grow) & (zone > 0))
        full = np.zeros((H, W), np.float32)
        full[y0:y1, x0:x1] = np.where(grown, crop_mask, 0.0)
        regions[k] = full
    return regions


# limb -> the limb hanging from it
CHILD = {
    "right_upper_arm": "right_forearm",
    "left_upper_arm": "left_forearm",
    "right_thigh": "right_shin",
    "left_thigh": "left_shin",
}
DANGLE = 1.2  # how far (segment lengths / torso scales) an undrawn extremity may hang on


def _fill_poly(mask: np.ndarray, poly: np.ndarray) -> None:
    cv2.fillPoly(
        mask,
        [np.round(np.asarray(poly, np.float64) * 16).astype(np.int32).reshape(-1, 1, 2)],
        1.0,
        cv2.LINE_8,
        shift=4,
    )


def _extend_for_missing_children(tgt: np.ndarray, tgt_masks: np.ndarray, drawn: np.ndarray) -> None:
    """Let an extremity the poses don't describe hang on to the part above it.

    Detectors drop joints beyond the frame edge or too uncertain (an ankle cut off by the
    picture, a knee behind a chair). The pixels below the last known joint then belong to the
    part above (nearest-core rule), so that part's target mask is extended along its direction
    (a thigh continues into the shin, the torso into the legs) instead of cutting them off.
    """
    st = parts.torso_scale(tgt)
    if st <= 0:
        return
    for parent, child in CHILD.items():
        i, c = parts.PART_NAMES.index(parent), parts.PART_NAMES.index(child)
        if drawn[i] and not drawn[c]:
            a, b, _, _ = parts.LIMBS[parent]
            rect = parts.limb_rectangle(
                tgt[a], tgt[b], parts.INC_FROM, DANGLE, parts.HALF_WIDTH * st
            )
            if rect is not None:
                _fill_poly(tgt_masks[i], rect)
    thighs = [parts.PART_NAMES.index(n) for n in ("right_thigh", "left_thigh")]
    if drawn[0] and not drawn[thighs].any():
        rs, ls, rh, lh = (
            J[n] for n in ("right_shoulder", "left_shoulder", "right_hip", "left_hip")
        )
        if (tgt[[rs, ls, rh, lh], 2] > 0).all():
            down = (tgt[rh, :2] + tgt[lh, :2] - tgt[rs, :2] - tgt[ls, :2]) / 2.0
            down = down / max(float(np.hypot(*down)), 1e-6) * DANGLE * st
            _fill_poly(
                tgt_masks[0],
                np.stack([tgt[rh, :2], tgt[lh, :2], tgt[lh, :2] + down, tgt[rh, :2] + down]),
            )


def warp_person(
    image: np.ndarray, src_body, tgt_body, person_mask: np.ndarray, depth_order=DEPTH_ORDER
):
    """The source person's parts warped into the target pose, stacked back to front.

    Returns ``(colour float32 (H, W, 3) in [0, 255], alpha float32 (H, W))``; colour is
    meaningful where alpha > 0. Parts missing in the target are not drawn.
    """
    src = _check_body(src_body, "source body")
    tgt = _check_body(tgt_body, "target body")
    H, W = image.shape[:2]
    affines, valid = parts.part_affines(src, tgt)
    head = parts.PART_NAMES.index("head")
    if valid[head]:
        sim = head_similarity(src, tgt)
        if sim is not None:
            affines[head] = sim
    tgt_masks = parts.part_masks(tgt, H, W, torso="polygon", valid=valid)
    supplier = _source_part_of(src)
    drawn = np.array([bool(valid[i]) and supplier[i] is not None for i in range(parts.NUM_PARTS)])
    # a source limb the target does not draw gives its pixels to the part it hangs from
    # (legs to the torso, a hand to the forearm) instead of vanishing with it
    regions = source_part_regions(
        src, person_mask, use={0, 1} | {supplier[i] for i in np.flatnonzero(drawn)}
    )
    drawn &= np.array([supplier[i] in regions for i in range(parts.NUM_PARTS)])
    _extend_for_missing_children(tgt, tgt_masks, drawn)
    st_t = max(parts.torso_scale(tgt), 1.0)
    colour = np.zeros((H, W, 3), np.float32)
    alpha = np.zeros((H, W), np.float32)
    img = image.astype(np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    for name in depth_order:
        i = parts.PART_NAMES.index(name)
        k = supplier[i]
        if not drawn[i]:
            continue
        m = affines[i].astype(np.float64)
        reach = max(int(round(REACH.get(name, LIMB_REACH) * st_t)), 1)
        # work in the box of the part's target mask grown by the reach, not the whole frame
        x, y, w, h = cv2.boundingRect((tgt_masks[i] > 0).astype(np.uint8))
        if w == 0 or h == 0:
            continue
        bx0, by0 = max(x - reach - 1, 0), max(y - reach - 1, 0)
        bx1, by1 = min(x + w + reach + 1, W), min(y + h + reach + 1, H)
        allowed = dilate(tgt_masks[i][by0:by1, bx0:bx1] > 0, reach).astype(np.float32)
        # shift the output origin to the box corner: dst (x, y) in the box is (x + bx0, y + by0)
        shift = np.array([[1.0, 0.0, bx0], [0.0, 1.0, by0], [0.0, 0.0, 1.0]])
        mb = (np.vstack([m, [0.0, 0.0, 1.0]]) @ shift)[:2]
        size = (int(bx1 - bx0), int(by1 - by0))
        a = cv2.warpAffine(
            regions[k], mb, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        a *= allowed
        if not a.any():
            continue
        c = cv2.warpAffine(img, mb, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        a3 = a[:, :, None]
        colour[by0:by1, bx0:bx1] = c * a3 + colour[by0:by1, bx0:bx1] * (1.0 - a3)
        alpha[by0:by1, bx0:bx1] = a + alpha[by0:by1, bx0:bx1] * (1.0 - a)
    # colour is premultiplied by alpha; un-premultiply where anything was drawn
    covered = alpha > 1e-4
    colour[covered] /= alpha[covered][:, None]
    return colour, np.clip(alpha, 0.0, 1.0)


def repose_person(
    image: np.ndarray,
    src_body,
    tgt_body,
    person_mask: np.ndarray,
    feather: float = 2.0,
    fill_method: str = "telea",
    fill_dilation: int = 12,
    align: str = "none",
    background: np.ndarray | None = None,
) -> ReposeResult:
    """Repose one person of an RGB uint8 image from ``src_body`` to ``tgt_body`` (OpenPose-18
    pixels on the image's canvas). ``person_mask`` (H, W) in [0, 1] covers that person only;
    other people stay where they are. ``align="source"`` first moves and scales the target
    pose onto the source person (for poses taken from another photo). ``background`` replaces
    the inpainted one when given (e.g. a clean plate)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}"
        )
    H, W = image.shape[:2]
    mask = np.clip(np.nan_to_num(np.asarray(person_mask, np.float32)), 0.0, 1.0)
    if mask.shape != (H, W):
        raise ValueError(
            f"person mask has shape {mask.shape} but the image is {W}x{H}: give a mask of the image's size"
        )
    if align not in ALIGN_MODES:
        raise ValueError(f"align must be one of {ALIGN_MODES}, got {align!r}")
    src = _check_body(src_body, "source body")
    tgt = _check_body(tgt_body, "target body")
    if not (src[:, 2] > 0).any():
        raise ValueError(
            "the source pose has no visible keypoints: detect the pose of the source image first"
        )
    if not (tgt[:, 2] > 0).any():
        raise ValueError("the target pose has no visible keypoints: nothing to move the person to")
    if align == "source":
        tgt = align_to_source(tgt, src)
    if background is None:
        background = (
            fill_background(image, mask, method=fill_method, dilation=fill_dilation)
            if (mask > 0.5).any()
            else image.copy()
        )
    elif background.shape != image.shape:
        raise ValueError(f"background {background.shape} must match the image {image.shape}")
    colour, alpha = warp_person(image, src, tgt, mask)
    # feather inwards only: outside the stack there is no colour to blend from
    if feather > 0:
        soft = cv2.GaussianBlur(
            alpha, (0, 0), sigmaX=float(feather), borderType=cv2.BORDER_REPLICATE
        )
        final = np.minimum(alpha, soft)
    else:
        final = alpha
    a3 = final[:, :, None]
    out = colour * a3 + background.astype(np.float32) * (1.0 - a3)
    out = np.clip(np.nan_to_num(out) + 0.5, 0, 255).astype(np.uint8)
    return ReposeResult(image=out, mask=alpha.astype(np.float32), background=background)
