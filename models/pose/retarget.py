"""Retargeting: a target pose redrawn with the source person's bone lengths.

Walking the kinematic tree from the neck (:data:`edit.PARENT`), each bone keeps the target's
2-D direction and takes the source's 2-D length, so the reposed person keeps their own
proportions (arm length, leg length, head size) instead of the target person's. The result is
then placed at the source person's torso (or the target's, see ``anchor``).

Missing data:
* a joint missing in the target stays missing (no direction to follow);
* a target joint whose parent is missing hangs from its nearest present ancestor;
* a bone missing in the source takes the mirrored bone's length (people are near-symmetric),
  else the target's length times the ratio of torso scales;
* a target without a neck gets one from its shoulders; without shoulders either, the target
  is only scaled and moved onto the source (a similarity), as there is no tree to walk.
Hands and face follow their wrist / nose, scaled by the torso-scale ratio.
"""

from __future__ import annotations

import numpy as np

from .edit import PARENT, translate_person
from .keypoints import NUM_BODY, OPENPOSE18_FLIP, J, Person, PoseFrame
from .parts import torso_scale

NECK = J["neck"]
TORSO_CENTRE_JOINTS = (
    J["neck"],
    J["right_shoulder"],
    J["left_shoulder"],
    J["right_hip"],
    J["left_hip"],
)
ANCHORS = ("source", "target", "neck")


def _children_order() -> list[int]:
    """Joints in breadth-first order from the neck, so every parent comes before its child."""
    order, frontier = [], [NECK]
    while frontier:
        nxt = []
        for j in frontier:
            kids = sorted(c for c, p in PARENT.items() if p == j)
            order.extend(kids)
            nxt.extend(kids)
        frontier = nxt
    return order


ORDER = _children_order()


def _with_neck(body: np.ndarray) -> np.ndarray:
    b = body.copy()
    rs, ls = b[J["right_shoulder"]], b[J["left_shoulder"]]
    if b[NECK, 2] <= 0 and rs[2] > 0 and ls[2] > 0:
        b[NECK] = ((rs[0] + ls[0]) / 2, (rs[1] + ls[1]) / 2, min(rs[2], ls[2]))
    return b


def _torso_centre(body: np.ndarray, other: np.ndarray | None = None) -> np.ndarray | None:
    """Mean of the present torso joints (of all present joints if none); with ``other``, only
    joints present in both, so two poses' centres are measured on the same points."""
    present = body[:, 2] > 0
    if other is not None:
        present &= other[:, 2] > 0
    idx = [j for j in TORSO_CENTRE_JOINTS if present[j]] or list(np.flatnonzero(present))
    if not idx:
        return None
    return body[idx, :2].astype(np.float64).mean(0)


def _common_scales(src: np.ndarray, tgt: np.ndarray) -> tuple[float, float]:
    """Torso scales measured on the joints present in both poses, so a fallback measure (e.g.
    hip width when shoulders are missing) is compared with the same measure."""
    both = (src[:, 2] > 0) & (tgt[:, 2] > 0)
    return torso_scale(src * both[:, None]), torso_scale(tgt * both[:, None])


def _dist(body: np.ndarray, a: int, b: int) -> float | None:
    if body[a, 2] > 0 and body[b, 2] > 0:
        return float(np.linalg.norm(body[a, :2].astype(np.float64) - body[b, :2]))
    return None


def _path_length(body: np.ndarray, ancestor: int, joint: int) -> float | None:
    """Length along the tree from ``ancestor`` down to ``joint`` in ``body`` (None if a bone is missing)."""
    total, j = 0.0, joint
    while j != ancestor:
        p = PARENT[j]
        d = _dist(body, p, j)
        if d is None:
            return None
        total += d
        j = p
    return total


