"""ComfyUI-side training glue shared by the trainers (IP2P pose-edit LoRA, OnePoseTrans subject
LoRA, Stable-Pose adapter): LoRA files, LoRA weights on ComfyUI's weight adapters, the frozen
denoiser, checkpoint names and retention, resumable run state, and the report.

LoRA injection uses ComfyUI's own machinery, as core TrainLoraNode does: each adapted Linear gets a
``comfy.weight_adapter`` LoRA (``LoraDiff``, fp32 up/down) as a weight wrapper on a clone of the
MODEL, so the effective weight ``W + alpha/rank * up @ down`` is formed by comfy's ops in the
model's own dtype, composes with LoRAs already patched in, follows model management (devices,
casting, offload), and the saved keys (``diffusion_model.<module>.lora_up.weight`` / ``lora_down``
/ ``alpha``) are read back by core LoraLoader with the same class. peft would instead replace
ComfyUI's modules with its own wrappers, a second engine beside ComfyUI's patching.

The frozen UNet is not copied: ComfyUI runs nodes under ``torch.inference_mode``, whose tensors
autograd refuses to save, so :class:`FrozenDenoiser` turns the loaded weights into normal tensors
in place (one tensor at a time, same dtype and device: no second copy of the UNet) and freezes them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from pathlib import Path

import torch
import torch.utils.checkpoint

import comfy.model_management
import comfy.sd
import comfy.utils
import folder_paths
from comfy.weight_adapter.lora import LoRAAdapter

from ..models.common import lora_training as lt
from ..models.common.files import atomic_write, unique_path
from ..models.common.json_values import strict_json
from .common import check_interrupted
from .model_folders import reading_model

log = logging.getLogger("poselab")

NO_LORA = "none"
RUNS_DIR = "poselab_lora_runs"  # in ComfyUI's output folder: resumable state of unfinished runs
DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


# ---------------------------------------------------------------------------- LoRA files
def lora_choices() -> list[str]:
    return [NO_LORA] + folder_paths.get_filename_list("loras")


def load_lora_file(lora_name: str) -> dict:
    """The tensors of a LoRA in models/loras, or an error naming where to put it."""
    path = folder_paths.get_full_path("loras", lora_name)
    if path is None:
        raise ValueError(
            f"LoRA '{lora_name}' not found: put it in {' or '.join(folder_paths.get_folder_paths('loras'))}"
        )
    with reading_model("loras", lora_name):
        return comfy.utils.load_torch_file(path, safe_load=True)


def apply_lora(model, clip, lora_name: str, strength: float):
    """Patch ``model`` (and ``clip``) with a LoRA file from models/loras, the way core LoraLoader does."""
    if not lora_name or lora_name == NO_LORA or strength == 0:
        return model, clip
    return comfy.sd.load_lora_for_models(model, clip, load_lora_file(lora_name), strength, strength)


def lora_stem(name: str, example: str) -> str:
    """A file name stem from a node's name input (no folders, no extension)."""
    stem = os.path.basename(name.strip()).removesuffix(".safetensors")
    if not stem or stem in (".", ".."):
        raise ValueError(f"the file name is empty: give a name such as {example}")
    return stem


def free_lora_path(stem: str) -> Path:
    """``models/loras/<stem>.safetensors``, or ``<stem>_0001.safetensors`` ... so no file is overwritten."""
    return unique_path(
        Path(folder_paths.get_folder_paths("loras")[0]) / f"{stem}.safetensors", digits=4
    )


def save_lora(sd: dict[str, torch.Tensor], path: os.PathLike, metadata: dict | None = None) -> Path:
    """Write a safetensors LoRA atomically (temp file in the same folder, then ``os.replace``)."""
    from safetensors.torch import save_file

    meta = {k: str(v) for k, v in (metadata or {}).items()}
    return atomic_write(path, lambda tmp: save_file(sd, str(tmp), metadata=meta))


# ---------------------------------------------------------------------------- checkpoints
def step_checkpoint_path(final: os.PathLike, step: int) -> Path:
    """The one name of an intermediate checkpoint: ``<stem>_step000120.safetensors`` beside ``final``."""
    final = Path(final)
    return final.with_name(f"{final.stem}_step{step:06d}{final.suffix}")


class CheckpointKeeper:
    """Keeps the newest ``keep`` intermediate checkpoints of one final file and deletes older ones
    (only files named by :func:`step_checkpoint_path` for that file; the final file is never touched)."""

    def __init__(self, final: os.PathLike, keep: int):
        self.final, self.keep = Path(final), max(int(keep), 0)
        pattern = re.compile(
            re.escape(self.final.stem) + r"_step(\d{6})" + re.escape(self.final.suffix) + "$"
        )
        found = [
            (int(m.group(1)), p)
            for p in self.final.parent.glob(f"{self.final.stem}_step*{self.final.suffix}")
            if (m := pattern.match(p.name))
        ]
        self.paths = [p for _, p in sorted(found)]

    def add(self, path: Path) -> None:
        if path in self.paths:
            self.paths.remove(path)
        self.paths.append(path)
        while len(self.paths) > self.keep:
            self.paths.pop(0).unlink(missing_ok=True)


