"""Pose accuracy: PCK, OKS and matching detected people to annotated ones.

Arrays are ``(N, K, 3)`` rows of ``(x, y, score)`` in pixels (one ``(K, 3)`` person is
accepted as N = 1). In the ground truth a score of 0 means "not annotated" (the joint is
not evaluated); in the prediction a score of 0 means "missed" and counts as wrong.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..pose.keypoints import COCO17_NAMES, OPENPOSE18_NAMES

# COCO keypoint sigmas (cocoapi, pycocotools/cocoeval.py), by joint name.
_COCO_SIGMA_BY_NAME = {
    "nose": 0.026,
    "left_eye": 0.025,
    "right_eye": 0.025,
    "left_ear": 0.035,
    "right_ear": 0.035,
    "left_shoulder": 0.079,
    "right_shoulder": 0.079,
    "left_elbow": 0.072,
    "right_elbow": 0.072,
    "left_wrist": 0.062,
    "right_wrist": 0.062,
    "left_hip": 0.107,
    "right_hip": 0.107,
    "left_knee": 0.087,
    "right_knee": 0.087,
    "left_ankle": 0.089,
    "right_ankle": 0.089,
    # COCO has no neck; OpenPose synthesises it from the shoulders, so it gets their tolerance.
    "neck": 0.079,
}
COCO17_SIGMAS = np.array([_COCO_SIGMA_BY_NAME[n] for n in COCO17_NAMES], np.float64)
OPENPOSE18_SIGMAS = np.array([_COCO_SIGMA_BY_NAME[n] for n in OPENPOSE18_NAMES], np.float64)


def _as_batch(arr, name: str) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(
            f"{name}: expected keypoints of shape (N, K, 3) or (K, 3) as (x, y, score), got {a.shape}"
        )
    return a


def _pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    p, g = _as_batch(pred, "pred"), _as_batch(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(
            f"pred and gt keypoints must have the same shape, got {p.shape} and {g.shape}"
        )
    return p, g


def _per_sample(value, n: int, name: str) -> np.ndarray:
    v = np.asarray(value, dtype=np.float64).reshape(-1)
    if v.size == 1:
        v = np.full(n, float(v[0]))
    if v.size != n:
        raise ValueError(f"{name}: expected a scalar or {n} values (one per sample), got {v.size}")
    return v


def _bbox_extent(gt) -> np.ndarray:
    """``(width, height)`` of the box around each person's annotated joints, ``(N, 2)``; 0 if none."""
    g = _as_batch(gt, "gt")
    out = np.zeros((len(g), 2))
    for i, person in enumerate(g):
        pts = person[person[:, 2] > 0, :2]
        if len(pts):
            out[i] = pts.max(0) - pts.min(0)
    return out


def bbox_size(gt) -> np.ndarray:
    """``max(width, height)`` of the box around each person's annotated joints, ``(N,)``; 0 if none."""
    return _bbox_extent(gt).max(axis=1)


def bbox_area(gt) -> np.ndarray:
    """Area of the box around each person's annotated joints, ``(N,)`` (OKS scale without a segmentation)."""
    return _bbox_extent(gt).prod(axis=1)


def pck(pred, gt, ref_size, alpha: float, visible=None) -> dict:
    """Percentage of Correct Keypoints: a joint is correct when ``|pred - gt| <= alpha * ref_size``.

    ``ref_size``: scalar or one per sample (e.g. :func:`bbox_size` of gt, or the image size).
    ``visible``: optional ``(N, K)`` bool to restrict which annotated joints are evaluated.
    Returns ``per_joint`` (K,) accuracy (NaN for a joint never annotated), ``overall`` (NaN
    if nothing was evaluated), ``count`` (evaluated joints), ``correct`` and ``count_per_joint``.
    """
    p, g = _pair(pred, gt)
    n, k, _ = g.shape
    ref = _per_sample(ref_size, n, "ref_size")
    if np.any(ref <= 0) or not np.all(np.isfinite(ref)):
        raise ValueError(f"ref_size must be positive and finite, got {ref}")
    evaluated = g[..., 2] > 0
    if visible is not None:
        vis = np.asarray(visible, dtype=bool).reshape(n, k) if np.size(visible) == n * k else None
        if vis is None:
            raise ValueError(
                f"visible: expected a ({n}, {k}) boolean mask, got shape {np.shape(visible)}"
            )
        evaluated &= vis
    dist = np.linalg.norm(p[..., :2] - g[..., :2], axis=-1)
    correct = evaluated & (p[..., 2] > 0) & (dist <= alpha * ref[:, None])
    count_j = evaluated.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(count_j > 0, correct.sum(0) / np.maximum(count_j, 1), np.nan)
    total = int(evaluated.sum())
    return {
        "per_joint": per_joint,
        "overall": float(correct.sum() / total) if total else float("nan"),
        "count": total,
        "correct": int(correct.sum()),
        "count_per_joint": count_j,
    }


