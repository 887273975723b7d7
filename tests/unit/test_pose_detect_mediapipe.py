"""Multi-person pose with the ported MediaPipe models on the shared photos: accuracy, hands and
face, masks, odd inputs, statelessness, the skeleton helpers and the ground-truth mapping.
Detections are computed once per module."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from poselab.models.common.files import read_rgb
from poselab.models.metrics import pose_accuracy as metrics
from poselab.models.pose import datasets, detect_mediapipe, person_finder
from poselab.models.pose.keypoints import J, Person, PoseFrame

SOLO = "004645041.jpg"  # MPII, one man in front of a truck
GROUP = "ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg"  # AI Challenger, three footballers


@pytest.fixture(scope="module")
def annotations(pose_annotations):
    return {e["image"]: e for e in pose_annotations}


@pytest.fixture(scope="module")
def detector():
    return detect_mediapipe.MediaPipePoseDetector()


@pytest.fixture(scope="module")
def group(pose_data, detector):
    rgb = read_rgb(pose_data / GROUP)
    frame, mask = detector.detect(rgb)
    return rgb, frame, mask


@pytest.fixture(scope="module")
def solo(pose_data, detector):
    rgb = read_rgb(pose_data / SOLO)
    return rgb, detector(rgb)


def pck_of(frame: PoseFrame, entry: dict) -> list[float]:
    gts = datasets.load_annotated_people(entry)
    matches = metrics.match_people([p.body for p in frame.people], [g.body for g in gts])
    out = []
    for gi, pj in matches:
        pred = frame.people[pj].body if pj is not None else np.zeros((18, 3))
        out.append(metrics.pck(pred, gts[gi].body, gts[gi].size, 0.1)["overall"])
    return out


def test_solo_photo_is_accurate(solo, annotations):
    rgb, frame = solo
    assert (frame.width, frame.height) == (rgb.shape[1], rgb.shape[0])
    assert len(frame.people) >= 1
    assert pck_of(frame, annotations[SOLO])[0] >= 0.9
    person = frame.people[0]
    # hands and face are off unless asked for: absent, not invented
    assert person.left_hand is None and person.right_hand is None and person.face is None
    present = person.body[person.body[:, 2] > 0]
    assert np.all(
        (present[:, 0] >= 0)
        & (present[:, 0] < rgb.shape[1])
        & (present[:, 1] >= 0)
        & (present[:, 1] < rgb.shape[0])
    )
    assert np.all((present[:, 2] > 0.1) & (present[:, 2] <= 1.0))
    # neck synthesised between the shoulders
    b = person.body
    if b[J["neck"], 2] > 0:
        np.testing.assert_allclose(
            b[J["neck"], :2],
            (b[J["left_shoulder"], :2] + b[J["right_shoulder"], :2]) / 2,
            atol=1e-3,
        )


def test_group_photo_finds_every_annotated_person(group, annotations):
    rgb, frame, mask = group
    scores = pck_of(frame, annotations[GROUP])
    assert len(scores) == 3 and min(scores) >= 0.75, scores
    single = detect_mediapipe.single_call(rgb)
    assert len(single.people) <= 1
    assert (
        sum(pck_of(single, annotations[GROUP])) < sum(scores) - 1.0
    )  # the single call misses two people
    # largest person first
    sizes = [person_finder.skeleton_size(p.body) for p in frame.people]
    assert sizes == sorted(sizes, reverse=True)


def test_group_mask_covers_the_people(group):
    rgb, frame, mask = group
    assert mask.shape == rgb.shape[:2] and mask.dtype == np.float32
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert 0.05 < mask.mean() < 0.6
    hips = []
    for p in frame.people:
        for j in (J["neck"], J["right_hip"], J["left_hip"]):
            if p.body[j, 2] > 0.5:
                hips.append(mask[int(p.body[j, 1]), int(p.body[j, 0])])
    assert len(hips) >= 3 and np.mean(hips) >= 0.8


def test_max_people_limits_and_keeps_the_largest(group, detector):
    rgb, frame, _ = group
    one = detector(rgb, max_people=1)
    assert len(one.people) == 1
    assert person_finder.same_person(one.people[0].body, frame.people[0].body)


def test_gray_rgba_float_and_big_images(solo, detector):
    rgb, frame = solo
    small = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)
    ref = detector(small)
    assert (
        len(ref.people) == 1
    )  # one man: no phantom on the truck behind him (seen by one view only)
    gray = detector(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), max_people=1)
    rgba = detector(
        np.dstack([small, np.full(small.shape[:2], 255, np.uint8)]).astype(np.float32) / 255.0,
        max_people=1,
    )
    for other in (gray, rgba):
        assert len(other.people) == 1 and (other.width, other.height) == (ref.width, ref.height)
        assert person_finder.same_person(other.people[0].body, ref.people[0].body)
    # beyond the working size the photo is searched downscaled; coordinates come back in its pixels
    big = cv2.resize(small, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    big_frame, big_mask = detector.detect(big, max_people=1)
    assert big_mask.shape == big.shape[:2]
    assert (big_frame.width, big_frame.height) == (big.shape[1], big.shape[0])
    scaled = ref.people[0].body.copy()
    scaled[:, :2] *= 3
    assert person_finder.same_person(big_frame.people[0].body, scaled, tol=0.05)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((16, 16, 3), np.uint8),  # too small to hold a person
        np.zeros((8, 40, 4), np.float32),  # tiny RGBA
        np.full((120, 160), 200, np.uint8),  # blank gray
    ],
    ids=["16x16", "tiny-rgba", "blank"],
)
def test_no_person_is_an_empty_frame(detector, image):
    frame, mask = detector.detect(image)
    assert frame.people == []
    assert (frame.width, frame.height) == (image.shape[1], image.shape[0])
    assert mask.shape == image.shape[:2] and mask.max() == 0


def test_models_are_loaded_once_per_device():
    from poselab.models.mediapipe_port import runtime

    assert runtime.get_model("pose_detection") is runtime.get_model("pose_detection", "cpu")


def test_hands_and_face_of_the_solo_photo(pose_data):
    rgb = read_rgb(pose_data / SOLO)
    frame = detect_mediapipe.MediaPipePoseDetector(hands=True, face=True)(rgb)
    person = frame.people[0]
    assert (
        person.left_hand is not None and person.right_hand is not None and person.face is not None
    )
    assert person.left_hand.shape == (21, 3) and person.face.shape == (70, 3)
    body = person.body
    size = person_finder.skeleton_size(body)
    for hand, wrist in ((person.left_hand, J["left_wrist"]), (person.right_hand, J["right_wrist"])):
        # the hand belongs to that side's wrist (not to the other one) and has a plausible size
        assert np.linalg.norm(hand[0, :2] - body[wrist, :2]) < 0.05 * size
        assert 0.03 * size < np.ptp(hand[:, 0]) + np.ptp(hand[:, 1]) < 0.5 * size
        assert np.all(hand[:, 2] >= 0.5)
    # face: around the nose, eyes on their sides of it, the jaw below the eyes
    face = person.face
    nose = body[J["nose"], :2]
    assert np.linalg.norm(face[30, :2] - nose) < 0.04 * size  # nose tip
    assert np.linalg.norm(face[68, :2] - body[J["right_eye"], :2]) < 0.03 * size  # right pupil
    assert np.linalg.norm(face[69, :2] - body[J["left_eye"], :2]) < 0.03 * size
    assert face[8, 1] > face[36:48, 1].max()  # chin below the eyes


def test_batched_pass_equals_one_image_at_a_time(pose_data, detector):
    a = read_rgb(pose_data / SOLO)
    b = cv2.resize(read_rgb(pose_data / GROUP), (400, 270), interpolation=cv2.INTER_AREA)
    both = detector.detect_batch([a, b, np.zeros((10, 10, 3), np.uint8)])
    for img, (frame, mask) in zip((a, b), both):
        alone, alone_mask = detector.detect(img)
        assert len(frame.people) == len(alone.people)
        for p, q in zip(frame.people, alone.people):
            np.testing.assert_allclose(p.body, q.body, atol=1e-3)
        assert np.array_equal(mask, alone_mask)
    assert both[2][0].people == []


def test_a_degenerate_crop_leaves_nothing_broken(pose_data):
    """Issue 10: one off-canvas / empty crop used to leave MediaPipe's graph in error until restart."""
    from poselab.models.segmentation import masks

    rgb = read_rgb(pose_data / SOLO)
    off_canvas = np.zeros((18, 3), np.float32)
    off_canvas[:, :2] = 1e5
    off_canvas[:, 2] = 1
    assert masks.pose_model_mask(rgb, off_canvas) is None
    sliver = off_canvas.copy()
    sliver[:, 0] = rgb.shape[1] - 1 + np.arange(18)  # a crop 1 pixel wide at the right edge
    sliver[:, 1] = 100
    assert masks.pose_model_mask(rgb, sliver) is None
    nan = off_canvas.copy()
    nan[:, :2] = np.nan
    masks.pose_model_mask(rgb, nan)  # no exception
    # and the next normal calls work
    assert masks.pose_model_mask(rgb).mean() > 0.02
    assert len(detect_mediapipe.MediaPipePoseDetector()(rgb).people) >= 1


