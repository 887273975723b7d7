"""FID and KID over two image sets, with Inception-v3 weights the user provides.

Statistics (tested on their own):
* FID (Heusel et al.): ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrt(S1 S2))`` of the feature
  Gaussians (sample covariance, ddof 1), as pytorch-fid computes it.
* KID (Binkowski et al.): the unbiased MMD^2 with the cubic polynomial kernel
  ``k(x, y) = (x.y / d + 1)^3``, averaged over random subsets (mean and std), as
  torch-fidelity / clean-fid compute it.

Features: the 2048-d pool of torchvision's ``inception_v3`` loaded from a state dict file
(torchvision's ImageNet weights, or pytorch-fid's ``pt_inception-2015-12-05`` whose
1008-class head is recognised). The latter's few FID-specific pooling tweaks are not
replicated, so the numbers are close to, not identical with, pytorch-fid's; compare methods
with one weights file, and only compare with papers that used the same features.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg

from .weights import load_state_dict

_CACHE: dict = {}
_LOCK = threading.Lock()


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors of shape (N, D) for FID, got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError(f"feature statistics differ in size: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * _trace_sqrt_product(s1, s2))


def _trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr(sqrt(S1 S2)) = Tr(sqrt(R S2 R)) with R = sqrt(S1): symmetric eigen-solvers only,
    several times faster than scipy's sqrtm at 2048-d and without its complex residue."""
    w, v = linalg.eigh(s1)
    r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ev = linalg.eigvalsh(r @ s2 @ r)
    return float(np.sqrt(np.clip(ev, 0, None)).sum())


def fid_from_features(f1, f2) -> float:
    """FID of two feature sets ``(N, D)``.

    With fewer images than dimensions (the usual case in a node) the covariances have rank
    < N, and Tr(sqrt(S1 S2)) equals the nuclear norm of ``X1c X2c^T / sqrt((n1-1)(n2-1))``
    (centred features): the same number from an N x N SVD instead of D x D eigenproblems.
    """
    x, y = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    m1, s1 = feature_stats(x)
    m2, s2 = feature_stats(y)
    if min(len(x), len(y)) > x.shape[1]:
        return frechet_distance(m1, s1, m2, s2)
    xc, yc = x - m1, y - m2
    nuclear = linalg.svdvals(xc @ yc.T).sum() / np.sqrt((len(x) - 1) * (len(y) - 1))
    diff = m1 - m2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * nuclear)


def _poly_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


def kid_from_features(
    f1, f2, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID mean and std over ``subsets`` random subsets of ``min(subset_size, n1, n2)`` samples."""
    x, y = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"KID needs two (N, D) feature sets of the same D, got {x.shape} and {y.shape}"
        )
    size = min(subset_size, len(x), len(y))
    if size < 2:
        raise ValueError(f"KID needs at least 2 images in each set, got {len(x)} and {len(y)}")
    if size == len(x) == len(y):
        subsets = 1  # every subset would be the whole set
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(subsets):
        xi = x[rng.choice(len(x), size, replace=False)]
        yi = y[rng.choice(len(y), size, replace=False)]
        vals.append(_poly_mmd2_unbiased(xi, yi))
    return float(np.mean(vals)), float(np.std(vals))


# ------------------------------------------------------------------------------ Inception features

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class InceptionFeatures:
    """2048-d Inception-v3 pool features of ``(B, H, W, C)`` images in [0, 1]."""

    def __init__(self, weights_path: str, device: str | torch.device = "cpu"):
        import torchvision

        state = load_state_dict(weights_path)
        state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
        if "fc.weight" not in state or "Conv2d_1a_3x3.conv.weight" not in state:
            raise ValueError(
                f"{weights_path}: not an Inception-v3 state dict (no 'Conv2d_1a_3x3.conv.weight' / 'fc.weight'); "
                "save torchvision.models.inception_v3(weights='DEFAULT').state_dict(), or use pytorch-fid's "
                "pt_inception-2015-12-05-6726825d.pth"
            )
        classes = state["fc.weight"].shape[0]
        # pytorch-fid's TF-ported weights have 1008 classes and expect inputs in [-1, 1].
        self.tf_style = classes == 1008
        model = torchvision.models.inception_v3(
            weights=None, aux_logits=False, init_weights=False, num_classes=classes
        )
        state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{weights_path}: does not fit Inception-v3 (missing {missing[:3]}, unexpected {unexpected[:3]}); "
                "give a full torchvision inception_v3 state dict"
            )
        model.fc = torch.nn.Identity()
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.weights_path = weights_path

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch: int = 16) -> np.ndarray:
        if images.ndim == 3:
            images = images[None]
        feats = []
        for i in range(0, images.shape[0], batch):
            x = images[i : i + batch, ..., :3].permute(0, 3, 1, 2).float().to(self.device)
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            if self.tf_style:
                x = 2 * x - 1
            else:
                mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
                std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
                x = (x - mean) / std
            feats.append(self.model(x).cpu().double().numpy())
        return np.concatenate(feats)


def get_inception(weights_path: str, device: str = "cpu") -> InceptionFeatures:
    key = (os.path.abspath(weights_path), os.path.getmtime(weights_path), str(device))
    with _LOCK:
        if key not in _CACHE:
            _CACHE.clear()
            _CACHE[key] = InceptionFeatures(weights_path, device)
        return _CACHE[key]
