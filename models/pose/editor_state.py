"""The Pose Editor's stored edits, and applying them to an incoming pose.

The editor widget (js/pose_editor.js) writes its edits into the node's ``edits`` input as one
JSON document; the node applies them here, so a shared workflow or a ``POST /prompt`` with no
browser gives the same pose the editor showed. One document holds every edited frame::

    {"format": "poselab-pose-edits", "version": 1,
     "frames": {"0": {
        "input": {"canvas_width": W, "canvas_height": H, "people": [...]},   # POSE_KEYPOINT frame
        "people": [
            {"input_person": 0, "points": {"body": {"4": [x, y]}, "right_hand": {"0": [x, y]}}},
            {"input_person": 1, "deleted": true},
            {"added": {"pose_keypoints_2d": [...], "face_keypoints_2d": [...]}}]}}}

* ``input`` is the pose the edits were made on (what the editor showed underneath).
* A point edit holds where the user put that point, in the input's pixels; ``null`` removes it.
  Only touched points are stored: every other point of the person follows the incoming pose.
* ``deleted`` drops that input person; ``added`` people (new, duplicated, from the library) are
  stored whole.

When the incoming pose differs from the stored ``input`` (the photo or the detector changed
upstream) the edits stay, as offsets: a touched point lands at ``incoming + (edited - input)``;
stored people are found again in the incoming pose by position (:func:`match_people`), so a
detector that lists people in another order does not move the edit to someone else; a canvas of
another size scales the offsets. A touched point that either pose lacks is placed where the
user put it. :func:`apply_frame_edit` reports when this happened so the node can say so; the
editor then offers to re-base (adopt the new input, keeping what is shown).

Plain NumPy; no ComfyUI imports. The widget implements the same rules in JavaScript for display.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .keypoints import (
    NUM_BODY,
    NUM_FACE,
    NUM_HAND,
    Person,
    PoseFormatError,
    PoseFrame,
    parse_pose_keypoint,
    to_pose_keypoint,
)

FORMAT = "poselab-pose-edits"
VERSION = 1
PART_SIZES = {"body": NUM_BODY, "left_hand": NUM_HAND, "right_hand": NUM_HAND, "face": NUM_FACE}
# Points closer than this (pixels) count as the same: the stored input is rounded to 1/1000 px.
SAME_POINT_PX = 0.01
# A stored person is found again in a new input when their points moved on average by less than
# this fraction of the person's size (their points' bounding-box diagonal).
MATCH_FRACTION = 0.5
# Bounds of a document (a widget value, or anything sent to POST /prompt): people added to one
# frame, and how far off the canvas a point may be placed, in canvas sizes.
MAX_ADDED_PEOPLE = 1000
MAX_OFF_CANVAS = 16


class EditStateError(PoseFormatError):
    """The ``edits`` document cannot be read; the message says what and how to recover."""


Point = tuple[float, float] | None


@dataclass
class PersonEdit:
    """Edits of one person: an input person's touched points, its deletion, or an added person."""

    input_person: int | None = None
    points: dict[str, dict[int, Point]] = field(default_factory=dict)
    deleted: bool = False
    added: Person | None = None

    def point_count(self) -> int:
        return sum(len(p) for p in self.points.values())


@dataclass
class FrameEdit:
    input: PoseFrame
    people: list[PersonEdit] = field(default_factory=list)


@dataclass
class EditState:
    frames: dict[int, FrameEdit] = field(default_factory=dict)


@dataclass
class FrameReport:
    """What applying one frame's edits did (sent to the editor, logged by the node)."""

    frame: int
    input_changed: bool = False
    edited_points: int = 0
    deleted: int = 0
    added: int = 0
    unmatched: int = 0  # stored people with edits that the incoming pose no longer has

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# --------------------------------------------------------------------------------- reading


def _fail(where: str, what: str) -> EditStateError:
    return EditStateError(
        f"Pose Editor edits, {where}: {what}. Reset the frame in the editor, or clear the node's "
        "'edits' value to start from the input pose."
    )


