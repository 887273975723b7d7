"""The Pose Editor's stored edits: round trip through the workflow's JSON, offsets when the input
changes upstream, people found again by position, hands and 70-point faces kept where untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sample_poses import STANDING, body_from

from poselab.models.pose import editor_state as es
from poselab.models.pose.keypoints import (
    J,
    Person,
    PoseFrame,
    parse_pose_keypoint,
    to_pose_keypoint,
)

RW = J["right_wrist"]


def person(dx: float = 0.0, seed: int = 0) -> Person:
    body = body_from(STANDING, dx)
    body[:, 2] = np.where(body[:, 2] > 0, 0.5 + 0.02 * np.arange(18), 0)  # real detector scores
    rng = np.random.default_rng(seed)
    right = np.c_[body[RW, :2] + rng.normal(0, 6, (21, 2)), rng.uniform(0.2, 1, 21)]
    left = np.c_[body[J["left_wrist"], :2] + rng.normal(0, 6, (21, 2)), rng.uniform(0.2, 1, 21)]
    face = np.c_[body[J["nose"], :2] + rng.normal(0, 5, (70, 2)), rng.uniform(0.2, 1, 70)]
    face[7] = 0  # a missing face point stays missing
    return Person(body=body, left_hand=left, right_hand=right, face=face)


def frame() -> PoseFrame:
    return PoseFrame(512, 384, [person(0, 0), person(200, 1)])


def wire(f: PoseFrame) -> PoseFrame:
    """Through POSE_KEYPOINT JSON, as poses travel between nodes."""
    return parse_pose_keypoint(json.loads(json.dumps(to_pose_keypoint([f]))))[0]


def move_wrist(p: Person, dx: float, dy: float) -> Person:
    """What the editor does when the right wrist is dragged: the right hand follows."""
    out = p.copy()
    out.body[RW, :2] += (dx, dy)
    out.right_hand[:, :2] += (dx, dy)
    return out


def state_text(base: PoseFrame, edited, added=()) -> str:
    return es.dump_edit_state(es.EditState({0: es.diff_frame(base, edited, added)}))


def apply_text(frames, text):
    return es.apply_edit_state(frames, es.parse_edit_state(text))


def test_an_edit_round_trips_through_the_workflow_json_and_untouched_points_are_unchanged():
    base = wire(frame())
    edited = [move_wrist(base.people[0], 30.0, -42.5), base.people[1]]
    text = state_text(base, edited)
    json.loads(text)  # a plain JSON string, as the widget stores it
    (out,), (report,) = apply_text([base], text)
    assert not report.input_changed and report.edited_points == 1 + 21
    a = out.people[0]
    np.testing.assert_allclose(
        a.body[RW, :2], base.people[0].body[RW, :2] + (30.0, -42.5), atol=1e-3
    )
    np.testing.assert_allclose(
        a.right_hand[:, :2], base.people[0].right_hand[:, :2] + (30.0, -42.5), atol=1e-3
    )
    # untouched: bit-identical, scores included (left hand, 70-point face, other joints, person 1)
    np.testing.assert_array_equal(a.face, base.people[0].face)
    np.testing.assert_array_equal(a.left_hand, base.people[0].left_hand)
    others = [i for i in range(18) if i != RW]
    np.testing.assert_array_equal(a.body[others], base.people[0].body[others])
    for part in ("body", "left_hand", "right_hand", "face"):
        np.testing.assert_array_equal(getattr(out.people[1], part), getattr(base.people[1], part))
    # and through the output wire: 70 face points, both hands, the missing face point kept missing
    back = wire(out).people[0]
    assert back.face.shape == (70, 3) and back.face[7, 2] == 0
    np.testing.assert_allclose(back.face, base.people[0].face, atol=1e-3)


def test_no_edits_pass_the_input_through():
    base = frame()
    for text in ("", "   ", None):
        out, reports = apply_text([base], text)
        assert reports == []
        np.testing.assert_array_equal(out[0].people[1].face, base.people[1].face)


def test_edits_stay_as_offsets_when_the_input_moves_upstream():
    base = wire(frame())
    text = state_text(base, [move_wrist(base.people[0], 30.0, 0.0), base.people[1]])
    # The detector now sees the people 10 px lower and lists them in the other order.
    moved = [base.people[1].copy(), base.people[0].copy()]
    for p in moved:
        for part in ("body", "left_hand", "right_hand", "face"):
            arr = getattr(p, part)
            arr[arr[:, 2] > 0, 1] += 10.0
    (out,), (report,) = apply_text([PoseFrame(512, 384, moved)], text)
    assert report.input_changed and report.unmatched == 0
    edited = out.people[1]  # the same person, now second
    np.testing.assert_allclose(
        edited.body[RW, :2], base.people[0].body[RW, :2] + (30.0, 10.0), atol=1e-3
    )
    # the untouched joints follow the new input
    np.testing.assert_array_equal(edited.body[J["neck"]], moved[1].body[J["neck"]])
    np.testing.assert_array_equal(out.people[0].body, moved[0].body)


def test_offsets_scale_with_the_canvas():
    base = wire(frame())
    text = state_text(
        base, [move_wrist(base.people[0], 20.0, 8.0), base.people[1]], added=[person(100, 3)]
    )
    big = PoseFrame(1024, 768, [es._scaled_person(p, 2.0, 2.0) for p in base.people])
    (out,), (report,) = apply_text([big], text)
    assert report.input_changed  # another canvas
    np.testing.assert_allclose(
        out.people[0].body[RW, :2], big.people[0].body[RW, :2] + (40.0, 16.0), atol=1e-2
    )
    np.testing.assert_allclose(
        out.people[2].body[J["neck"], :2],
        np.asarray(person(100, 3).body[J["neck"], :2]) * 2,
        atol=1e-2,
    )


def test_delete_add_remove_and_place_points():
    base = wire(frame())
    edited0 = base.people[0].copy()
    edited0.body[J["left_ear"]] = 0  # remove a joint
    edited0.face = None  # remove the face
    base.people[1].body[J["right_ear"]] = 0  # the input lacks a joint ...
    edited1 = base.people[1].copy()
    edited1.body[J["right_ear"]] = (300.0, 40.0, 1.0)  # ... that the user places
    newcomer = person(60, 5)
    text = state_text(base, [edited0, edited1], added=[newcomer])
    (out,), (report,) = apply_text([base], text)
    assert len(out.people) == 3 and report.added == 1 and report.deleted == 0
    assert out.people[0].body[J["left_ear"], 2] == 0
    assert out.people[0].face is not None and not (out.people[0].face[:, 2] > 0).any()
    np.testing.assert_allclose(out.people[1].body[J["right_ear"]], (300.0, 40.0, 1.0))
    np.testing.assert_allclose(out.people[2].face[:, :2], newcomer.face[:, :2], atol=1e-3)

    text = state_text(base, [None, base.people[1]])
    (out,), (report,) = apply_text([base], text)
    assert report.deleted == 1 and len(out.people) == 1
    np.testing.assert_array_equal(out.people[0].body, base.people[1].body)


def test_a_person_gone_from_the_input_drops_only_their_edits():
    base = wire(frame())
    text = state_text(
        base, [move_wrist(base.people[0], 30.0, 0.0), move_wrist(base.people[1], 0.0, 5.0)]
    )
    only_second = PoseFrame(512, 384, [base.people[1].copy()])
    (out,), (report,) = apply_text([only_second], text)
    assert report.unmatched == 1 and len(out.people) == 1
    np.testing.assert_allclose(
        out.people[0].body[RW, :2], base.people[1].body[RW, :2] + (0.0, 5.0), atol=1e-3
    )


def test_batches_edit_only_their_own_frame():
    a, b = wire(frame()), wire(frame())
    state = es.EditState(
        {
            1: es.diff_frame(b, [move_wrist(b.people[0], 12.0, 0.0), b.people[1]]),
            5: es.diff_frame(b, [None, None]),
        }
    )
    out, reports = es.apply_edit_state([a, b], es.parse_edit_state(es.dump_edit_state(state)))
    np.testing.assert_array_equal(out[0].people[0].body, a.people[0].body)
    np.testing.assert_allclose(
        out[1].people[0].body[RW, 0], b.people[0].body[RW, 0] + 12.0, atol=1e-3
    )
    assert [r.frame for r in reports] == [1, 5] and reports[1].unmatched == 2


def test_match_people_is_identity_for_identical_poses_and_follows_a_reorder():
    f = frame()
    assert es.match_people(f.people, f.people) == {0: 0, 1: 1}
    assert es.match_people(f.people, f.people[::-1]) == {0: 1, 1: 0}
    twins = [f.people[0], f.people[0].copy()]
    assert es.match_people(twins, twins) == {0: 0, 1: 1}
    assert es.match_people(f.people, []) == {}


@pytest.mark.parametrize(
    "text, words",
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other", "version": 1}', "'format' must be"),
        ('{"format": "poselab-pose-edits", "version": 9, "frames": {}}', "update PoseLab"),
        ('{"format": "poselab-pose-edits", "version": 1, "frames": {"x": {}}}', "not an index"),
        (
            '{"format": "poselab-pose-edits", "version": 1, "frames": {"0": {"people": []}}}',
            "'input'",
        ),
    ],
)
def test_bad_documents_say_what_is_wrong_and_how_to_recover(text, words):
    with pytest.raises(es.EditStateError) as err:
        es.parse_edit_state(text)
    assert words in str(err.value) and "Reset" in str(err.value)


def test_bad_point_edits_are_refused():
    base = wire(frame())
    doc = json.loads(state_text(base, [move_wrist(base.people[0], 1.0, 0.0), base.people[1]]))
    entry = doc["frames"]["0"]["people"][0]
    for points, words in (
        ({"tail": {}}, "unknown part"),
        ({"body": {"18": [1, 2]}}, "out of range"),
        ({"body": {"4": [1]}}, "[x, y]"),
        ({"body": {"4": ["a", 2]}}, "two numbers"),
    ):
        entry["points"] = points
        with pytest.raises(es.EditStateError, match=words.replace("[", r"\[").replace("]", r"\]")):
            es.parse_edit_state(json.dumps(doc))
    entry.pop("points")
    entry["input_person"] = 7
    with pytest.raises(es.EditStateError, match="out of range"):
        es.parse_edit_state(json.dumps(doc))


def test_documents_beyond_the_bounds_are_refused():
    base = wire(frame())
    doc = json.loads(state_text(base, [move_wrist(base.people[0], 1.0, 0.0), base.people[1]]))
    doc["frames"]["0"]["people"][0]["points"] = {"body": {"4": [1e30, 5.0]}}
    with pytest.raises(es.EditStateError, match="canvas sizes off"):
        es.parse_edit_state(json.dumps(doc))
    far = person(0, 9)
    far.body[3, :2] = (-1e7, 10.0)
    with pytest.raises(es.EditStateError, match="canvas sizes (off|outside)"):
        es.parse_edit_state(state_text(base, list(base.people), added=[far]))
    crowd = json.loads(state_text(base, list(base.people), added=[person(0, 1)]))
    crowd["frames"]["0"]["people"] *= es.MAX_ADDED_PEOPLE + 1
    with pytest.raises(es.EditStateError, match="added people"):
        es.parse_edit_state(json.dumps(crowd))
    with pytest.raises(es.EditStateError, match="not readable JSON"):
        es.parse_edit_state("[" * 100_000 + "]" * 100_000)
    with pytest.raises(es.EditStateError):
        es.parse_edit_state(b"\xff\xfe\x00{")