def _default_sigmas(k: int) -> np.ndarray:
    if k == 18:
        return OPENPOSE18_SIGMAS
    if k == 17:
        return COCO17_SIGMAS
    raise ValueError(f"no default OKS sigmas for {k} joints: pass sigmas= (one per joint)")


def oks(pred, gt, area, sigmas=None) -> np.ndarray:
    """Object Keypoint Similarity per sample, ``(N,)``, as cocoeval computes it.

    ``exp(-d^2 / (2 * area * (2 sigma)^2))`` averaged over the annotated joints; a missed joint
    (pred score 0) contributes 0. ``area``: the object's area in pixels^2 (scalar or per
    sample; :func:`bbox_area` when there is no segmentation). ``sigmas`` default: COCO's for
    17 joints, or for OpenPose-18 the COCO ones with the neck given the shoulders' 0.079.
    NaN for a sample with no annotated joint.
    """
    p, g = _pair(pred, gt)
    n, k, _ = g.shape
    s = _default_sigmas(k) if sigmas is None else np.asarray(sigmas, np.float64).reshape(-1)
    if s.size != k:
        raise ValueError(f"sigmas: expected {k} values (one per joint), got {s.size}")
    a = _per_sample(area, n, "area")
    if np.any(a < 0):
        raise ValueError("area must be non-negative")
    var = (2.0 * s) ** 2
    d2 = ((p[..., :2] - g[..., :2]) ** 2).sum(-1)
    e = d2 / var[None, :] / (a[:, None] + np.spacing(1)) / 2.0
    sim = np.exp(-e) * (p[..., 2] > 0)
    annotated = g[..., 2] > 0
    cnt = annotated.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, (sim * annotated).sum(1) / np.maximum(cnt, 1), np.nan)


def match_people(
    pred_bodies: Sequence[np.ndarray], gt_bodies: Sequence[np.ndarray], max_distance: float = 0.5
) -> list[tuple[int, int | None]]:
    """Assign detections to annotated people (Hungarian), one pair per gt person in gt order.

    Cost = mean distance over joints present in both, divided by the gt person's
    :func:`bbox_size`. A pair with no common joint, or a cost above ``max_distance``, is not
    allowed, so a far-away detection stays unmatched (``None``) rather than being paired.
    Unmatched detections are simply left out (they may be unannotated people).
    """
    gts = [_as_batch(b, f"gt_bodies[{i}]")[0] for i, b in enumerate(gt_bodies)]
    preds = [_as_batch(b, f"pred_bodies[{i}]")[0] for i, b in enumerate(pred_bodies)]
    if not gts:
        return []
    if not preds:
        return [(i, None) for i in range(len(gts))]
    cost = np.full((len(gts), len(preds)), np.inf)
    for i, g in enumerate(gts):
        scale = max(float(bbox_size(g)[0]), 1.0)
        for j, p in enumerate(preds):
            if p.shape != g.shape:
                raise ValueError(
                    f"pred_bodies[{j}] has shape {p.shape} but gt_bodies[{i}] has {g.shape}"
                )
            common = (g[:, 2] > 0) & (p[:, 2] > 0)
            if common.any():
                cost[i, j] = np.linalg.norm(p[common, :2] - g[common, :2], axis=1).mean() / scale
    allowed = cost <= max_distance
    # Forbidden pairs get a cost larger than any sum of allowed ones, then are dropped.
    big = 1e6 + (cost[allowed].sum() if allowed.any() else 0.0)
    rows, cols = linear_sum_assignment(np.where(allowed, cost, big))
    assigned = {int(r): int(c) for r, c in zip(rows, cols) if allowed[r, c]}
    return [(i, assigned.get(i)) for i in range(len(gts))]