# ---------------------------------------------------------------------------- report
def training_report(result, **fields) -> str:
    """The trainers' report: their own fields, then the run's losses, timing and checkpoints."""
    out = dict(fields)
    out.update(
        steps=len(result.losses),
        seconds=round(result.seconds, 2),
        eval_loss_before=result.eval_before,
        eval_loss_after=result.eval_after,
    )
    for extra in ("eval_wrong_pose",):
        if hasattr(result, extra):
            out[f"eval_loss_{extra.removeprefix('eval_')}"] = getattr(result, extra)
    if getattr(result, "start_step", 0):
        out["resumed_from_step"] = result.start_step
    out["losses"] = [round(x, 6) for x in result.losses]
    # only the files still there: keep_checkpoints deletes the older step checkpoints as it goes
    out["checkpoints"] = [os.path.basename(c) for c in result.checkpoints if os.path.exists(c)]
    return strict_json(out)


# ---------------------------------------------------------------------------- frozen denoiser
def as_normal_tensors(module: torch.nn.Module) -> None:
    """Replace the inference-mode tensors of ``module`` by normal ones, in place and one at a time
    (same dtype and device: no second copy of the model), so autograd may save them; all frozen.
    New Parameter objects, as ComfyUI's own weight patching sets them (``.data`` assignment keeps an
    inference tensor's missing version counter)."""
    with torch.inference_mode(False), torch.no_grad():
        for m in module.modules():
            for name, p in list(m._parameters.items()):
                if p is not None and p.is_inference():
                    m._parameters[name] = torch.nn.Parameter(p.clone(), requires_grad=False)
            for name, b in list(m._buffers.items()):
                if b is not None and b.is_inference():
                    m._buffers[name] = b.clone()
    module.requires_grad_(False)


def _checkpointed(forward):
    def run(*args, **kwargs):
        # the UNet edits transformer_options as it goes (block, transformer index): the recompute in
        # the backward pass must see them as they were at this call
        args = tuple(dict(a) if isinstance(a, dict) else a for a in args)
        kwargs = {k: dict(v) if isinstance(v, dict) else v for k, v in kwargs.items()}
        return torch.utils.checkpoint.checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return run


def checkpoint_layers(unet) -> list[torch.nn.Module]:
    """The UNet's res blocks, transformers and resamplers: ComfyUI calls them one by one
    (``forward_timestep_embed``), not through their ``TimestepEmbedSequential``'s forward."""
    blocks = (
        list(unet.input_blocks)
        + ([unet.middle_block] if unet.middle_block is not None else [])
        + list(unet.output_blocks)
    )
    return [layer for block in blocks for layer in block]


