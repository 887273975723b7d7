"""Accuracy floor of the default pose extraction on the shared, human-annotated photos.

PCK@0.1 of the person's size over the joints OpenPose-18 shares with each dataset (see
scripts/eval_pose_accuracy.py for the protocol). The floor: >= 0.75 over all 18 annotated
people and >= 0.85 on the largest annotated person of each of the 10 photos. One MediaPipe
call on the whole image, the obvious alternative, is scored in the same run for comparison.
"""

from __future__ import annotations

import eval_pose_accuracy as evaluation
import pytest

FLOOR_ALL = 0.75
FLOOR_LARGEST = 0.85


@pytest.fixture(scope="module")
def results(pose_data, pose_annotations):
    out = {
        backend: evaluation.evaluate(evaluation.make_detector(backend, 0.1), pose_annotations, pose_data)
        for backend in ("mediapipe", "single")
    }
    print("\n" + evaluation.format_table(out))
    return out


def test_multi_person_mediapipe_clears_the_floor(results):
    r = results["mediapipe"]
    assert r["all"]["people"] == 18 and r["largest"]["people"] == 10
    assert r["all"]["pck"] >= FLOOR_ALL, evaluation.format_table(results)
    assert r["largest"]["pck"] >= FLOOR_LARGEST, evaluation.format_table(results)
    # all but one annotated person is found (the exception: a boy seen from above, found by a
    # single view only, which the phantom filter drops), and the single call finds far fewer
    assert sum(im["matched"] for im in r["images"]) >= 17, r["images"]
    assert sum(im["matched"] for im in results["single"]["images"]) <= 10


def test_it_beats_a_single_mediapipe_call(results):
    multi, single = results["mediapipe"], results["single"]
    assert multi["all"]["pck"] >= single["all"]["pck"] + 0.3
    assert multi["largest"]["pck"] >= single["largest"]["pck"] + 0.1
    assert multi["all"]["oks"] > single["all"]["oks"]