def pose_accuracy(
    pred_bodies: Sequence[np.ndarray],
    gt_bodies: Sequence[np.ndarray],
    alphas: Sequence[float] = (0.05, 0.1, 0.2),
    max_distance: float = 0.5,
    sigmas=None,
) -> dict:
    """PCK at each alpha (ref = gt :func:`bbox_size`) and OKS (area = gt :func:`bbox_area`)
    for every annotated person, after :func:`match_people`; an unmatched person counts all
    its joints as missed. Returns ``matches``, ``pck`` {alpha: pck dict}, ``oks`` (per gt person)
    and ``oks_mean``. People with fewer than 2 annotated joints are skipped (no scale)."""
    matches = match_people(pred_bodies, gt_bodies, max_distance)
    gt_list, pred_list, kept = [], [], []
    for gi, pj in matches:
        g = _as_batch(gt_bodies[gi], "gt")[0]
        if (g[:, 2] > 0).sum() < 2 or bbox_size(g)[0] <= 0:
            continue
        gt_list.append(g)
        pred_list.append(np.zeros_like(g) if pj is None else _as_batch(pred_bodies[pj], "pred")[0])
        kept.append(gi)
    result: dict = {"matches": matches, "evaluated_people": kept}
    if not gt_list:
        k = _as_batch(gt_bodies[0], "gt").shape[1] if len(gt_bodies) else 18
        empty = {
            "per_joint": np.full(k, np.nan),
            "overall": float("nan"),
            "count": 0,
            "correct": 0,
            "count_per_joint": np.zeros(k, int),
        }
        result.update(
            pck={float(a): dict(empty) for a in alphas}, oks=np.zeros(0), oks_mean=float("nan")
        )
        return result
    g, p = np.stack(gt_list), np.stack(pred_list)
    ref = bbox_size(g)
    result["pck"] = {float(a): pck(p, g, ref, a) for a in alphas}
    o = oks(p, g, bbox_area(g), sigmas)
    result["oks"] = o
    result["oks_mean"] = float(np.nanmean(o)) if np.isfinite(o).any() else float("nan")
    return result


def summarize(results: Sequence[dict], alphas: Sequence[float] = (0.05, 0.1, 0.2)) -> dict:
    """Pool several :func:`pose_accuracy` results (e.g. a batch of images): PCK from the summed
    joint counts, OKS averaged over all evaluated people."""
    out: dict = {"pck": {}, "pck_per_joint": {}}
    for a in alphas:
        a = float(a)
        correct_j = sum(
            np.nan_to_num(r["pck"][a]["per_joint"]) * r["pck"][a]["count_per_joint"]
            for r in results
        )
        count_j = sum(np.asarray(r["pck"][a]["count_per_joint"]) for r in results)
        correct = sum(r["pck"][a]["correct"] for r in results)
        count = sum(r["pck"][a]["count"] for r in results)
        out["pck"][a] = correct / count if count else float("nan")
        with np.errstate(invalid="ignore", divide="ignore"):
            out["pck_per_joint"][a] = np.where(
                np.asarray(count_j) > 0, correct_j / np.maximum(count_j, 1), np.nan
            )
    out["count"] = int(sum(r["pck"][float(alphas[0])]["count"] for r in results)) if alphas else 0
    oks_all = (
        np.concatenate([np.asarray(r["oks"], float) for r in results]) if results else np.zeros(0)
    )
    oks_all = oks_all[np.isfinite(oks_all)]
    out["oks"] = float(oks_all.mean()) if len(oks_all) else float("nan")
    out["people"] = int(len(oks_all))
    return out