# ------------------------------------------------------------------ person finder


def test_same_person():
    a = np.zeros((18, 3), np.float32)
    a[:, :2] = np.random.default_rng(0).uniform(100, 300, (18, 2))
    a[:, 2] = 1
    b = a.copy()
    b[:, :2] += 3  # a few pixels off: same person
    c = a.copy()
    c[:, 0] += 250  # a body-width away: someone else
    assert person_finder.same_person(a, b) and not person_finder.same_person(a, c)
    few = a.copy()
    few[2:, 2] = 0
    assert not person_finder.same_person(few, few)  # too few shared joints to tell


def test_skeleton_hull_mask():
    body = np.zeros((18, 3), np.float32)
    body[[J["neck"], J["right_hip"], J["left_hip"], J["right_ankle"]]] = [
        [50, 20, 1],
        [40, 60, 1],
        [60, 60, 1],
        [40, 95, 1],
    ]
    frame = PoseFrame(width=100, height=120, people=[Person(body=body)])
    mask = person_finder.skeleton_hull_mask(frame)
    assert mask.shape == (120, 100) and mask.dtype == np.float32
    assert mask[55, 50] == 1 and mask[5, 5] == 0 and mask[115, 95] == 0
    assert person_finder.skeleton_hull_mask(PoseFrame(width=10, height=10)).sum() == 0