def retarget_body(src_body, tgt_body, anchor: str = "source") -> np.ndarray:
    """OpenPose-18 ``(18, 3)``: the target's pose with the source's bone lengths.

    ``anchor``: ``"source"`` puts the result's torso centre on the source's (repose the source
    person in place), ``"target"`` on the target's (the source's body in the target's spot),
    ``"neck"`` puts the neck on the source's neck. Scores are the target's.
    """
    if anchor not in ANCHORS:
        raise ValueError(f"anchor must be one of {ANCHORS}, got {anchor!r}")
    src, tgt = np.asarray(src_body, np.float32), np.asarray(tgt_body, np.float32)
    for arr, what in ((src, "source"), (tgt, "target")):
        if arr.shape != (NUM_BODY, 3):
            raise ValueError(
                f"{what} body: expected an OpenPose-18 array of shape (18, 3), got {arr.shape}"
            )
    src, tgt = _with_neck(src), _with_neck(tgt)
    st_src, st_tgt = _common_scales(src, tgt)
    if st_src <= 0 or st_tgt <= 0 or not (tgt[:, 2] > 0).any():
        raise ValueError(
            "cannot retarget: the source and target poses each need at least two body joints "
            "(ideally shoulders and hips); check that a person was detected in both"
        )
    ratio = st_src / st_tgt

    out = np.zeros((NUM_BODY, 3), np.float64)
    if tgt[NECK, 2] <= 0:
        # No tree root: fall back to a similarity (scale by torso ratio about the target centre).
        out[:] = tgt
        present = tgt[:, 2] > 0
        c = _torso_centre(tgt)
        out[present, :2] = (tgt[present, :2] - c) * ratio + c
    else:
        out[NECK] = tgt[NECK]
        for j in ORDER:
            if tgt[j, 2] <= 0:
                continue
            anc = PARENT[j]
            while anc != NECK and out[anc, 2] <= 0:
                anc = PARENT[anc]
            if out[anc, 2] <= 0:
                continue
            direction = tgt[j, :2].astype(np.float64) - tgt[anc, :2]
            norm = float(np.linalg.norm(direction))
            length = _path_length(src, anc, j)
            if length is None:
                mj, ma = OPENPOSE18_FLIP[j], OPENPOSE18_FLIP[anc]
                length = _path_length(src, ma, mj) if PARENT.get(mj) is not None else None
            if length is None:
                length = norm * ratio
            unit = direction / norm if norm > 1e-9 else np.zeros(2)
            out[j, :2] = out[anc, :2] + unit * length
            out[j, 2] = tgt[j, 2]

    out32 = out.astype(np.float32)
    if anchor == "neck" and src[NECK, 2] > 0 and out[NECK, 2] > 0:
        shift = src[NECK, :2] - out[NECK, :2]
    else:
        ref = tgt if anchor == "target" else src
        ref_c, out_c = _torso_centre(ref, out32), _torso_centre(out32, ref)
        shift = ref_c - out_c if ref_c is not None else np.zeros(2)
    present = out[:, 2] > 0
    out[present, :2] += shift
    return out.astype(np.float32)


def _follow(
    part: np.ndarray | None, old_anchor: np.ndarray, new_anchor: np.ndarray, ratio: float
) -> np.ndarray | None:
    # Without both anchors there is no place to put it: drop it rather than leave it floating.
    if part is None or old_anchor[2] <= 0 or new_anchor[2] <= 0:
        return None
    out = part.copy()
    present = out[:, 2] > 0
    out[present, :2] = (out[present, :2] - old_anchor[:2]) * ratio + new_anchor[:2]
    return out


def retarget_person(src: Person, tgt: Person, anchor: str = "source") -> Person:
    """:func:`retarget_body` plus the target's hands and face carried along (scaled to the source)."""
    body = retarget_body(src.body, tgt.body, anchor)
    st_src, st_tgt = _common_scales(_with_neck(src.body), _with_neck(tgt.body))
    ratio = st_src / max(st_tgt, 1e-6)
    return Person(
        body=body,
        left_hand=_follow(tgt.left_hand, tgt.body[J["left_wrist"]], body[J["left_wrist"]], ratio),
        right_hand=_follow(
            tgt.right_hand, tgt.body[J["right_wrist"]], body[J["right_wrist"]], ratio
        ),
        face=_follow(tgt.face, tgt.body[J["nose"]], body[J["nose"]], ratio),
    )


def retarget_frame(src: PoseFrame, tgt: PoseFrame, anchor: str = "source") -> PoseFrame:
    """Person i of the source takes the pose of person i of the target (or of the target's only
    person); the result lives on the source's canvas. Directions are read in the target's own
    canvas (rescaling a different aspect ratio would bend them); with ``anchor="target"`` the
    target's torso centre is mapped onto the source canvas proportionally."""
    if anchor not in ANCHORS:
        raise ValueError(f"anchor must be one of {ANCHORS}, got {anchor!r}")
    if not src.people:
        raise ValueError(
            "cannot retarget: no person in the source pose (run pose extraction on the source image first)"
        )
    if not tgt.people:
        raise ValueError("cannot retarget: no person in the target pose")
    if len(tgt.people) not in (1, len(src.people)):
        raise ValueError(
            f"the target pose has {len(tgt.people)} people and the source {len(src.people)}: give one target "
            "person (used for everyone) or one per source person, or select people with PoseLabEditPose"
        )
    sx, sy = src.width / tgt.width, src.height / tgt.height
    people = []
    for i, sp in enumerate(src.people):
        tp = tgt.people[0] if len(tgt.people) == 1 else tgt.people[i]
        if anchor == "target":
            person = retarget_person(sp, tp, "source")
            goal = _torso_centre(tp.body, person.body) * (sx, sy)
            now = _torso_centre(person.body, tp.body)
            person = translate_person(person, float(goal[0] - now[0]), float(goal[1] - now[1]))
        else:
            person = retarget_person(sp, tp, anchor)
        people.append(person)
    return PoseFrame(src.width, src.height, people)
