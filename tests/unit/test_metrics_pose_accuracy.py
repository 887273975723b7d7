"""PCK / OKS / matching on hand-made keypoints with answers worked out by hand."""

import math

import numpy as np
import pytest

from poselab.models.metrics import pose_accuracy as pa


def _body(points, k=18):
    """(K, 3) body with the given {joint: (x, y)} present, score 1."""
    b = np.zeros((k, 3))
    for j, (x, y) in points.items():
        b[j] = (x, y, 1.0)
    return b


def test_pck_known_answer_counts_missed_and_ignores_unannotated():
    gt = _body({0: (0, 0), 1: (0, 10), 2: (10, 10), 3: (10, 20)})
    pred = gt.copy()
    pred[0, :2] += (3, 4)  # distance 5
    pred[1, :2] += (0, 12)  # distance 12
    pred[2] = 0  # missed: counts as wrong even though gt is right there
    pred[5] = (100, 100, 1)  # not annotated in gt: must not be counted
    r = pa.pck(pred, gt, ref_size=100, alpha=0.1)  # threshold 10 px
    assert r["count"] == 4
    assert r["correct"] == 2  # joints 0 and 3
    assert r["overall"] == pytest.approx(0.5)
    assert (
        r["per_joint"][0] == 1
        and r["per_joint"][1] == 0
        and r["per_joint"][2] == 0
        and r["per_joint"][3] == 1
    )
    assert np.isnan(r["per_joint"][5])
    # Threshold 15 px: joint 1 (12 px) becomes correct.
    assert pa.pck(pred, gt, 100, 0.15)["overall"] == pytest.approx(0.75)
    # Threshold exactly at the distance counts as correct (<=).
    assert pa.pck(pred, gt, 50, 0.1)["per_joint"][0] == 1


def test_pck_per_sample_ref_and_visible_mask():
    gt = np.stack([_body({0: (0, 0), 1: (0, 10)}), _body({0: (0, 0), 1: (0, 10)})])
    pred = gt.copy()
    pred[:, :, 0] += 8  # every joint 8 px off
    r = pa.pck(pred, gt, ref_size=[100, 50], alpha=0.1)  # thresholds 10 and 5
    assert r["overall"] == pytest.approx(0.5)
    vis = np.zeros((2, 18), bool)
    vis[0, 0] = True
    r2 = pa.pck(pred, gt, [100, 50], 0.1, visible=vis)
    assert r2["count"] == 1 and r2["overall"] == 1.0
    with pytest.raises(ValueError, match="ref_size"):
        pa.pck(pred, gt, ref_size=0, alpha=0.1)
    with pytest.raises(ValueError, match="same shape"):
        pa.pck(pred[:1], gt, 10, 0.1)


def test_oks_known_answer():
    gt = _body({5: (0, 0), 0: (50, 50)})  # left_shoulder (sigma .079), nose (.026)
    pred = gt.copy()
    pred[5, :2] = (3, 4)  # d^2 = 25
    area = 400.0
    e_sh = 25 / (2 * 0.079) ** 2 / area / 2
    expected = (math.exp(-e_sh) + 1.0) / 2  # nose exact
    assert pa.oks(pred, gt, area)[0] == pytest.approx(expected, rel=1e-9)
    # Perfect prediction -> 1; nose missed -> half.
    assert pa.oks(gt, gt, area)[0] == pytest.approx(1.0)
    missed = gt.copy()
    missed[0] = 0
    assert pa.oks(missed, gt, area)[0] == pytest.approx(0.5)
    # Neck uses the shoulders' sigma.
    assert pa.OPENPOSE18_SIGMAS[1] == pa.OPENPOSE18_SIGMAS[2] == 0.079
    # Nothing annotated -> NaN, not 0 or 1.
    assert np.isnan(pa.oks(gt, np.zeros((18, 3)), area)[0])
    # COCO-17 default sigmas match cocoapi's order (nose first, ankles last).
    assert pa.COCO17_SIGMAS[0] == 0.026 and pa.COCO17_SIGMAS[-1] == 0.089
    with pytest.raises(ValueError, match="sigmas"):
        pa.oks(np.zeros((1, 5, 3)), np.zeros((1, 5, 3)), 1.0)


def test_match_people_hungarian_and_gate():
    a = _body({0: (10, 10), 1: (10, 50), 8: (10, 150)})
    b = _body({0: (300, 10), 1: (300, 50), 8: (300, 150)})
    far = _body({0: (900, 900), 1: (900, 950)})
    pred_b = b.copy()
    pred_b[:, :2][pred_b[:, 2] > 0] += 5
    pred_a = a.copy()
    pred_a[:, :2][pred_a[:, 2] > 0] += 2
    # detections in shuffled order plus a stray one
    matches = pa.match_people([far, pred_b, pred_a], [a, b])
    assert matches == [(0, 2), (1, 1)]
    # A lone far detection is not matched to anyone.
    assert pa.match_people([far], [a, b]) == [(0, None), (1, None)]
    assert pa.match_people([], [a]) == [(0, None)]
    # Greedy would give pred 0 to gt 0; the optimum swaps (total cost lower).
    g0 = _body({0: (0, 0), 1: (0, 100)})
    g1 = _body({0: (20, 0), 1: (20, 100)})
    p0 = _body({0: (10, 0), 1: (10, 100)})  # 10 from g0, 10 from g1
    p1 = _body({0: (-5, 0), 1: (-5, 100)})  # 5 from g0, 25 from g1
    assert pa.match_people([p0, p1], [g0, g1]) == [(0, 1), (1, 0)]


def test_pose_accuracy_end_to_end_unmatched_person_counts_as_missed():
    a = _body({0: (10, 10), 1: (10, 50), 8: (10, 110)})  # bbox size 100
    b = _body({0: (300, 10), 1: (300, 50), 8: (300, 110)})
    pred_a = a.copy()
    pred_a[0, 0] += 7  # 7 px: wrong at 0.05 (5 px), right at 0.1 (10 px)
    r = pa.pose_accuracy([pred_a], [a, b])
    assert r["matches"] == [(0, 0), (1, None)]
    assert r["pck"][0.05]["overall"] == pytest.approx(2 / 6)
    assert r["pck"][0.1]["overall"] == pytest.approx(3 / 6)
    assert r["oks"][1] == 0.0 and 0.5 < r["oks"][0] < 1.0
