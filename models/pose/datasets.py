"""Ground-truth pose annotations (MPII-16, AI Challenger-14, CrowdPose-14, COCO-17, OpenPose-18) mapped to OpenPose-18.

Only joints that mean the same thing in both skeletons are kept, matched by name:

* ``mpii16`` shares the 12 limb joints. ``head_top`` and ``upper_neck`` have no OpenPose
  counterpart, and MPII's ``thorax`` (top of the sternum) is not exactly OpenPose's neck
  (the shoulder midpoint), so it is left out rather than scored against a different point.
* ``aic14`` and ``crowdpose14`` share the 12 limb joints plus ``neck``; ``head_top`` is dropped.
* ``coco17`` shares all 17 of its joints (OpenPose-18 is COCO-17 plus the neck).
* ``openpose18`` (motion-capture joints written in OpenPose order) is taken as it is; its
  ``extra_keypoints`` (head top, pelvis, ...) only widen the person's extent.

Only COCO annotates nose, eyes and ears, so only there are they scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .keypoints import NUM_BODY, OPENPOSE18_NAMES

SUPPORTED_FORMATS = ("mpii16", "aic14", "crowdpose14", "coco17", "openpose18")
# Dataset joint names that are not the OpenPose joint of the same meaning (see module docstring).
_NOT_SHARED = {
    "mpii16": {"thorax", "upper_neck", "head_top", "pelvis"},
    "aic14": {"head_top"},
    "crowdpose14": {"head_top"},
    "coco17": set(),
    "openpose18": set(),
}


@dataclass
class AnnotatedPerson:
    """One annotated person: OpenPose-18 rows ``(x, y, 1)`` where annotated (0 elsewhere) and
    the person's size in pixels, the normaliser of PCK (see :func:`person_size`)."""

    body: np.ndarray
    size: float
    area: float


def shared_joint_map(fmt: str, joint_names: list[str]) -> dict[int, int]:
    """Dataset joint index -> OpenPose-18 index for the joints both skeletons share."""
    if fmt not in SUPPORTED_FORMATS:
        raise ValueError(
            f"unknown annotation format {fmt!r}: expected one of {', '.join(SUPPORTED_FORMATS)}"
        )
    out = {}
    for i, name in enumerate(joint_names):
        if name in _NOT_SHARED[fmt]:
            continue
        if name in OPENPOSE18_NAMES:
            out[i] = OPENPOSE18_NAMES.index(name)
    return out


def person_size(fmt: str, person: dict, keypoints: np.ndarray) -> tuple[float, float]:
    """``(size, area)`` of an annotated person.

    ``size`` is the longer side of the annotated box (AIC/CrowdPose ``bbox``); MPII has no box,
    (nor has the motion-capture ``openpose18`` set), so the longer side of the extent of all its
    annotated joints (head_top included, and the ``extra_keypoints`` such as the head top) stands in.
    That is tighter than MPII's ``scale * 200`` and therefore the stricter choice for PCK.
    ``area`` (for OKS) is the box area, or the extent's area for MPII.
    """
    if "bbox" in person:
        _, _, w, h = (float(v) for v in person["bbox"])
    else:
        pts = keypoints[keypoints[:, 2] > 0, :2]
        extra = [
            v
            for v in (person.get("extra_keypoints") or {}).values()
            if isinstance(v, (list, tuple)) and len(v) >= 3
        ]
        extra_pts = np.asarray([v[:2] for v in extra if v[2] > 0], np.float32).reshape(-1, 2)
        pts = np.concatenate([pts, extra_pts])
        if len(pts) == 0:
            return 0.0, 0.0
        w, h = (pts.max(axis=0) - pts.min(axis=0)).tolist()
    return max(w, h), w * h


def load_annotated_people(entry: dict) -> list[AnnotatedPerson]:
    """The annotated people of one ``keypoints.json`` entry as OpenPose-18 arrays."""
    fmt = entry.get("format")
    joint_map = shared_joint_map(fmt, entry["joint_names"])
    people = []
    for person in entry["people"]:
        kp = np.asarray(person["keypoints"], dtype=np.float32).reshape(-1, 3)
        if len(kp) != len(entry["joint_names"]):
            raise ValueError(
                f"{entry.get('image')}: {len(kp)} keypoints but {len(entry['joint_names'])} joint names"
            )
        body = np.zeros((NUM_BODY, 3), np.float32)
        for src, dst in joint_map.items():
            if kp[src, 2] > 0:
                body[dst] = (kp[src, 0], kp[src, 1], 1.0)
        size, area = person_size(fmt, person, kp)
        people.append(AnnotatedPerson(body=body, size=size, area=area))
    return people
