"""Tiny SD1.5 / SD1.5-InstructPix2Pix / SDXL checkpoints in the real single-file format, built at test time.

ComfyUI detects the architecture from key names and shapes only (docs: ../shared/design/
feasibility.md §3).

* SD1.5: ``model_channels`` 320, ``context_dim`` 768, a convolutional ``proj_in``, no
  ``label_emb``. Depth is free, so a 1-level, 1-res-block UNet without a middle block (18.7M
  parameters) is detected as SD15, and the same UNet with 8 input channels as
  SD15_instructpix2pix. ``sd15_layout`` is a 2-level, 2-res-block UNet whose decoder has SD1.5's
  shape at the top: a first level without attention, then three attention blocks
  (``output_blocks.3-5``), so OnePoseTrans's layout block ``output_blocks.4.1`` exists.
* SDXL: ``context_dim`` 2048, ``adm_in_channels`` 2816 (``label_emb``), linear ``proj_in``, 64
  channels per head, and an exact per-res-block transformer depth list. The tiny one uses
  ``[0, 0, 1, 1, 2, 2]`` at 320 channels on all three levels: ComfyUI's ``Segmind_Vega`` entry, an
  SDXL-family config whose model class is ``model_base.SDXL`` (SDXL conditioning, latent format,
  text encoders and block names: ``output_blocks.0/1`` are ``up_blocks.0.attentions.0/1``).
  ``--depth 0,2,10 --channel-mult 1,2,4 --res-blocks 2 --middle`` is real SDXL (2.6B).

The VAE is TAESD (``first_stage_model.taesd_*``, 2.45M parameters) and the text encoders are full
size (CLIP-L 123M; SDXL adds OpenCLIP bigG 695M in its original key format), because the HTTP
``CheckpointLoaderSimple`` route cannot shrink them. Weights are seeded random fp16 (~288 MB per
SD1.5 file, ~1.8 GB for tiny SDXL); they are generated tensor by tensor in fp16 (the model is
built on the meta device), so a full-size SDXL build needs about its file size in memory.

The build runs in a subprocess (``python tests/tiny_checkpoints.py OUT --kind ip2p``) so that the
test process never imports ComfyUI's ``comfy`` package and the large builds are freed. The
full-size SD1.5 architecture: ``--channel-mult 1,2,4,4 --res-blocks 2 --depth 1,1,1,0 --middle``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

KINDS = {"sd15": 4, "ip2p": 8, "controlnet": 4, "sd15_layout": 4, "sdxl": 4, "controlnet_sdxl": 4}
FILENAMES = {
    "sd15": "poselab_tiny_sd15.safetensors",
    "ip2p": "poselab_tiny_ip2p.safetensors",
    "controlnet": "poselab_tiny_controlnet.safetensors",
    "sd15_layout": "poselab_tiny_sd15_layout.safetensors",
    "sdxl": "poselab_tiny_sdxl.safetensors",
    "controlnet_sdxl": "poselab_tiny_controlnet_sdxl.safetensors",
}
# the architecture of each kind unless the command line says otherwise
SHAPES = {
    "sd15_layout": ("--channel-mult", "1,1", "--res-blocks", "2", "--depth", "1,0"),
    "sdxl": ("--channel-mult", "1,1,1", "--res-blocks", "2", "--depth", "0,1,2"),
    "controlnet_sdxl": ("--channel-mult", "1,1,1", "--res-blocks", "2", "--depth", "0,1,2"),
}


def comfy_root() -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import comfy_host

    return comfy_host.provision()


def ensure_checkpoint(
    folder: os.PathLike,
    kind: str,
    seed: int = 0,
    filename: str | None = None,
    extra_args: tuple[str, ...] = (),
) -> str:
    """Build ``kind`` (a key of KINDS) into ``folder`` unless it is already there; returns the file name."""
    if kind not in KINDS:
        raise ValueError(f"unknown tiny checkpoint kind {kind!r}; use one of {sorted(KINDS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = filename or FILENAMES[kind]
    if not (folder / name).is_file():
        subprocess.run(
            [
                sys.executable,
                __file__,
                str(folder / name),
                "--kind",
                kind,
                "--seed",
                str(seed),
                *(extra_args or SHAPES.get(kind, ())),
            ],
            check=True,
        )
    return name


# ---------------------------------------------------------------------------- build (subprocess)
def _init_weights(state: dict, seed: int, dtype=None) -> dict:
    """Seeded weights with sane scales: fan-in normal for matrices/convs, ones for norm gains.
    ``state`` may hold meta tensors (only shapes are read); each tensor is made in fp32 and cast
    to ``dtype`` (default fp32) at once, so the peak is one fp32 tensor."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(state):
        t = state[key]
        if not t.is_floating_point():
            out[key] = t.clone() if t.device.type != "meta" else torch.zeros(t.shape, dtype=t.dtype)
            continue
        leaf = key.rsplit(".", 1)[-1]
        if t.ndim >= 2:
            w = torch.randn(t.shape, generator=gen) / t[0].numel() ** 0.5
        elif leaf in ("weight", "logit_scale") or leaf.startswith(
            "ln_"
        ):  # GroupNorm/LayerNorm gains
            w = torch.ones(t.shape)
        else:
            w = torch.randn(t.shape, generator=gen) * 0.02
        out[key] = w.to(dtype or torch.float32)
    return out


