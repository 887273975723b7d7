import pytest
import torch

from poselab.models.editing import ip2p


def test_crop_matches_core_ip2p_centre_crop():
    img = torch.arange(1 * 21 * 19 * 3, dtype=torch.float32).reshape(1, 21, 19, 3)
    out = ip2p.crop_to_multiple_of_8(img)
    assert out.shape == (1, 16, 16, 3)
    assert torch.equal(out, img[:, 2:18, 1:17])  # offsets (21 % 8) // 2 and (19 % 8) // 2
    with pytest.raises(ValueError, match="at least 8x8"):
        ip2p.crop_to_multiple_of_8(torch.zeros(1, 5, 40, 3))


def test_mask_resized_broadcast_and_batch_error():
    m = ip2p.prepare_edit_mask(torch.ones(1, 8, 8), batch=3, height=16, width=24)
    assert m.shape == (3, 1, 16, 24) and float(m.min()) == 1.0
    with pytest.raises(ValueError, match="one mask for all images or one per image"):
        ip2p.prepare_edit_mask(torch.ones(2, 8, 8), batch=3, height=8, width=8)


def test_composite_is_bit_exact_outside_mask():
    torch.manual_seed(0)
    original, edited = torch.rand(2, 16, 16, 3), torch.rand(2, 16, 16, 3)
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, :, :5] = 0.5
    out = ip2p.composite_outside_mask(edited, original, mask)
    assert torch.equal(out[:, :, 5:], original[:, :, 5:])
    assert torch.allclose(out[:, :, :5], 0.5 * original[:, :, :5] + 0.5 * edited[:, :, :5])
    assert torch.equal(
        ip2p.composite_outside_mask(edited, original, torch.zeros(2, 1, 16, 16)), original
    )
