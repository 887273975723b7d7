"""Acceptance of the part-warp repose on the shared real pairs (scripts/eval_repose.py).

For every pair, the pose re-extracted from the reposed image must be closer to the target pose
than the source photo's pose is, with most joints still found (a destroyed person loses them).
Measured when written (MediaPipe, 1280x720, peeling only): mean error / torso scale went from
0.90, 0.99, 1.71 (same_person) and 0.37, 0.35 (pose_reference) to 0.22, 0.07, 0.29, 0.08, 0.11.
With the ported multi-person extractor (issue 9): 0.89, 1.01, 1.64, 0.34, 0.36 -> 0.29, 0.06, 0.25,
0.11, 0.30. The last pair (a seated man given a standing man's pose) depends on how the detector
reads the target's knees (visibility ~0.4) and the warped, ghosted legs: every pair must still
get closer, and all five together by more than half.
"""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def results(pose_data):
    import eval_repose  # scripts/ is on sys.path (tests/conftest.py)

    return eval_repose.evaluate(pose_data)


def test_every_pair_moves_towards_the_target_pose(results):
    assert len(results) == 5
    for r in results:
        print(
            f"pair {r['pair']} {r['kind']}: before {r['before_px']:.1f}px ({r['before_norm']:.3f} st), "
            f"after {r['after_px']:.1f}px ({r['after_norm']:.3f} st), found {r['found_fraction']:.2f}"
        )
        assert r["joints"] >= 8, r
        assert r["found_fraction"] >= 0.75, r
        assert r["after_px"] < r["before_px"], r
    assert np.mean([r["after_px"] / r["before_px"] for r in results]) < 0.5, results


def test_same_person_pairs_land_close_to_the_ground_truth(results):
    same = [r for r in results if r["kind"] == "same_person"]
    assert len(same) == 3
    before = np.mean([r["before_norm"] for r in same])
    after = np.mean([r["after_norm"] for r in same])
    # the man moved about one torso length between the photos; after the repose the
    # re-extracted joints are within a fraction of it
    assert before > 0.6 and after < 0.4 and after < 0.4 * before, (before, after)


def test_repose_is_fast_enough(results):
    # 1280x720 (one 854x480): part split, ten warps and the inpainting, without detection
    assert max(r["repose_s"] for r in results) < 5.0