# ------------------------------------------------------------------ ground truth mapping


def test_ground_truth_mapping(annotations):
    mpii = datasets.load_annotated_people(annotations[SOLO])[0]
    scored = {n for n, j in J.items() if mpii.body[j, 2] > 0}
    assert (
        "neck" not in scored and "nose" not in scored
    )  # thorax/upper_neck/head_top are not OpenPose joints
    assert {"left_wrist", "right_shoulder", "left_shoulder"} <= scored and len(scored) == 10
    raw = np.asarray(annotations[SOLO]["people"][0]["keypoints"], np.float32)
    names = annotations[SOLO]["joint_names"]
    np.testing.assert_allclose(mpii.body[J["left_wrist"], :2], raw[names.index("left_wrist"), :2])
    # MPII size: longest side of the annotated-joint extent (head_top included)
    ann = raw[raw[:, 2] > 0, :2]
    assert mpii.size == pytest.approx(float((ann.max(0) - ann.min(0)).max()))
    aic = datasets.load_annotated_people(annotations[GROUP])
    assert all(p.body[J["neck"], 2] > 0 for p in aic)  # AI Challenger's neck is shared
    bbox = annotations[GROUP]["people"][0]["bbox"]
    assert aic[0].size == max(bbox[2], bbox[3])
    with pytest.raises(ValueError, match="unknown annotation format"):
        datasets.load_annotated_people({**annotations[SOLO], "format": "coco133"})


def test_coco_and_motion_capture_annotations(photo_data):
    entries = {e["image"]: e for e in json.loads((photo_data / "keypoints.json").read_text())}
    coco = entries["photos/000000126995.jpg"]
    people = datasets.load_annotated_people(coco)
    raw = np.asarray(coco["people"][0]["keypoints"], np.float32)
    assert (
        people[0].body[J["nose"], 2] > 0 and people[0].body[J["neck"], 2] == 0
    )  # COCO has a nose, no neck
    np.testing.assert_allclose(
        people[0].body[J["right_elbow"], :2], raw[8, :2]
    )  # coco index 8 = right_elbow
    assert people[0].size == max(coco["people"][0]["bbox"][2:])
    mocap = entries["photos/mpi_inf_3dhp_S4_Seq2_Cam0_001033.jpg"]
    person = datasets.load_annotated_people(mocap)[0]
    assert person.body[J["neck"], 2] > 0 and person.body[J["nose"], 2] == 0
    head_top = mocap["people"][0]["extra_keypoints"]["head_top"]
    joints = np.asarray(mocap["people"][0]["keypoints"], np.float32)
    pts = np.concatenate([joints[joints[:, 2] > 0, :2], [head_top[:2]]])
    assert person.size == pytest.approx(
        float((pts.max(0) - pts.min(0)).max())
    )  # the head top widens the extent


def test_every_shared_annotation_loads(pose_annotations):
    people = [p for e in pose_annotations for p in datasets.load_annotated_people(e)]
    assert len(people) == sum(len(e["people"]) for e in pose_annotations)
    assert all(p.size > 0 and (p.body[:, 2] > 0).sum() >= 5 for p in people)
    json.dumps([p.body.tolist() for p in people])  # plain floats, serialisable
