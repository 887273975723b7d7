"""FID/KID statistics against closed forms, Inception features from a file made at test time,
and the CLIP score / directional CLIP math on synthetic embeddings."""

import math

import numpy as np
import pytest
import torch

from poselab.models.metrics import clip_scores as cs
from poselab.models.metrics import fid_kid as fk


def _kid_closed_form(m: float, d: int) -> float:
    """MMD^2 of the cubic kernel (x.y/d + 1)^3 between N(0, I) and N(mu, I), m = |mu|^2
    (expanding E[(x.y/d + 1)^3] with the Gaussian moments; constant terms cancel)."""
    return m**3 / d**3 + 6 * m**2 / d**3 + 6 * m / d**3 + 3 * m**2 / d**2 + 3 * m / d**2 + 3 * m / d


def test_fid_closed_form_and_identical():
    d = 6
    mu = np.array([1.0, -2.0, 0.5, 0, 0, 3.0])
    # exact statistics: FID(N(0,I), N(mu,I)) = |mu|^2
    assert fk.frechet_distance(np.zeros(d), np.eye(d), mu, np.eye(d)) == pytest.approx(
        mu @ mu, abs=1e-9
    )
    # different covariances: N(0, a^2 I) vs N(0, b^2 I) -> d (a - b)^2
    assert fk.frechet_distance(np.zeros(d), 4 * np.eye(d), np.zeros(d), np.eye(d)) == pytest.approx(
        d * 1.0, abs=1e-9
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, d))
    y = rng.standard_normal((5000, d)) + mu
    assert fk.fid_from_features(x, y) == pytest.approx(mu @ mu, rel=0.03)
    assert abs(fk.fid_from_features(x, x)) < 1e-8


def test_fid_low_rank_path_equals_full_statistics():
    rng = np.random.default_rng(2)
    x, y = (
        rng.standard_normal((5, 12)),
        rng.standard_normal((7, 12)) * 2 + 1,
    )  # fewer images than dims
    full = fk.frechet_distance(*fk.feature_stats(x), *fk.feature_stats(y))
    assert fk.fid_from_features(x, y) == pytest.approx(full, rel=1e-6, abs=1e-6)


def test_kid_closed_form_and_identical():
    d = 8
    mu = np.full(d, 0.5)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, d))
    y = rng.standard_normal((3000, d)) + mu
    mean, std = fk.kid_from_features(x, y, subsets=1, subset_size=3000)
    assert mean == pytest.approx(_kid_closed_form(mu @ mu, d), rel=0.05)
    same, _ = fk.kid_from_features(x, x.copy(), subsets=10, subset_size=500)
    assert abs(same) < 0.01
    with pytest.raises(ValueError, match="at least 2"):
        fk.kid_from_features(x[:1], y[:1])


def _random_inception_state(path):
    """torchvision inception_v3 key names and shapes (meta device), random but sane values
    (BatchNorm variances 1) so the forward pass gives finite features."""
    import torchvision

    with torch.device("meta"):
        sd = torchvision.models.inception_v3(
            weights=None, aux_logits=False, init_weights=False
        ).state_dict()
    gen = torch.Generator().manual_seed(0)
    out = {}
    for k, v in sd.items():
        if k.endswith("running_var") or (k.endswith(".weight") and v.ndim == 1):
            out[k] = torch.ones(v.shape)
        elif k.endswith("num_batches_tracked"):
            out[k] = torch.zeros((), dtype=torch.long)
        elif v.ndim >= 2:
            fan_in = int(np.prod(v.shape[1:]))
            out[k] = torch.randn(v.shape, generator=gen) * math.sqrt(2.0 / fan_in)
        else:
            out[k] = torch.zeros(v.shape)
    from safetensors.torch import save_file

    save_file(out, str(path))


def test_inception_features_from_file(tmp_path):
    path = tmp_path / "inception_v3_random.safetensors"
    _random_inception_state(path)
    net = fk.InceptionFeatures(str(path))
    torch.manual_seed(0)
    imgs = torch.rand(2, 64, 48, 3)  # resized to 299 inside; two forward passes keep this quick
    f = net(imgs)
    assert f.shape == (2, 2048) and np.isfinite(f).all()
    assert not np.allclose(f[0], f[1])  # the features depend on the image
    assert abs(fk.fid_from_features(f, f)) < 1e-6
    assert fk.fid_from_features(f, f[::-1] * 2) > 0
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "junk.pth")
    with pytest.raises(ValueError, match="not an Inception-v3"):
        fk.InceptionFeatures(str(tmp_path / "junk.pth"))
    with pytest.raises(FileNotFoundError):
        fk.InceptionFeatures(str(tmp_path / "absent.pth"))


def test_clip_score_and_directional():
    img = torch.tensor([[1.0, 0, 0], [1.0, 1.0, 0], [-1.0, 0, 0]])
    txt = torch.tensor([[2.0, 0, 0]])
    s = cs.clip_score(img, txt)  # batch-1 text broadcasts
    assert torch.allclose(
        s, torch.tensor([100.0, 100 / math.sqrt(2), 0.0], dtype=torch.float64)
    )  # negative -> 0
    # image moved exactly along the text direction -> 1; opposite -> -1; orthogonal -> 0
    src_i, src_t, tgt_t = (
        torch.tensor([0.0, 1, 0]),
        torch.tensor([0.0, 0, 1]),
        torch.tensor([1.0, 0, 1]),
    )
    outs = torch.tensor([[3.0, 1, 0], [-1.0, 1, 0], [0.0, 1, 5]])
    d = cs.directional_similarity(src_i, outs, src_t, tgt_t)
    assert torch.allclose(d, torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64))
    assert math.isnan(
        cs.directional_similarity(src_i, src_i, src_t, tgt_t).item()
    )  # image unchanged
    with pytest.raises(cs.EmbeddingMismatchError, match="not from the same CLIP"):
        cs.clip_score(torch.zeros(1, 768), torch.zeros(1, 1280))
