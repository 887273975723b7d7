"""Checkpoint I/O: safetensors only (no pickle), written atomically, config inside.

* Model file (what ``models/posegan/`` holds and the loader reads): the generator's weights
  under ``generator.*``; metadata ``poselab_format``, ``config`` (PoseGANConfig JSON),
  ``step`` and ``info`` (training summary JSON).
* Training state (in the run folder, for resuming): generator and discriminator weights plus
  both Adam states flattened into tensors ``opt_g.<param index>.<exp_avg|exp_avg_sq|step>``;
  the optimizers' param groups (lr, betas, ...) are JSON in the metadata.

Every file is written to a temporary name in the same folder and moved into place with
``os.replace``, so an interruption never leaves a half-written checkpoint under the real name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..common.files import atomic_write
from .networks import Generator, PoseGANConfig

FORMAT = "poselab.posegan.v1"
STATE_FORMAT = "poselab.posegan.trainstate.v1"


def atomic_save(
    tensors: dict[str, torch.Tensor], path: os.PathLike, metadata: dict[str, str]
) -> Path:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def _read(path: os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(os.fspath(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return tensors, meta


def save_model(
    path: os.PathLike, generator: Generator, step: int = 0, info: dict | None = None
) -> Path:
    tensors = {f"generator.{k}": v for k, v in generator.state_dict().items()}
    meta = {
        "poselab_format": FORMAT,
        "config": generator.config.to_json(),
        "step": str(int(step)),
        "info": json.dumps(info or {}),
    }
    return atomic_save(tensors, path, meta)


def read_model_metadata(path: os.PathLike) -> dict:
    with safe_open(os.fspath(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("poselab_format") != FORMAT:
        raise ValueError(
            f"{path}: not a PoseLab Deformable-GAN checkpoint (format {meta.get('poselab_format')!r}); "
            "train one with the PoseLab Train PoseGAN node or scripts/train_posegan.py"
        )
    return {
        "config": PoseGANConfig.from_json(meta["config"]),
        "step": int(meta.get("step", 0)),
        "info": json.loads(meta.get("info", "{}")),
    }


def load_model(path: os.PathLike, device: str | torch.device = "cpu") -> tuple[Generator, dict]:
    """Generator (in eval mode) and its metadata ``{"config", "step", "info"}``."""
    meta = read_model_metadata(path)
    tensors, _ = _read(path)
    gen = Generator(meta["config"])
    state = {k[len("generator.") :]: v for k, v in tensors.items() if k.startswith("generator.")}
    missing, unexpected = gen.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not match its config (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    return gen.to(device).eval(), meta


def _flatten_optimizer(
    opt: torch.optim.Optimizer, prefix: str
) -> tuple[dict[str, torch.Tensor], str]:
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"{prefix}.{idx}.{key}"] = t
    return tensors, json.dumps(sd["param_groups"])


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], prefix: str, groups_json: str) -> dict:
    state: dict[int, dict] = {}
    for name, t in tensors.items():
        if not name.startswith(prefix + "."):
            continue
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = t
    return {"state": state, "param_groups": json.loads(groups_json)}


def save_train_state(
    path: os.PathLike, generator, discriminator, opt_g, opt_d, step: int, extra: dict | None = None
) -> Path:
    tensors = {f"generator.{k}": v for k, v in generator.state_dict().items()}
    tensors.update({f"discriminator.{k}": v for k, v in discriminator.state_dict().items()})
    t_g, groups_g = _flatten_optimizer(opt_g, "opt_g")
    t_d, groups_d = _flatten_optimizer(opt_d, "opt_d")
    tensors.update(t_g)
    tensors.update(t_d)
    meta = {
        "poselab_format": STATE_FORMAT,
        "config": generator.config.to_json(),
        "step": str(int(step)),
        "opt_g_groups": groups_g,
        "opt_d_groups": groups_d,
        "extra": json.dumps(extra or {}),
    }
    return atomic_save(tensors, path, meta)


def load_train_state(path: os.PathLike, generator, discriminator, opt_g, opt_d) -> dict:
    """Restore weights and optimizer states in place; returns ``{"step", "extra", "config"}``."""
    tensors, meta = _read(path)
    if meta.get("poselab_format") != STATE_FORMAT:
        raise ValueError(f"{path}: not a PoseLab Deformable-GAN training state")
    config = PoseGANConfig.from_json(meta["config"])
    if config != generator.config:
        raise ValueError(
            f"{path}: the run was started with a different configuration ({config}); "
            "resume with the same settings, or start a new run (resume off)"
        )
    generator.load_state_dict({k[10:]: v for k, v in tensors.items() if k.startswith("generator.")})
    discriminator.load_state_dict(
        {k[14:]: v for k, v in tensors.items() if k.startswith("discriminator.")}
    )
    opt_g.load_state_dict(_unflatten_optimizer(tensors, "opt_g", meta["opt_g_groups"]))
    opt_d.load_state_dict(_unflatten_optimizer(tensors, "opt_d", meta["opt_d_groups"]))
    return {
        "step": int(meta["step"]),
        "extra": json.loads(meta.get("extra", "{}")),
        "config": config,
    }
