"""ComfyUI's own SD1.5 ControlNet on fixed inputs, the reference for the Stable-Pose adapter's encoder.

Run in a subprocess (``python tests/stable_pose_reference.py OUT.safetensors``) so that the test
process never imports ComfyUI's ``comfy`` package. It builds a small ``comfy.cldm.cldm.ControlNet``
(SD1.5 width: 320 channels, 768-context attention; 2 levels, attention at the first only, middle
block with attention), fills it with seeded random weights, zeroes the last conv of
``input_hint_block`` so the hint adds nothing (the adapter has no hint at the input conv), runs it
once and saves into one safetensors file:

* ``sd.<key>``: the ControlNet's state dict (the adapter loads the keys it shares);
* ``in.x``, ``in.hint``, ``in.timesteps``, ``in.context``: the inputs;
* ``out.output.<i>``, ``out.middle.<i>``: ComfyUI's residuals.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_checkpoints  # noqa: E402  (comfy_root() and the seeded weight filler)

CONFIG = dict(
    image_size=32,
    in_channels=4,
    model_channels=320,
    hint_channels=3,
    num_res_blocks=[1, 1],
    channel_mult=[1, 2],
    transformer_depth=[1, 0],
    transformer_depth_middle=1,
    use_spatial_transformer=True,
    context_dim=768,
    num_heads=8,
    num_head_channels=-1,
    use_linear_in_transformer=False,
    legacy=False,
)
LATENT = (16, 16)  # 128x128 pose image
BATCH = 2


def build(out: Path, seed: int = 0) -> None:
    import torch

    sys.path.insert(0, str(tiny_checkpoints.comfy_root()))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # the torch build may be CUDA-enabled on a machine without a GPU
    from safetensors.torch import save_file

    import comfy.ops
    from comfy.cldm.cldm import ControlNet

    torch.set_grad_enabled(False)
    net = ControlNet(**CONFIG, operations=comfy.ops.disable_weight_init).float().eval()
    sd = tiny_checkpoints._init_weights(net.state_dict(), seed)
    # The zero convs get random weights too (ComfyUI's ops leave them uninitialised): with zeros
    # the comparison would only check that both sides output zeros.
    last = max(
        int(k.split(".")[1])
        for k in sd
        if k.startswith("input_hint_block.") and k.endswith(".weight")
    )
    for leaf in ("weight", "bias"):
        sd[f"input_hint_block.{last}.{leaf}"] = torch.zeros_like(
            sd[f"input_hint_block.{last}.{leaf}"]
        )
    net.load_state_dict(sd)

    gen = torch.Generator().manual_seed(seed + 1)
    h, w = LATENT
    inputs = {
        "x": torch.randn(BATCH, 4, h, w, generator=gen),
        "hint": torch.rand(BATCH, 3, 8 * h, 8 * w, generator=gen),
        "timesteps": torch.tensor([17.0, 803.0]),
        "context": torch.randn(BATCH, 77, 768, generator=gen),
    }
    res = net(inputs["x"], inputs["hint"], inputs["timesteps"], inputs["context"])
    tensors = {f"sd.{k}": v.contiguous() for k, v in sd.items()}
    tensors.update({f"in.{k}": v.contiguous() for k, v in inputs.items()})
    for kind in ("output", "middle"):
        for i, t in enumerate(res[kind]):
            tensors[f"out.{kind}.{i}"] = t.contiguous()
    tmp = out.with_name(out.name + ".partial")
    save_file(tensors, str(tmp))
    os.replace(tmp, out)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    build(a.out, a.seed)
    os._exit(0)  # skip ModelPatcher/atexit teardown noise from the comfy import


if __name__ == "__main__":
    main()
