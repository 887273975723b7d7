"""nodes/training.py's frozen denoiser on a real ComfyUI UNet (the tiny SD1.5 checkpoint), in a
subprocess that imports ComfyUI: the loaded weights are trained through without a copy, LoRA
gradients reach the adapters, and gradient checkpointing really drops the saved activations
(ComfyUI calls the UNet's layers one by one, so wrapping the wrong modules silently does nothing)
while giving the same gradients."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tiny_checkpoints  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[2])
import comfy_cli
comfy_cli.import_comfy_and_pack(None)
import torch, comfy.sd
from poselab.nodes.training import FrozenDenoiser, lora_adapters, lora_parameters

with torch.inference_mode():
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(sys.argv[1])
    weights = {id(p) for p in model.model.diffusion_model.parameters()}
    first = next(model.model.diffusion_model.parameters())
    out = {"inference_before": first.is_inference()}
    for mode in (False, True):
        adapters = lora_adapters(model, ["to_k", "to_v"], 2, 2.0, 0)
        for a in adapters.values():  # a non-zero LoRA so that every factor gets a gradient
            torch.nn.init.normal_(a.lora_up.weight, std=0.1, generator=torch.Generator().manual_seed(1))
        with FrozenDenoiser(model, adapters, gradient_checkpointing=mode) as d:
            saved = []
            g = torch.Generator().manual_seed(0)
            x, ctx = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 77, 768, generator=g)
            with torch.autograd.graph.saved_tensors_hooks(lambda t: (saved.append(t.numel()), t)[1], lambda t: t):
                eps = d(x, torch.tensor([100, 700]), ctx)
            eps.pow(2).mean().backward()
            out[f"saved_{mode}"] = sum(saved)
            out[f"grads_{mode}"] = [float(p.grad.abs().sum()) for p in lora_parameters(adapters)]
            out["frozen"] = not any(p.requires_grad for p in d.base.diffusion_model.parameters())
            out["normal"] = not any(p.is_inference() for p in d.base.diffusion_model.parameters())
            out["size_kept"] = sum(p.numel() for p in d.base.diffusion_model.parameters()) == sum(
                p.numel() for p in model.model.diffusion_model.parameters())
        out["unpatched_after"] = not any(getattr(m, "weight_function", None) for m in model.model.diffusion_model.modules())
print(json.dumps(out))
"""


def test_frozen_denoiser_trains_through_the_loaded_unet_and_checkpointing_saves_memory(
    tmp_path_factory,
):
    folder = tmp_path_factory.mktemp("ckpt")
    ckpt = folder / tiny_checkpoints.ensure_checkpoint(folder, "sd15")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ckpt), str(REPO / "scripts")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["inference_before"]  # ComfyUI loaded the weights as inference tensors
    assert out["normal"] and out["frozen"] and out["size_kept"]
    assert out["unpatched_after"]  # the LoRA wrappers leave the shared UNet when training ends
    assert all(g > 0 for g in out["grads_False"])
    assert out["grads_True"] == out["grads_False"]  # checkpointing recomputes the same gradients
    assert out["saved_True"] < 0.5 * out["saved_False"], out  # ... and keeps far fewer activations
