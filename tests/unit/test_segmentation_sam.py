"""Segment Anything: architecture read from shapes, weights-only loading, keypoint prompts.

A tiny SAM (64-wide, 2-block encoder, 5M parameters) with random weights is built at test time
and saved as a real .pth state dict; random weights make the mask meaningless, so the tests
check plumbing (shapes, types, prompts, errors) and leave mask quality to the real checkpoints.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from poselab.models.pose.keypoints import J, empty_body
from poselab.models.segmentation import sam


def _body(cx, top, s):
    b = empty_body()
    for name, (dx, dy) in {
        "nose": (0, 0),
        "neck": (0, 0.4),
        "right_shoulder": (-0.3, 0.4),
        "left_shoulder": (0.3, 0.4),
        "right_hip": (-0.2, 1.4),
        "left_hip": (0.2, 1.4),
        "right_knee": (-0.2, 1.9),
        "left_knee": (0.2, 1.9),
    }.items():
        b[J[name]] = (cx + dx * s, top + dy * s, 1.0)
    return b


@pytest.fixture(scope="module")
def tiny_sam_path(tmp_path_factory):
    from segment_anything.build_sam import _build_sam

    torch.manual_seed(0)
    model = _build_sam(
        encoder_embed_dim=64, encoder_depth=2, encoder_num_heads=2, encoder_global_attn_indexes=[1]
    )
    path = (
        tmp_path_factory.mktemp("models") / "sams" / "renamed_sam_vit_h.pth"
    )  # the name lies on purpose
    path.parent.mkdir()
    torch.save(model.state_dict(), path)
    return path


def test_config_is_read_from_shapes(tiny_sam_path):
    state = torch.load(tiny_sam_path, map_location="cpu", weights_only=True)
    cfg = sam.infer_sam_config(state)
    assert cfg == sam.SamConfig(64, 2, 2, (1,))
    assert cfg.model_type == "custom"


@pytest.mark.parametrize("kind", ["vit_b", "vit_l", "vit_h"])
def test_official_layouts_are_recognised(kind):
    from segment_anything import sam_model_registry

    with torch.device("meta"):  # real module shapes without allocating ~100M-300M parameters
        model = sam_model_registry[kind](checkpoint=None)
    assert sam.infer_sam_config(model.state_dict()).model_type == kind


def test_load_and_prompt_tiny_sam(tiny_sam_path):
    model = sam.load_sam(str(tiny_sam_path))
    assert sam.load_sam(str(tiny_sam_path)) is model  # cached
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    bodies = [_body(40, 10, 25), _body(100, 10, 25)]
    m = sam.sam_person_mask(model, image, bodies, 0)
    assert m.shape == (96, 128) and m.dtype == np.float32
    assert set(np.unique(m)) <= {0.0, 1.0}


def test_prompts_are_the_persons_joints_and_box():
    bodies = [_body(40, 10, 25), _body(100, 10, 25)]
    coords, labels, box = sam.sam_prompts(bodies, 0, 96, 128)
    vis0 = bodies[0][bodies[0][:, 2] > 0, :2]
    assert np.allclose(coords[labels == 1], vis0)
    assert (labels == 0).sum() > 0  # the other person's joints say "not this"
    assert np.all(coords[labels == 0][:, 0] > box[2])
    assert box[0] <= vis0[:, 0].min() and box[2] >= vis0[:, 0].max() and box[3] <= 95
    with pytest.raises(ValueError, match="no visible keypoints"):
        sam.sam_prompts([empty_body()], 0, 96, 128)


def test_bad_checkpoints_get_clear_errors(tmp_path):
    other = tmp_path / "not_sam.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), other)
    with pytest.raises(sam.SamCheckpointError, match="not a Segment Anything"):
        sam.load_sam(str(other))
    pickled = tmp_path / "pickled.pth"
    torch.save({"model": object()}, pickled)
    with pytest.raises(sam.SamCheckpointError, match="weights-only"):
        sam.load_sam(str(pickled))
