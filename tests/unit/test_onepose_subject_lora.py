"""OnePoseTrans subject-LoRA pieces: training views, foreground and block weights (the loop
itself is tested in test_common_lora_training.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from poselab.models.onepose import subject_lora


def test_crops_are_square_views_of_the_short_side_resized_image():
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, :, 0] = np.arange(200, dtype=np.uint8)[None, :]  # a horizontal ramp: crops differ in x
    crops = subject_lora.random_square_crops(img, 50, 6, seed=1)
    assert crops.shape == (6, 50, 50, 3) and crops.dtype == np.uint8
    # short side 100 -> 50: the image becomes 50x100 and every crop keeps the full height
    lefts = {int(c[0, 0, 0]) for c in crops}
    assert len(lefts) > 1, "crops are not random"
    assert np.array_equal(subject_lora.random_square_crops(img, 50, 6, seed=1), crops)  # seeded
    with pytest.raises(ValueError):
        subject_lora.random_square_crops(img, 4, 1)


def test_foreground_replaces_the_background_with_grey():
    img = np.full((4, 4, 3), 200, np.uint8)
    mask = np.zeros((4, 4), np.float32)
    mask[1:3, 1:3] = 1
    out = subject_lora.foreground_on(img, mask)
    assert (out[1:3, 1:3] == 200).all() and (out[0, 0] == 127).all()
    assert subject_lora.foreground_on(img, None) is img
    with pytest.raises(ValueError, match="differ in size"):
        subject_lora.foreground_on(img, np.ones((3, 3)))


def test_block_weights_scale_only_up_and_favour_the_layout_block():
    sd = {
        "diffusion_model.output_blocks.1.1.transformer_blocks.0.attn1.to_q.lora_up.weight": torch.ones(
            2, 1
        ),
        "diffusion_model.output_blocks.1.1.transformer_blocks.0.attn1.to_q.lora_down.weight": torch.ones(
            1, 2
        ),
        "diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.lora_up.weight": torch.ones(
            2, 1
        ),
        "diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.alpha": torch.tensor(1.0),
    }
    out = subject_lora.block_weighted(sd, 0.2, subject_lora.LAYOUT_BLOCK["sdxl"], 1.0)
    keys = list(sd)
    assert torch.equal(out[keys[0]], torch.ones(2, 1))  # layout block at 1.0
    assert torch.equal(out[keys[1]], sd[keys[1]])  # down weights untouched
    assert torch.allclose(out[keys[2]], torch.full((2, 1), 0.2))
    assert out[keys[3]] is sd[keys[3]]
    uniform = subject_lora.block_weighted(sd, 0.5, None)
    assert torch.allclose(uniform[keys[0]], torch.full((2, 1), 0.5))
    # kohya and diffusers spellings of SD1.5's layout block are found too
    other = {
        "lora_unet_up_blocks_1_attentions_1_transformer_blocks_0_attn1_to_q.lora_up.weight": torch.ones(
            1
        ),
        "lora_unet_output_blocks_4_1_transformer_blocks_0_attn2_to_v.lora_up.weight": torch.ones(1),
        "unet.up_blocks.1.attentions.1.transformer_blocks.0.attn1.to_k.lora_B.weight": torch.ones(
            1
        ),
        "lora_unet_up_blocks_2_attentions_1_proj_in.lora_up.weight": torch.ones(1),
    }
    scaled = subject_lora.block_weighted(other, 0.0, subject_lora.LAYOUT_BLOCK["sd15"], 1.0)
    assert [float(v) for v in scaled.values()] == [1.0, 1.0, 1.0, 0.0]