class FrozenDenoiser:
    """A MODEL's UNet, frozen, as the noise predictor of the training loops.

    Used as a context manager: it loads a clone of ``model`` carrying ``weight_adapters``
    (``{"diffusion_model.<module>.weight": LoraDiff}``) through ComfyUI's model management, makes
    its weights usable by autograd without copying them, optionally checkpoints the UNet's blocks
    (recomputed in the backward pass: less memory, ~30% more time), and calls it as
    ``eps(x_t, t, context, concat=None, y=None, control=None)`` in DDPM terms (integer ``t``)
    through ``BaseModel.apply_model`` (its input scaling, dtype casts, patches and ControlNet-style
    ``control``)."""

    def __init__(
        self, model, weight_adapters: dict | None = None, gradient_checkpointing: bool = False
    ):
        self.model, self.adapters, self.checkpointing = (
            model,
            dict(weight_adapters or {}),
            gradient_checkpointing,
        )
        self._stack = contextlib.ExitStack()
        self._wrapped: list[torch.nn.Module] = []

    def __enter__(self) -> "FrozenDenoiser":
        patcher = self.model.clone()
        for key, adapter in self.adapters.items():
            patcher.add_weight_wrapper(key, adapter)
        comfy.model_management.load_models_gpu([patcher], force_full_load=True)
        self.patcher, self.base, self.device = patcher, patcher.model, patcher.load_device
        self._stack.enter_context(torch.inference_mode(False))
        self._stack.enter_context(torch.enable_grad())
        unet = self.base.diffusion_model
        as_normal_tensors(unet)
        for adapter in self.adapters.values():
            adapter.to(self.device)
        if self.checkpointing:
            for layer in checkpoint_layers(unet):
                layer.forward = _checkpointed(layer.forward)
                self._wrapped.append(layer)
        sigmas = patcher.get_model_object("model_sampling").sigmas.float().cpu()
        self.sigmas = sigmas
        self.alphas_cumprod = 1.0 / (1.0 + sigmas**2)
        self.transformer_options = dict(patcher.model_options.get("transformer_options", {}))
        return self

    def __exit__(self, *exc) -> None:
        for layer in self._wrapped:
            del layer.forward  # back to the class's forward
        self._wrapped.clear()
        ours = {id(a) for a in self.adapters.values()}
        for m in self.base.diffusion_model.modules():  # the UNet is shared with the input MODEL
            if getattr(m, "weight_function", None):
                m.weight_function = [f for f in m.weight_function if id(f) not in ours]
        self._stack.close()

    @property
    def dtype(self) -> torch.dtype:
        return self.base.get_dtype()

    def __call__(self, x_t, t, context, concat=None, y=None, control=None) -> torch.Tensor:
        sigma = self.sigmas[t.cpu()].to(self.device)
        scale = (1.0 + sigma**2).sqrt().view(-1, 1, 1, 1)
        x = x_t.to(self.device, torch.float32) * scale  # ComfyUI's noisy latent: x0 + sigma * eps
        extra = {} if y is None else {"y": y.to(self.device)}
        denoised = self.base.apply_model(
            x,
            sigma,
            c_concat=None if concat is None else concat.to(self.device),
            c_crossattn=context.to(self.device),
            control=control,
            transformer_options=dict(self.transformer_options),
            **extra,
        )
        return (x - denoised) / sigma.view(-1, 1, 1, 1)

    def denoised(self, x, sigma, context) -> torch.Tensor:
        """ComfyUI's ``x0`` prediction at noise level ``sigma`` for the noisy latent ``x`` (k-diffusion
        form, as the samplers call it), differentiable in ``x`` and ``context``."""
        s = torch.full((x.shape[0],), float(sigma), device=self.device)
        return self.base.apply_model(
            x.to(self.device),
            s,
            c_crossattn=context.to(self.device),
            transformer_options=dict(self.transformer_options),
        ).float()


# ---------------------------------------------------------------------------- LoRA weights
def find_target_linears(unet: torch.nn.Module, targets) -> dict[str, torch.nn.Linear]:
    """Linear layers whose qualified name ends with one of ``targets`` (e.g. "to_q", "attn2.to_k")."""
    targets = tuple(t.strip() for t in targets if t.strip())
    if not targets:
        raise ValueError("no LoRA target modules given: name some, e.g. to_q,to_k,to_v,to_out.0")
    found = {}
    for name, module in unet.named_modules():
        if any(name == t or name.endswith("." + t) for t in targets):
            if not isinstance(module, torch.nn.Linear):
                raise ValueError(
                    f"LoRA target '{name}' is a {type(module).__name__}; only Linear layers are supported"
                )
            found[name] = module
    if not found:
        raise ValueError(
            f"no layer of the UNet matches the LoRA targets {list(targets)}; "
            "use attention projection names such as to_q, to_k, to_v, to_out.0"
        )
    return found


def lora_adapters(model, targets, rank: int, alpha: float, seed: int) -> dict:
    """ComfyUI LoRA train modules for the target Linears of ``model``'s UNet, keyed by weight key.
    fp32 master weights, seeded: down ~ N(0, 1/rank) (peft's "gaussian"), up = 0, so training
    starts from the base model exactly."""
    if rank < 1:
        raise ValueError(f"LoRA rank must be at least 1, got {rank}")
    layers = find_target_linears(model.model.diffusion_model, targets)
    gen = torch.Generator().manual_seed(seed)
    adapters = {}
    with torch.inference_mode(False):  # nodes run in inference mode, whose tensors cannot train
        for name in sorted(layers):
            w = layers[name].weight
            down = torch.randn(rank, w.shape[1], generator=gen) / rank
            up = torch.zeros(w.shape[0], rank)
            diff = LoRAAdapter(set(), (up, down, float(alpha), None, None, None)).to_train().float()
            diff.lora_up.weight.requires_grad_(True)
            diff.lora_down.weight.requires_grad_(True)
            adapters[f"diffusion_model.{name}.weight"] = diff
    return adapters


def lora_parameters(adapters: dict) -> list[torch.Tensor]:
    return [
        p
        for key in sorted(adapters)
        for p in (adapters[key].lora_up.weight, adapters[key].lora_down.weight)
    ]