def _index(key: Any, limit: int, where: str) -> int:
    if isinstance(key, int) and not isinstance(key, bool):
        i = key
    elif isinstance(key, str) and key.strip().isdigit():
        i = int(key)
    else:
        raise _fail(where, f"{key!r} is not an index")
    if not 0 <= i < limit:
        raise _fail(where, f"index {i} is out of range 0..{limit - 1}")
    return i


def _check_on_canvas(x: float, y: float, width: int, height: int, where: str) -> None:
    if not (
        -MAX_OFF_CANVAS * width <= x <= (MAX_OFF_CANVAS + 1) * width
        and -MAX_OFF_CANVAS * height <= y <= (MAX_OFF_CANVAS + 1) * height
    ):
        raise _fail(
            where,
            f"the point ({x:g}, {y:g}) is more than {MAX_OFF_CANVAS} canvas sizes off the "
            f"{width}x{height} canvas",
        )


def _point(value: Any, where: str, width: int, height: int) -> Point:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _fail(where, f"a point must be [x, y] or null, got {value!r}")
    try:
        x, y = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        raise _fail(where, f"a point must hold two numbers, got {value!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise _fail(where, f"a point must be finite, got {value!r}")
    _check_on_canvas(x, y, width, height, where)
    return x, y


def _read_frame_edit(raw: Any, where: str) -> FrameEdit:
    if not isinstance(raw, dict):
        raise _fail(where, f"expected an object, got {type(raw).__name__}")
    if "input" not in raw:
        raise _fail(where, "the pose the edits were made on ('input') is missing")
    try:
        (base,) = parse_pose_keypoint([raw["input"]])
    except PoseFormatError as exc:
        raise _fail(f"{where}.input", str(exc)) from None
    people_raw = raw.get("people", [])
    if not isinstance(people_raw, list):
        raise _fail(f"{where}.people", "expected a list")
    if sum(isinstance(e, dict) and "added" in e for e in people_raw) > MAX_ADDED_PEOPLE:
        raise _fail(f"{where}.people", f"more than {MAX_ADDED_PEOPLE} added people")
    people = []
    for k, entry in enumerate(people_raw):
        p_where = f"{where}.people[{k}]"
        if not isinstance(entry, dict):
            raise _fail(p_where, "expected an object")
        if "added" in entry:
            try:
                (added_frame,) = parse_pose_keypoint(
                    [
                        {
                            "people": [entry["added"]],
                            "canvas_width": base.width,
                            "canvas_height": base.height,
                        }
                    ]
                )
            except PoseFormatError as exc:
                raise _fail(f"{p_where}.added", str(exc)) from None
            added = added_frame.people[0]
            for part in PART_SIZES:
                arr = getattr(added, part)
                for x, y, c in arr if arr is not None else ():
                    if c > 0:
                        _check_on_canvas(
                            float(x), float(y), base.width, base.height, f"{p_where}.added.{part}"
                        )
            people.append(PersonEdit(added=added))
            continue
        if "input_person" not in entry:
            raise _fail(p_where, "needs 'input_person' (an index into 'input') or 'added'")
        idx = _index(entry["input_person"], len(base.people), f"{p_where}.input_person")
        edit = PersonEdit(input_person=idx, deleted=bool(entry.get("deleted", False)))
        points = entry.get("points", {}) or {}
        if not isinstance(points, dict):
            raise _fail(f"{p_where}.points", "expected an object of parts")
        for part, moved in points.items():
            if part not in PART_SIZES:
                raise _fail(
                    f"{p_where}.points", f"unknown part {part!r} (use {', '.join(PART_SIZES)})"
                )
            if not isinstance(moved, dict):
                raise _fail(
                    f"{p_where}.points.{part}", "expected an object of point index -> [x, y]"
                )
            edit.points[part] = {
                _index(i, PART_SIZES[part], f"{p_where}.points.{part}"): _point(
                    v, f"{p_where}.points.{part}.{i}", base.width, base.height
                )
                for i, v in moved.items()
            }
        people.append(edit)
    return FrameEdit(input=base, people=people)


def parse_edit_state(value: Any) -> EditState:
    """Read the ``edits`` document (a JSON string or its parsed value); empty means no edits."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return EditState()
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise _fail(
                "document", f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
            ) from None
        except (RecursionError, ValueError) as exc:  # absurd nesting; bytes that are not UTF-8
            raise _fail("document", f"not readable JSON ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise _fail("document", f"expected a JSON object, got {type(value).__name__}")
    if value.get("format") != FORMAT:
        raise _fail("document", f"'format' must be {FORMAT!r}, got {value.get('format')!r}")
    version = value.get("version")
    if not isinstance(version, int) or version > VERSION or version < 1:
        raise _fail(
            "document",
            f"version {version!r} is not one this PoseLab reads (1..{VERSION}); update PoseLab",
        )
    frames_raw = value.get("frames", {})
    if not isinstance(frames_raw, dict):
        raise _fail("frames", "expected an object of frame index -> edits")
    frames = {}
    for key, raw in frames_raw.items():
        index = _index(key, 1 << 31, "frames")
        frames[index] = _read_frame_edit(raw, f"frame {key}")
    return EditState(frames=frames)


# --------------------------------------------------------------------------------- writing


def _round_point(p: Point) -> list[float] | None:
    return None if p is None else [round(float(p[0]), 3), round(float(p[1]), 3)]


def _person_wire(person: Person) -> dict:
    wire = to_pose_keypoint([PoseFrame(1, 1, [person])])[0]["people"][0]
    wire.pop("poselab_scores", None)
    return wire


def _frame_wire(frame: PoseFrame) -> dict:
    return {
        "canvas_width": int(frame.width),
        "canvas_height": int(frame.height),
        "people": [_person_wire(p) for p in frame.people],
    }


def dump_edit_state(state: EditState) -> str:
    """The ``edits`` document of a state (compact JSON; frames without edits are left out)."""
    frames = {}
    for index in sorted(state.frames):
        fe = state.frames[index]
        if not fe.people:
            continue
        people = []
        for pe in fe.people:
            if pe.added is not None:
                people.append({"added": _person_wire(pe.added)})
            elif pe.deleted:
                people.append({"input_person": pe.input_person, "deleted": True})
            elif pe.points:
                people.append(
                    {
                        "input_person": pe.input_person,
                        "points": {
                            part: {str(i): _round_point(p) for i, p in sorted(moved.items())}
                            for part, moved in pe.points.items()
                            if moved
                        },
                    }
                )
        frames[str(index)] = {"input": _frame_wire(fe.input), "people": people}
    return json.dumps(
        {"format": FORMAT, "version": VERSION, "frames": frames}, separators=(",", ":")
    )


def _part(person: Person | None, part: str) -> np.ndarray:
    """The part's (n, 3) points; an absent part is all-missing."""
    arr = None if person is None else getattr(person, part)
    return np.zeros((PART_SIZES[part], 3), np.float32) if arr is None else arr


def diff_person(before: Person, after: Person) -> dict[str, dict[int, Point]]:
    """The point edits that turn ``before`` into ``after`` (moved, added or removed points)."""
    points: dict[str, dict[int, Point]] = {}
    for part in PART_SIZES:
        a, b = _part(before, part), _part(after, part)
        moved = {}
        for i in range(len(a)):
            pa, pb = a[i, 2] > 0, b[i, 2] > 0
            if pa and not pb:
                moved[i] = None
            elif pb and (
                not pa
                or abs(float(a[i, 0]) - float(b[i, 0])) > SAME_POINT_PX / 10
                or abs(float(a[i, 1]) - float(b[i, 1])) > SAME_POINT_PX / 10
            ):
                moved[i] = (float(b[i, 0]), float(b[i, 1]))
        if moved:
            points[part] = moved
    return points


def diff_frame(base: PoseFrame, edited: list[Person | None], added: list[Person] = ()) -> FrameEdit:
    """The frame edit that turns ``base`` into ``edited`` (one entry per base person, ``None`` =
    deleted) plus ``added`` people: what the editor writes after each change."""
    if len(edited) != len(base.people):
        raise ValueError(
            f"edited has {len(edited)} entries for {len(base.people)} input people (use None for a deleted one)"
        )
    people = []
    for i, (before, after) in enumerate(zip(base.people, edited)):
        if after is None:
            people.append(PersonEdit(input_person=i, deleted=True))
            continue
        points = diff_person(before, after)
        if points:
            people.append(PersonEdit(input_person=i, points=points))
    people.extend(PersonEdit(added=p.copy()) for p in added)
    return FrameEdit(input=base.copy(), people=people)


# -------------------------------------------------------------------------------- applying


def _all_points(person: Person) -> np.ndarray:
    return np.concatenate([_part(person, part) for part in PART_SIZES])


def match_people(
    stored: list[Person], incoming: list[Person], sx: float = 1.0, sy: float = 1.0
) -> dict[int, int]:
    """Stored person index -> incoming person index, by position.

    The cost of a pair is the mean distance between the points both have (stored points scaled
    by ``sx``, ``sy``); pairs are taken greedily, cheapest first (ties: lower stored, then lower
    incoming index), and only while the cost is under :data:`MATCH_FRACTION` of the stored
    person's size. Identical poses match index to index."""
    stored_pts = []
    for p in stored:
        pts = _all_points(p).astype(np.float64)
        pts[:, 0] *= sx
        pts[:, 1] *= sy
        stored_pts.append(pts)
    incoming_pts = [_all_points(p).astype(np.float64) for p in incoming]
    pairs = []
    for i, a in enumerate(stored_pts):
        present = a[a[:, 2] > 0, :2]
        if len(present) == 0:
            continue
        size = math.hypot(*(present.max(0) - present.min(0)))
        limit = MATCH_FRACTION * max(size, 1.0)
        for j, b in enumerate(incoming_pts):
            both = (a[:, 2] > 0) & (b[:, 2] > 0)
            if not both.any():
                continue
            d = np.hypot(a[both, 0] - b[both, 0], a[both, 1] - b[both, 1])
            cost = float(d.sum()) / int(both.sum())
            if cost < limit:
                pairs.append((cost, i, j))
    pairs.sort()
    match: dict[int, int] = {}
    taken = set()
    for _, i, j in pairs:
        if i not in match and j not in taken:
            match[i] = j
            taken.add(j)
    return match


def _same_person(a: Person, b: Person, sx: float, sy: float) -> bool:
    pa, pb = _all_points(a), _all_points(b)
    if not np.array_equal(pa[:, 2] > 0, pb[:, 2] > 0):
        return False
    present = pa[:, 2] > 0
    dx = np.abs(pa[present, 0] * sx - pb[present, 0])
    dy = np.abs(pa[present, 1] * sy - pb[present, 1])
    return bool((dx <= SAME_POINT_PX).all() and (dy <= SAME_POINT_PX).all())


def input_changed(
    stored: PoseFrame, incoming: PoseFrame, match: dict[int, int] | None = None
) -> bool:
    """Whether the incoming pose differs from the one the edits were made on."""
    if (stored.width, stored.height) != (incoming.width, incoming.height):
        return True
    if len(stored.people) != len(incoming.people):
        return True
    if match is None:
        match = match_people(stored.people, incoming.people)
    if any(match.get(i) != i for i in range(len(stored.people))):
        return True
    return not all(_same_person(a, b, 1.0, 1.0) for a, b in zip(stored.people, incoming.people))


def apply_points(
    person: Person,
    stored: Person,
    points: dict[str, dict[int, Point]],
    sx: float = 1.0,
    sy: float = 1.0,
) -> Person:
    """``person`` with the point edits made on ``stored`` applied as offsets (see the module doc)."""
    out = person.copy()
    for part, moved in points.items():
        had = getattr(out, part) is not None
        arr = _part(out, part).copy()
        base = _part(stored, part)
        for i, p in moved.items():
            if p is None:
                arr[i] = 0.0
            elif base[i, 2] > 0 and arr[i, 2] > 0:
                arr[i, 0] = float(arr[i, 0]) + (p[0] - float(base[i, 0])) * sx
                arr[i, 1] = float(arr[i, 1]) + (p[1] - float(base[i, 1])) * sy
            else:
                arr[i] = (p[0] * sx, p[1] * sy, 1.0)
        if had or (arr[:, 2] > 0).any():
            setattr(out, part, arr)
    return out


def _scaled_person(person: Person, sx: float, sy: float) -> Person:
    out = person.copy()
    for part in PART_SIZES:
        arr = getattr(out, part)
        if arr is not None:
            arr[:, 0] *= sx
            arr[:, 1] *= sy
    return out


def apply_frame_edit(
    frame: PoseFrame, edit: FrameEdit, index: int = 0
) -> tuple[PoseFrame, FrameReport]:
    """The incoming ``frame`` with one frame's edits applied, and what happened."""
    stored = edit.input
    sx, sy = frame.width / stored.width, frame.height / stored.height
    match = match_people(stored.people, frame.people, sx, sy)
    report = FrameReport(frame=index, input_changed=input_changed(stored, frame, match))
    by_incoming: dict[int, PersonEdit] = {}
    added = []
    for pe in edit.people:
        if pe.added is not None:
            added.append(_scaled_person(pe.added, sx, sy))
            continue
        j = match.get(pe.input_person)
        if j is None:
            report.unmatched += 1
            continue
        by_incoming[j] = pe
    people = []
    for j, person in enumerate(frame.people):
        pe = by_incoming.get(j)
        if pe is None:
            people.append(person.copy())
        elif pe.deleted:
            report.deleted += 1
        else:
            people.append(apply_points(person, stored.people[pe.input_person], pe.points, sx, sy))
            report.edited_points += pe.point_count()
    report.added = len(added)
    return PoseFrame(frame.width, frame.height, people + added), report


def apply_edit_state(
    frames: list[PoseFrame], state: EditState
) -> tuple[list[PoseFrame], list[FrameReport]]:
    """Every frame with its edits (frames without edits pass through unchanged), and one report
    per edited frame. Edits of a frame index the input does not have are reported as unmatched."""
    out = [f.copy() for f in frames]
    reports = []
    for index in sorted(state.frames):
        edit = state.frames[index]
        if not edit.people:
            continue
        if index >= len(frames):
            reports.append(FrameReport(frame=index, input_changed=True, unmatched=len(edit.people)))
            continue
        out[index], report = apply_frame_edit(frames[index], edit, index)
        reports.append(report)
    return out, reports


# ------------------------------------------------------------------------- for the widget


def widget_tables() -> dict:
    """The skeleton tables and library poses the editor widget draws and edits with, from the
    same modules the nodes use (one source: the widget's mirror, limb tree and colours cannot
    drift from Edit Pose's and Render Pose's)."""
    from . import edit, library, render
    from .keypoints import OPENPOSE18_FLIP, OPENPOSE18_LIMBS, OPENPOSE18_NAMES

    return {
        "format": FORMAT,
        "version": VERSION,
        "joints": list(OPENPOSE18_NAMES),
        "limbs": [list(limb) for limb in OPENPOSE18_LIMBS],
        "colors": [list(c) for c in render.OPENPOSE_COLORS],
        "hand_edges": [list(e) for e in render.HAND_EDGES],
        "parent": {str(child): parent for child, parent in edit.PARENT.items()},
        "attached": {str(joint): part for joint, part in edit.ATTACHED.items()},
        "body_flip": list(OPENPOSE18_FLIP),
        "face_flip": list(edit.FACE70_FLIP),
        "library": {
            name: library.library_body(name).round(4).tolist() for name in library.pose_names()
        },
    }