def _openclip_bigg_shapes() -> dict:
    """SDXL's second text encoder (OpenCLIP ViT-bigG text tower) in its original checkpoint keys."""
    import torch

    width, layers, vocab, ctx = 1280, 32, 49408, 77
    shapes = {
        "positional_embedding": (ctx, width),
        "token_embedding.weight": (vocab, width),
        "ln_final.weight": (width,),
        "ln_final.bias": (width,),
        "text_projection": (width, width),
        "logit_scale": (),
    }
    for i in range(layers):
        b = f"transformer.resblocks.{i}."
        shapes.update(
            {
                b + "ln_1.weight": (width,),
                b + "ln_1.bias": (width,),
                b + "ln_2.weight": (width,),
                b + "ln_2.bias": (width,),
                b + "attn.in_proj_weight": (3 * width, width),
                b + "attn.in_proj_bias": (3 * width,),
                b + "attn.out_proj.weight": (width, width),
                b + "attn.out_proj.bias": (width,),
                b + "mlp.c_fc.weight": (4 * width, width),
                b + "mlp.c_fc.bias": (4 * width,),
                b + "mlp.c_proj.weight": (width, 4 * width),
                b + "mlp.c_proj.bias": (width,),
            }
        )
    return {k: torch.empty(v, device="meta") for k, v in shapes.items()}


def build(
    out: Path,
    kind: str,
    seed: int = 0,
    channel_mult=(1,),
    res_blocks: int = 1,
    depth=1,
    middle: bool = False,
) -> None:
    """``depth``: transformer blocks per level, one int for all levels or one per level (0 = no
    attention at that level, as SDXL does at its first; ComfyUI still detects SD1.5 as long as
    some level has a 768-context transformer)."""
    import torch

    root = comfy_root()
    sys.path.insert(0, str(root))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # the torch build may be CUDA-enabled on a machine without a GPU
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    import comfy.ops
    from comfy.taesd.taesd import TAESD

    levels = len(channel_mult)
    depths = [depth] * levels if isinstance(depth, int) else list(depth)
    if len(depths) != levels:
        raise ValueError(f"depth needs one entry per level ({levels}), got {depths}")
    mid_depth = max(depths)
    per_input = [
        d for d in depths for _ in range(res_blocks)
    ]  # ComfyUI: one depth per input res block
    sdxl = kind in ("sdxl", "controlnet_sdxl")
    if kind.startswith(
        "controlnet"
    ):  # a ControlNet (original "control_model." format) for the same UNet
        from comfy.cldm.cldm import ControlNet

        net = ControlNet(
            image_size=32,
            in_channels=4,
            model_channels=320,
            hint_channels=3,
            num_res_blocks=[res_blocks] * levels,
            channel_mult=list(channel_mult),
            transformer_depth=per_input,
            transformer_depth_middle=mid_depth if middle else -1,
            use_spatial_transformer=True,
            context_dim=2048 if sdxl else 768,
            num_heads=-1 if sdxl else 8,
            num_head_channels=64 if sdxl else -1,
            use_linear_in_transformer=sdxl,
            legacy=False,
            adm_in_channels=2816 if sdxl else None,
            num_classes="sequential" if sdxl else None,
            operations=comfy.ops.disable_weight_init,
        )
        sd = {
            f"control_model.{k}": v.to(torch.float16).contiguous()
            for k, v in _init_weights(net.state_dict(), seed + 3).items()
        }
        tmp = out.with_name(out.name + ".partial")
        save_file(sd, str(tmp), metadata={"poselab": f"tiny controlnet seed {seed}"})
        os.replace(tmp, out)
        return
    unet = unet_shapes(kind, channel_mult, res_blocks, depths, middle)
    sd = {
        f"model.diffusion_model.{k}": v for k, v in _init_weights(unet, seed, torch.float16).items()
    }
    taesd = TAESD()  # comfy ops skip init: fill it like the UNet
    taesd.load_state_dict(_init_weights(taesd.state_dict(), seed + 1))
    with (
        torch.no_grad()
    ):  # scale so that latents of natural-range images have unit spread, like SD's 0.18215
        probe = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        taesd.vae_scale.fill_(float(taesd.taesd_encoder(probe * 0.5 + 0.5).std()))
    for k, v in taesd.state_dict().items():
        sd[f"first_stage_model.{k}"] = v.to(torch.float16).clone()
    torch.manual_seed(seed + 2)
    clip = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12
        )
    )  # CLIP-L text tower
    for k, v in clip.state_dict().items():
        if k.endswith("position_ids"):
            continue
        if sdxl:  # SDXL checkpoints' key format (transformers >= 5 drops the text_model. level)
            k = (
                "conditioner.embedders.0.transformer."
                + ("" if k.startswith("text_model.") else "text_model.")
                + k
            )
        else:
            k = "cond_stage_model.transformer." + k
        sd[k] = v.to(torch.float16)
    del clip
    if sdxl:  # OpenCLIP bigG, as SDXL checkpoints store it
        for k, v in _init_weights(_openclip_bigg_shapes(), seed + 4, torch.float16).items():
            sd[f"conditioner.embedders.1.model.{k}"] = v
    sd = {k: v.contiguous() for k, v in sd.items()}
    tmp = out.with_name(out.name + ".partial")
    save_file(sd, str(tmp), metadata={"poselab": f"tiny {kind} seed {seed}"})
    os.replace(tmp, out)  # never leave a half-written checkpoint where ComfyUI would list it