def lora_state_dict(adapters: dict) -> dict[str, torch.Tensor]:
    """Keys in ComfyUI's LoRA format (``comfy.lora.load_lora`` / core LoraLoader read them)."""
    sd = {}
    for key in sorted(adapters):
        name, diff = key.removesuffix(".weight"), adapters[key]
        sd[f"{name}.lora_up.weight"] = diff.lora_up.weight.detach().float().cpu().contiguous()
        sd[f"{name}.lora_down.weight"] = diff.lora_down.weight.detach().float().cpu().contiguous()
        sd[f"{name}.alpha"] = diff.alpha.detach().float().cpu().clone()
    return sd


# ---------------------------------------------------------------------------- resumable runs
class TrainingRun:
    """The resumable state of an unfinished run, ``output/poselab_lora_runs/<name>/state.safetensors``:
    written when a run stops early (cancel or error), read to resume, removed when the run ends.
    ``settings`` must match for a resume (the data and the schedule are part of the state)."""

    def __init__(self, name: str, settings: dict):
        self.dir = Path(folder_paths.get_output_directory()) / RUNS_DIR / name
        self.path = self.dir / "state.safetensors"
        self.settings = json.loads(strict_json(settings))

    def exists(self) -> bool:
        return self.path.is_file()

    def lora_file(self) -> str | None:
        from safetensors import safe_open

        with safe_open(str(self.path), "pt") as f:
            return (f.metadata() or {}).get("lora_file")

    def load(self) -> dict[str, torch.Tensor]:
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(self.path), "pt") as f:
            saved = json.loads((f.metadata() or {}).get("settings", "{}"))
        if saved != self.settings:
            diff = sorted(
                k for k in set(saved) | set(self.settings) if saved.get(k) != self.settings.get(k)
            )
            raise ValueError(
                f"the unfinished run in {self.dir} was started with other settings ({', '.join(diff)}): "
                "use the same ones to resume it, or turn resume off to start over"
            )
        return load_file(str(self.path))

    def save(self, state: dict[str, torch.Tensor], lora_file: str) -> None:
        from safetensors.torch import save_file

        meta = {"settings": json.dumps(self.settings), "lora_file": lora_file}
        atomic_write(self.path, lambda tmp: save_file(state, str(tmp), metadata=meta))

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.dir.rmdir()


# ---------------------------------------------------------------------------- LoRA training
def train_lora_on_data(
    model,
    data: lt.TrainData,
    rank: int,
    alpha: float,
    targets,
    cfg: lt.TrainConfig,
    out_path,
    meta: dict,
    progress=None,
    keep_checkpoints: int = 2,
    gradient_checkpointing: bool = False,
    run: TrainingRun | None = None,
    resume: bool = False,
) -> tuple[lt.TrainResult, dict]:
    """Train a LoRA for ``model``'s UNet on encoded data and write it (atomically) to ``out_path``
    in ComfyUI's LoRA format; every ``cfg.save_every`` steps a ``_stepNNNNNN`` checkpoint is written
    and only the newest ``keep_checkpoints`` are kept. With ``run``, a run stopped early (cancel)
    saves a checkpoint and its state, and ``resume`` continues it. Returns the result and the
    final LoRA state dict."""
    out_path = Path(out_path)
    adapters = lora_adapters(model, targets, rank, alpha, cfg.seed)
    params = lora_parameters(adapters)
    meta = dict(meta, rank=rank, alpha=alpha, targets=",".join(targets), steps=cfg.steps)
    keeper = CheckpointKeeper(out_path, keep_checkpoints)

    def save(step: int) -> str:
        final = step == cfg.steps
        path = out_path if final else step_checkpoint_path(out_path, step)
        save_lora(lora_state_dict(adapters), path, dict(meta, step=step))
        if not final:
            keeper.add(path)
        return str(path)

    def save_state(step: int, state: dict) -> None:
        path = save(step)
        run.save(state, out_path.name)
        log.info(
            "PoseLab: training stopped at step %d; saved %s and the run state in %s (resume continues it)",
            step,
            os.path.basename(path),
            run.dir,
        )

    def on_step(step: int, loss: float) -> None:
        if progress is not None:
            progress.step()
        check_interrupted()

    with FrozenDenoiser(model, adapters, gradient_checkpointing) as denoiser:
        state = (
            run.load() if run is not None and resume and run.exists() else None
        )  # normal tensors here
        fp16_cuda = denoiser.dtype == torch.float16 and denoiser.device.type == "cuda"
        if state is not None and progress is not None:
            progress.step(int(state["step"]))
        result = lt.train_lora(
            denoiser,
            params,
            data,
            denoiser.alphas_cumprod,
            cfg,
            device=denoiser.device,
            on_step=on_step,
            save_checkpoint=save,
            resume=state,
            save_state=save_state if run is not None else None,
            grad_scaler=fp16_cuda,
        )
    if run is not None:
        run.clear()
    return result, lora_state_dict(adapters)
