"""Tiny SD1.5 / SD1.5-InstructPix2Pix checkpoints in the real single-file format, built at test time.

ComfyUI detects the architecture from key names and shapes only (docs: ../shared/design/
feasibility.md §3): ``model_channels`` 320, ``context_dim`` 768, a convolutional ``proj_in``, no
``label_emb``. Depth is free, so a 1-level, 1-res-block UNet without a middle block (18.7M
parameters) is detected as SD15, and the same UNet with 8 input channels as SD15_instructpix2pix.
The VAE is TAESD (``first_stage_model.taesd_*``, 2.45M parameters) and the text encoder is the
full 123M CLIP-L, because the HTTP ``CheckpointLoaderSimple`` route cannot shrink it. Weights are
seeded random (fp16, ~288 MB per file).

The build runs in a subprocess (``python tests/tiny_checkpoints.py OUT --kind ip2p``) so that the
test process never imports ComfyUI's ``comfy`` package and the 123M-parameter build is freed.
A wider variant (``--channel-mult 1,2,4,4 --res-blocks 2 --depth 1 --middle``) gives the
full-size SD1.5 architecture for benchmarks.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

KINDS = {"sd15": 4, "ip2p": 8, "controlnet": 4}
FILENAMES = {"sd15": "poselab_tiny_sd15.safetensors", "ip2p": "poselab_tiny_ip2p.safetensors",
             "controlnet": "poselab_tiny_controlnet.safetensors"}


def comfy_root() -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import comfy_host

    return comfy_host.provision()


def ensure_checkpoint(folder: os.PathLike, kind: str, seed: int = 0, filename: str | None = None,
                      extra_args: tuple[str, ...] = ()) -> str:
    """Build ``kind`` ("sd15" or "ip2p") into ``folder`` unless it is already there; returns the file name."""
    if kind not in KINDS:
        raise ValueError(f"unknown tiny checkpoint kind {kind!r}; use one of {sorted(KINDS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = filename or FILENAMES[kind]
    if not (folder / name).is_file():
        subprocess.run(
            [sys.executable, __file__, str(folder / name), "--kind", kind, "--seed", str(seed), *extra_args],
            check=True,
        )
    return name


# ---------------------------------------------------------------------------- build (subprocess)
def _init_weights(state: dict, seed: int) -> dict:
    """Seeded weights with sane scales: fan-in normal for matrices/convs, ones for norm gains."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(state):
        t = state[key]
        if not t.is_floating_point():
            out[key] = t.clone()
            continue
        leaf = key.rsplit(".", 1)[-1]
        if t.ndim >= 2:
            w = torch.randn(t.shape, generator=gen) / t[0].numel() ** 0.5
        elif leaf == "weight":  # every 1-D weight in this UNet is a GroupNorm/LayerNorm gain
            w = torch.ones(t.shape)
        else:
            w = torch.randn(t.shape, generator=gen) * 0.02
        out[key] = w
    return out


def build(out: Path, kind: str, seed: int = 0, channel_mult=(1,), res_blocks: int = 1, depth=1,
          middle: bool = False) -> None:
    """``depth``: transformer blocks per level, one int for all levels or one per level (0 = no
    attention at that level, as SDXL does at its first; ComfyUI still detects SD1.5 as long as
    some level has a 768-context transformer)."""
    import torch

    root = comfy_root()
    sys.path.insert(0, str(root))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # the torch build may be CUDA-enabled on a machine without a GPU
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from comfy.taesd.taesd import TAESD
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    levels = len(channel_mult)
    depths = [depth] * levels if isinstance(depth, int) else list(depth)
    if len(depths) != levels:
        raise ValueError(f"depth needs one entry per level ({levels}), got {depths}")
    mid_depth = max(depths)
    if kind == "controlnet":  # an SD1.5 ControlNet (original "control_model." format) for the same UNet
        from comfy.cldm.cldm import ControlNet

        net = ControlNet(
            image_size=32, in_channels=4, model_channels=320, hint_channels=3,
            num_res_blocks=[res_blocks] * levels, channel_mult=list(channel_mult),
            transformer_depth=depths, transformer_depth_middle=mid_depth if middle else -1,
            use_spatial_transformer=True, context_dim=768, num_heads=8, num_head_channels=-1,
            use_linear_in_transformer=False, legacy=False, operations=comfy.ops.disable_weight_init,
        )
        sd = {f"control_model.{k}": v.to(torch.float16).contiguous()
              for k, v in _init_weights(net.state_dict(), seed + 3).items()}
        tmp = out.with_name(out.name + ".partial")
        save_file(sd, str(tmp), metadata={"poselab": f"tiny controlnet seed {seed}"})
        os.replace(tmp, out)
        return
    unet = UNetModel(
        image_size=32, in_channels=KINDS[kind], model_channels=320, out_channels=4,
        num_res_blocks=[res_blocks] * levels, channel_mult=list(channel_mult),
        transformer_depth=depths, transformer_depth_output=[d for d in depths for _ in range(res_blocks + 1)],
        transformer_depth_middle=mid_depth if middle else -2, use_spatial_transformer=True, context_dim=768,
        num_heads=8, num_head_channels=-1, use_linear_in_transformer=False, legacy=False,
        operations=comfy.ops.disable_weight_init,
    )
    sd = {f"model.diffusion_model.{k}": v for k, v in _init_weights(unet.state_dict(), seed).items()}
    del unet
    taesd = TAESD()  # comfy ops skip init: fill it like the UNet
    taesd.load_state_dict(_init_weights(taesd.state_dict(), seed + 1))
    with torch.no_grad():  # scale so that latents of natural-range images have unit spread, like SD's 0.18215
        probe = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        taesd.vae_scale.fill_(float(taesd.taesd_encoder(probe * 0.5 + 0.5).std()))
    for k, v in taesd.state_dict().items():
        sd[f"first_stage_model.{k}"] = v.clone()
    torch.manual_seed(seed + 2)
    clip = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12))  # CLIP-L text tower
    for k, v in clip.state_dict().items():
        if k.endswith("position_ids"):
            continue
        sd[f"cond_stage_model.transformer.{k}"] = v
    del clip
    sd = {k: v.to(torch.float16).contiguous() for k, v in sd.items()}
    tmp = out.with_name(out.name + ".partial")
    save_file(sd, str(tmp), metadata={"poselab": f"tiny {kind} seed {seed}"})
    os.replace(tmp, out)  # never leave a half-written checkpoint where ComfyUI would list it


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--kind", choices=sorted(KINDS), default="sd15")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channel-mult", default="1")
    ap.add_argument("--res-blocks", type=int, default=1)
    ap.add_argument("--depth", default="1", help="transformer depth, one for all levels or comma-separated per level")
    ap.add_argument("--middle", action="store_true")
    a = ap.parse_args()
    build(a.out, a.kind, a.seed, tuple(int(c) for c in a.channel_mult.split(",")), a.res_blocks,
          [int(d) for d in a.depth.split(",")] if "," in a.depth else int(a.depth), a.middle)
    os._exit(0)  # skip ModelPatcher/atexit teardown noise from the comfy import


if __name__ == "__main__":
    main()
