"""Accuracy floor of the default pose extraction on all 18 shared, human-annotated photos (31 people).

PCK@0.1 of each annotated person's size over the joints OpenPose-18 shares with each dataset
(see scripts/eval_pose_accuracy.py for the protocol), with issue 9's matching (each annotated
person, largest first, takes the unused detection with the most joints inside the threshold) and
with Hungarian matching. The floor: >= 0.85 on the largest annotated person of each photo and
>= 0.75 over all annotated people. MediaPipe's own pipeline (one person per call), the obvious
alternative, is scored in the same run for comparison.
"""

from __future__ import annotations

import eval_pose_accuracy as evaluation
import pytest

FLOOR_ALL = 0.75
FLOOR_LARGEST = 0.85


@pytest.fixture(scope="module")
def results(pose_data, photo_data):
    entries = evaluation.load_sets([pose_data, photo_data])
    out = {}
    for backend in ("multi", "single"):
        frames, seconds = evaluation.detect_all(evaluation.make_detector(backend, 0.1), entries)
        for match in evaluation.MATCHING:
            out[f"{backend}/{match}"] = evaluation.score(
                frames, entries, match=match, seconds=seconds
            )
    print("\n" + evaluation.format_table(out) + "\n" + evaluation.format_images(out))
    return out


@pytest.mark.parametrize("match", evaluation.MATCHING)
def test_multi_person_clears_the_floor(results, match):
    r = results[f"multi/{match}"]
    assert r["all"]["people"] == 31 and r["largest"]["people"] == 18
    assert r["all"]["pck"] >= FLOOR_ALL, evaluation.format_table(results)
    assert r["largest"]["pck"] >= FLOOR_LARGEST, evaluation.format_table(results)
    # all but three annotated people are found (the exceptions: two blurred umbrella walkers seen
    # from behind, a girl mostly hidden by a fence), and MediaPipe's single-person pipeline finds far fewer
    assert sum(im["matched"] for im in r["images"]) >= 28, r["images"]
    assert sum(im["matched"] for im in results[f"single/{match}"]["images"]) <= 18


def test_it_beats_mediapipes_own_pipeline(results):
    multi, single = results["multi/greedy"], results["single/greedy"]
    assert multi["all"]["pck"] >= single["all"]["pck"] + 0.3
    assert multi["largest"]["pck"] >= single["largest"]["pck"] + 0.1
    assert multi["all"]["oks"] > single["all"]["oks"]


def test_greedy_matching_takes_the_detection_with_most_joints_inside():
    import numpy as np

    from poselab.models.pose.datasets import AnnotatedPerson

    gt = np.zeros((18, 3), np.float32)
    gt[:6] = [[10, 10, 1], [20, 10, 1], [30, 10, 1], [10, 50, 1], [20, 50, 1], [30, 50, 1]]
    small = gt.copy()
    small[:, :2] += 200
    close = gt.copy()
    close[:3, :2] += 2  # 6 joints within 0.1 x 100 px
    half = gt.copy()
    half[:3, :2] += 50  # only 3 within
    people = [
        AnnotatedPerson(body=small, size=40.0, area=1.0),
        AnnotatedPerson(body=gt, size=100.0, area=1.0),
    ]
    # the larger person is matched first and takes the closer detection even though it is listed later
    assert evaluation.greedy_match([half, close], people, 0.1) == {1: 1}
    assert evaluation.greedy_match([half, close, small], people, 0.1) == {1: 1, 0: 2}
