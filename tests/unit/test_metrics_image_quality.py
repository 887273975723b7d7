"""SSIM / masked SSIM / PSNR against scikit-image, and LPIPS with a backbone file made at test time."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from poselab.models.metrics import image_quality as iq
from poselab.models.metrics import lpips_metric

SK = dict(
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1, data_range=1.0
)


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(0)
    # Smooth structure plus noise, odd sizes, so borders and non-square shapes are exercised.
    yy, xx = np.mgrid[0:37, 0:50] / 10.0
    base = np.stack([np.sin(xx + c) * np.cos(yy - c) * 0.5 + 0.5 for c in range(3)], -1)
    a = np.stack([base, base[::-1].copy(), rng.random(base.shape)])
    b = np.clip(a + rng.normal(0, [[[[0.02]]], [[[0.1]]], [[[0.3]]]], a.shape), 0, 1)
    return a, b


def test_ssim_equals_scikit_image(pairs):
    a, b = pairs
    ours = iq.ssim(torch.from_numpy(a), torch.from_numpy(b), dtype=torch.float64).numpy()
    ref = np.array([structural_similarity(a[i], b[i], **SK) for i in range(len(a))])
    assert np.abs(ours - ref).max() < 1e-4
    # the three pairs really differ, so the check is not trivially passing on equal values
    assert ref.max() - ref.min() > 0.3
    # float32 (the default, fast path) is also within tolerance
    ours32 = iq.ssim(torch.from_numpy(a).float(), torch.from_numpy(b).float()).numpy()
    assert np.abs(ours32 - ref).max() < 1e-4


def test_ssim_map_and_masked_ssim_equal_scikit_full_map(pairs):
    a, b = pairs
    _, full = structural_similarity(a[1], b[1], full=True, **SK)
    ours = (
        iq.ssim_map(torch.from_numpy(a[1:2]), torch.from_numpy(b[1:2]), dtype=torch.float64)[0]
        .permute(1, 2, 0)
        .numpy()
    )
    assert np.abs(ours - full).max() < 1e-4  # including the padded border
    mask = np.zeros(a.shape[1:3])
    mask[:10, 20:] = 1.0  # touches the image edge
    expected = full.mean(-1)[mask > 0].mean()
    got = iq.masked_ssim(
        torch.from_numpy(a[1:2]), torch.from_numpy(b[1:2]), torch.from_numpy(mask)[None]
    )
    assert got.item() == pytest.approx(expected, abs=1e-5)
    assert math.isnan(
        iq.masked_ssim(
            torch.from_numpy(a[:1]), torch.from_numpy(b[:1]), torch.zeros(1, 37, 50)
        ).item()
    )


def test_identical_images_ssim_one_psnr_inf(pairs):
    a, b = pairs
    t = torch.from_numpy(a)
    assert torch.allclose(iq.ssim(t, t), torch.ones(3, dtype=torch.float64))
    p = iq.psnr(t, t)
    assert torch.isinf(p).all() and (p > 0).all()
    assert iq.capped(p[0].item()) == iq.PSNR_CAP_DB
    ours = iq.psnr(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    ref = [peak_signal_noise_ratio(a[i], b[i], data_range=1.0) for i in range(3)]
    assert np.abs(ours - ref).max() < 1e-4


def test_size_and_batch_errors(pairs):
    a, b = pairs
    with pytest.raises(ValueError, match="same size"):
        iq.ssim(torch.from_numpy(a), torch.from_numpy(b[:, :30]))
    with pytest.raises(ValueError, match="batch"):
        iq.psnr(torch.from_numpy(a[:2]), torch.from_numpy(b))
    # batch of 1 broadcasts
    assert iq.psnr(torch.from_numpy(a[:1]), torch.from_numpy(b)).shape == (3,)
    with pytest.raises(ValueError, match="window"):
        iq.ssim(torch.zeros(1, 8, 8, 3), torch.zeros(1, 8, 8, 3))


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    """A random torchvision AlexNet state dict (the real key names and shapes; only the
    ``features`` LPIPS uses, to keep the file small), saved as a plain .pth."""
    import torchvision

    # Built on the meta device (names and shapes only; initialising AlexNet's classifier is slow).
    with torch.device("meta"):
        shapes = {
            k: v.shape for k, v in torchvision.models.alexnet(weights=None).state_dict().items()
        }
    gen = torch.Generator().manual_seed(0)
    sd = {
        k: torch.randn(s, generator=gen) * 0.05
        for k, s in shapes.items()
        if k.startswith("features.")
    }
    path = tmp_path_factory.mktemp("lpips") / "alexnet-random.pth"
    torch.save(sd, path)
    return path, sd


def test_lpips_with_backbone_file(alexnet_file):
    path, sd = alexnet_file
    metric = lpips_metric.LPIPSMetric(str(path))
    assert metric.net_name == "alex"
    # the file's weights really are in the backbone (not lpips' random init)
    assert torch.equal(metric.model.net.slice1[0].weight, sd["features.0.weight"])
    torch.manual_seed(1)
    x = torch.rand(2, 64, 64, 3)
    noisy = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    same = metric(x, x)
    assert torch.allclose(same, torch.zeros(2, dtype=torch.float64), atol=1e-7)
    assert (metric(x, noisy) > 0).all()


def test_lpips_bad_weights_errors(tmp_path, alexnet_file):
    _, sd = alexnet_file
    with pytest.raises(FileNotFoundError, match="not found"):
        lpips_metric.LPIPSMetric(str(tmp_path / "missing.pth"))
    partial = {k: v for k, v in sd.items() if not k.startswith("features.10")}
    torch.save(partial, tmp_path / "alex_partial.pth")
    with pytest.raises(lpips_metric.LPIPSWeightsError, match="missing"):
        lpips_metric.LPIPSMetric(str(tmp_path / "alex_partial.pth"))
    torch.save({"foo": torch.zeros(3)}, tmp_path / "junk.pth")
    with pytest.raises(lpips_metric.LPIPSWeightsError, match="features.0.weight"):
        lpips_metric.LPIPSMetric(str(tmp_path / "junk.pth"))
