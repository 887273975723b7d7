"""LPIPS with the backbone weights the user provides (never a silent random backbone).

The ``lpips`` wheel ships the calibrated linear layers but downloads the torchvision backbone
(AlexNet / VGG16 / SqueezeNet 1.1) on first use, which fails offline. We build
``lpips.LPIPS(pretrained=True, pnet_rand=True)`` (linear layers from the wheel, backbone left
uninitialised) and then load a torchvision ``features.*`` state dict from the user's file into
the backbone, strictly: every backbone tensor must come from the file.
"""

from __future__ import annotations

import os
import threading

import torch

from .weights import load_state_dict

NETS = ("alex", "vgg", "squeeze")
_CACHE: dict[tuple[str, float], "LPIPSMetric"] = {}
_LOCK = threading.Lock()


class LPIPSWeightsError(ValueError):
    """The file is not a torchvision AlexNet/VGG16/SqueezeNet backbone state dict."""


LPIPSWeightsError.__module__ = (
    "poselab"  # shown by ComfyUI as poselab.LPIPSWeightsError, not a file path
)


def guess_net(state: dict[str, torch.Tensor], filename: str = "") -> str:
    """Which backbone a torchvision state dict belongs to (from its tensors, then its name)."""
    w0 = state.get("features.0.weight")
    if w0 is not None and w0.ndim == 4 and w0.shape[-1] == 11:
        return "alex"
    if any(k.startswith("features.3.squeeze") for k in state):
        return "squeeze"
    if w0 is not None and w0.ndim == 4 and w0.shape[-1] == 3:
        return "vgg"
    name = os.path.basename(filename).lower()
    for net in NETS:
        if net in name:
            return net
    raise LPIPSWeightsError(
        f"{filename or 'weights'}: not a torchvision AlexNet/VGG16/SqueezeNet state dict (no 'features.0.weight'); "
        "save e.g. torchvision.models.alexnet(weights='DEFAULT').state_dict() as .pth or .safetensors"
    )


def _backbone_key_map(model) -> dict[str, str]:
    """lpips backbone parameter name -> torchvision name (``sliceK.<i>.weight`` <- ``features.<i>.weight``)."""
    mapping = {}
    for name in model.net.state_dict():
        parts = name.split(".")  # sliceK, index, param
        mapping[name] = "features." + ".".join(parts[1:])
    return mapping


class LPIPSMetric:
    """LPIPS distance between ``(B, H, W, C)`` images in [0, 1]; lower = more similar."""

    def __init__(
        self, weights_path: str, net: str | None = None, device: str | torch.device = "cpu"
    ):
        import lpips  # heavy; only when LPIPS is asked for

        state = load_state_dict(weights_path)
        state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
        self.net_name = net or guess_net(state, weights_path)
        if self.net_name not in NETS:
            raise ValueError(f"LPIPS net must be one of {NETS}, got {self.net_name!r}")
        self.weights_path = weights_path
        model = lpips.LPIPS(pretrained=True, pnet_rand=True, net=self.net_name, verbose=False)
        mapping = _backbone_key_map(model)
        missing = [tv for tv in mapping.values() if tv not in state]
        if missing:
            raise LPIPSWeightsError(
                f"{weights_path}: {len(missing)} backbone tensors for LPIPS-{self.net_name} are missing "
                f"(e.g. {missing[:3]}); give the full torchvision {self.net_name} state dict"
            )
        new = {}
        for ours, tv in mapping.items():
            expected = model.net.state_dict()[ours].shape
            if tuple(state[tv].shape) != tuple(expected):
                raise LPIPSWeightsError(
                    f"{weights_path}: '{tv}' has shape {tuple(state[tv].shape)}, LPIPS-{self.net_name} expects "
                    f"{tuple(expected)}: is this the right backbone?"
                )
            new[ours] = state[tv].float()
        model.net.load_state_dict(new, strict=True)
        self.model = model.eval().to(device)
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, a: torch.Tensor, b: torch.Tensor, batch: int = 8) -> torch.Tensor:
        if a.ndim == 3:
            a = a[None]
        if b.ndim == 3:
            b = b[None]
        if a.shape[1:] != b.shape[1:]:
            raise ValueError(
                f"LPIPS needs images of the same size, got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        n = max(a.shape[0], b.shape[0])
        if a.shape[0] != n:
            a = a.expand(n, -1, -1, -1)
        if b.shape[0] != n:
            b = b.expand(n, -1, -1, -1)
        out = []
        for i in range(0, n, batch):
            x = a[i : i + batch, ..., :3].permute(0, 3, 1, 2).float().to(self.device)
            y = b[i : i + batch, ..., :3].permute(0, 3, 1, 2).float().to(self.device)
            out.append(self.model(x, y, normalize=True).reshape(-1).cpu())
        return torch.cat(out).double()


def get_lpips(weights_path: str, net: str | None = None, device: str = "cpu") -> LPIPSMetric:
    """Cached :class:`LPIPSMetric` (loading the backbone once per file)."""
    key = (os.path.abspath(weights_path), os.path.getmtime(weights_path), net, str(device))
    with _LOCK:
        if key not in _CACHE:
            _CACHE.clear()  # one backbone in memory at a time
            _CACHE[key] = LPIPSMetric(weights_path, net, device)
        return _CACHE[key]