def unet_shapes(kind: str, channel_mult, res_blocks: int, depths: list[int], middle: bool) -> dict:
    """The UNet's state dict on the meta device (shapes only), as ComfyUI's UNetModel builds it."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    levels, sdxl = len(channel_mult), kind == "sdxl"
    # ComfyUI takes one depth per input res block and one per output block (level order)
    unet = UNetModel(
        image_size=32,
        in_channels=KINDS[kind],
        model_channels=320,
        out_channels=4,
        num_res_blocks=[res_blocks] * levels,
        channel_mult=list(channel_mult),
        transformer_depth=[d for d in depths for _ in range(res_blocks)],
        transformer_depth_output=[d for d in depths for _ in range(res_blocks + 1)],
        transformer_depth_middle=max(depths) if middle else -2,
        use_spatial_transformer=True,
        context_dim=2048 if sdxl else 768,
        num_heads=-1 if sdxl else 8,
        num_head_channels=64 if sdxl else -1,
        use_linear_in_transformer=sdxl,
        legacy=False,
        adm_in_channels=2816 if sdxl else None,
        num_classes="sequential" if sdxl else None,
        operations=comfy.ops.disable_weight_init,
        device="meta",
    )
    return unet.state_dict()


def describe(kind: str, channel_mult, res_blocks: int, depth, middle: bool) -> dict:
    """What ComfyUI's detector makes of a build, without building it: config, model class, size."""
    sys.path.insert(0, str(comfy_root()))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.model_detection

    depths = [depth] * len(channel_mult) if isinstance(depth, int) else list(depth)
    sd = {
        f"model.diffusion_model.{k}": v
        for k, v in unet_shapes(kind, channel_mult, res_blocks, depths, middle).items()
    }
    config = comfy.model_detection.model_config_from_unet(sd, "model.diffusion_model.")
    base = config.get_model({}, "model.diffusion_model.", device="meta") if config else None
    return {
        "config": type(config).__name__ if config else None,
        "model_class": type(base).__name__ if base is not None else None,
        "unet_parameters": sum(v.numel() for v in sd.values()),
        "transformer_depth": config.unet_config.get("transformer_depth") if config else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out", type=Path)
    ap.add_argument("--kind", choices=sorted(KINDS), default="sd15")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channel-mult", default="1")
    ap.add_argument("--res-blocks", type=int, default=1)
    ap.add_argument(
        "--depth",
        default="1",
        help="transformer depth, one for all levels or comma-separated per level "
        "(0 = no attention at that level)",
    )
    ap.add_argument("--middle", action="store_true")
    ap.add_argument(
        "--describe",
        action="store_true",
        help="print what ComfyUI detects (JSON) instead of building; OUT is ignored",
    )
    a = ap.parse_args()
    args = (
        a.kind,
        tuple(int(c) for c in a.channel_mult.split(",")),
        a.res_blocks,
        [int(d) for d in a.depth.split(",")] if "," in a.depth else int(a.depth),
        a.middle,
    )
    if a.describe:
        import json

        print(json.dumps(describe(*args)), flush=True)
    else:
        build(a.out, args[0], a.seed, *args[1:])
    os._exit(0)  # skip ModelPatcher/atexit teardown noise from the comfy import


if __name__ == "__main__":
    main()
