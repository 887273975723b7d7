"""The controlnet-aux OpenPose backend: weights-only loading of real-format files (random
weights written once per session), conversion of its normalised output to pixels, errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from poselab.models.pose import detect_openpose
from poselab.models.pose.keypoints import NUM_FACE, NUM_HAND


@pytest.fixture(scope="session")
def openpose_weights(tmp_path_factory) -> dict[str, str]:
    # ~250 MB in fp16: written once, shared by every test that needs the networks
    return detect_openpose.write_random_weights(str(tmp_path_factory.mktemp("openpose")))


def test_random_weight_files_have_the_annotators_layout(openpose_weights):
    from controlnet_aux.open_pose.model import bodypose_model

    body = torch.load(openpose_weights[detect_openpose.BODY_FILE], weights_only=True)
    # keys without the network's first component, as util.transfer expects
    assert "conv1_1.weight" in body and not any(k.startswith("model0.") for k in body)
    with torch.device("meta"):
        expected = {".".join(k.split(".")[1:]) for k in bodypose_model().state_dict()}
    assert set(body) == expected
    assert body["conv1_1.weight"].dtype == torch.float16


def test_detector_runs_on_odd_images(openpose_weights):
    det = detect_openpose.OpenPoseDetector(
        openpose_weights[detect_openpose.BODY_FILE],
        openpose_weights[detect_openpose.HAND_FILE],
        openpose_weights[detect_openpose.FACE_FILE],
        detect_resolution=128,
    )
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 255, (90, 70), dtype=np.uint8)
    frame = det(gray, max_people=5)
    assert (frame.width, frame.height) == (70, 90)
    # random weights find nobody (or noise); every person found must be in the image's pixels
    for person in frame.people:
        present = person.body[person.body[:, 2] > 0]
        assert np.all(present[:, 0] <= 70) and np.all(present[:, 1] <= 90)
    # the networks are cached while the files are unchanged
    paths = det.paths
    assert detect_openpose.get_detector(*paths) is detect_openpose.get_detector(*paths)
    assert det(np.zeros((8, 8, 3), np.uint8)).people == []  # too small: empty, no crash


def test_swapped_or_missing_files_give_clear_errors(openpose_weights, tmp_path):
    with pytest.raises(ValueError, match="swapped"):
        detect_openpose.get_detector(openpose_weights[detect_openpose.HAND_FILE])
    with pytest.raises(FileNotFoundError, match="not found"):
        detect_openpose.get_detector(str(tmp_path / "nope.pth"))
    bad = tmp_path / "bad.pth"
    torch.save({"conv1_1.weight": "not a tensor"}, bad)
    with pytest.raises(ValueError, match="state dict of tensors"):
        detect_openpose.load_state_dict(str(bad))


def test_results_convert_from_normalised_to_pixels():
    from controlnet_aux.open_pose import PoseResult
    from controlnet_aux.open_pose.body import BodyResult, Keypoint

    def body(x, score_total, score=0.8):
        kps = [None] * 18
        kps[0] = Keypoint(x, 0.25, score)  # nose
        kps[1] = Keypoint(x, 0.5, 0.05)  # neck, weak
        return BodyResult(kps, score_total, 2)

    hand = [Keypoint(0.5, 0.5)] + [Keypoint(-1.0, -1.0)] * 20  # controlnet-aux marks missing as -1
    face = [Keypoint(0.1 * (i % 10), 0.2) for i in range(NUM_FACE)]
    results = [
        PoseResult(body(0.1, 5.0), None, None, None),
        PoseResult(body(0.5, 9.0), hand, None, face),
    ]
    people = detect_openpose.results_to_people(
        results, width=200, height=100, max_people=5, min_score=0.1
    )
    assert len(people) == 2
    first, second = people
    # most confident first, coordinates in pixels of the caller's image
    np.testing.assert_allclose(first.body[0], [100.0, 25.0, 0.8], rtol=1e-6)
    assert first.body[1, 2] == 0  # below min_score: dropped
    assert first.body[2:, 2].max() == 0  # None: missing
    assert first.left_hand.shape == (NUM_HAND, 3)
    np.testing.assert_allclose(first.left_hand[0], [100.0, 50.0, 1.0])
    assert (first.left_hand[1:, 2] == 0).all()
    assert first.right_hand is None and first.face.shape == (NUM_FACE, 3)
    assert second.left_hand is None and second.face is None
    np.testing.assert_allclose(second.body[0, :2], [20.0, 25.0])
    assert len(detect_openpose.results_to_people(results, 200, 100, max_people=1)) == 1
    # a person with only weak joints is dropped entirely
    assert detect_openpose.results_to_people(results, 200, 100, min_score=0.9) == []


def test_fp32_safetensors_weights_load(openpose_weights, tmp_path):
    from safetensors.torch import save_file

    state = torch.load(openpose_weights[detect_openpose.HAND_FILE], weights_only=True)
    path = tmp_path / "hand.safetensors"
    save_file({k: v.float() for k, v in state.items()}, str(path))
    loaded = detect_openpose.load_state_dict(str(path))
    assert set(loaded) == set(state) and loaded["conv1_1.weight"].dtype == torch.float32
    assert (
        os.path.getsize(path) > os.path.getsize(openpose_weights[detect_openpose.HAND_FILE]) * 1.8
    )
