"""Time per IP2P edit: PoseLabIP2PEdit vs the equivalent graph of core nodes, in one run.

Both sides run in this process on the same loaded checkpoint, same image, seed, sampler and steps:

* equal work (2 UNet rows per step): ours with image_guidance 1.0 (DualCFG then drops the
  image-free branch, like core) vs core ``InstructPixToPixConditioning`` + ``KSampler`` (cfg = text
  guidance) + ``VAEDecode``;
* dual guidance (3 rows per step): ours with image_guidance 1.5 vs core
  ``InstructPixToPixConditioning`` + ``DualCFGGuider`` + ``SamplerCustomAdvanced`` + ``VAEDecode``.

The checkpoint is built at run time with random weights (tests/tiny_checkpoints.py), 320 channels
wide with 768-context attention so ComfyUI detects it as SD1.5-InstructPix2Pix (printed):
``--arch cpu`` (default) has 2 levels with attention only at the half-resolution level, which makes
512x512 / 20 steps a few minutes on a CPU; ``one-level`` puts attention at the latent's full
resolution (4096 tokens at 512 px: ~50 s per step on a 2-core CPU); ``full`` (or ``--full``) builds
the full SD1.5 architecture (channel_mult 1,2,4,4, 2 res blocks, middle block; ~860M parameters).

    python bench/bench_ip2p.py                      # 512x512, 20 steps, the CPU architecture
    python bench/bench_ip2p.py --full --repeats 5   # full SD1.5 architecture (use a GPU)

Measured 2026-11-23 on the 2-core CPU (no GPU lent), 512x512, 20 steps, dpmpp_2m/karras, median of
2 interleaved runs: ours 28.6 s vs core InstructPixToPixConditioning + KSampler 29.9 s per edit
(ratio 0.96); dual guidance ours 42.1 s vs core DualCFGGuider 42.3 s (1.00). The outputs of ours
and core DualCFG are bit-identical: both run the same core sampler, and the node adds no
measurable cost around it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PACK = Path(__file__).resolve().parent.parent

# name -> (description, tests/tiny_checkpoints.py arguments). All are 320 channels wide with a
# 768-context transformer, so ComfyUI detects them as SD1.5-InstructPix2Pix like a real file.
ARCHS = {
    # 2 levels, attention only at the half-resolution level: 512x512 / 20 steps fits a CPU run
    "cpu": (
        "SD1.5-width UNet, 2 levels, attention at 1/16 res",
        ("--channel-mult", "1,1", "--depth", "0,1"),
    ),
    "one-level": ("SD1.5-width UNet, 1 level with attention at 1/8 res", ()),
    "full": (
        "full SD1.5 UNet architecture (~860M parameters)",
        ("--channel-mult", "1,2,4,4", "--res-blocks", "2", "--depth", "1,1,1,0", "--middle"),
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--arch",
        choices=sorted(ARCHS),
        default="cpu",
        help="UNet built for the bench (ignored with --ckpt); see the module docstring",
    )
    ap.add_argument("--full", action="store_true", help="same as --arch full")
    ap.add_argument("--ckpt", help="use this IP2P checkpoint instead of building one")
    a = ap.parse_args()
    arch = "full" if a.full else a.arch

    sys.path.insert(0, str(PACK / "tests"))
    sys.path.insert(0, str(PACK / "scripts"))
    import comfy_host
    import tiny_checkpoints

    root = comfy_host.provision()
    ckpt = a.ckpt
    tmp = None
    if ckpt is None:
        tmp = tempfile.TemporaryDirectory(prefix="poselab-bench-")
        name = tiny_checkpoints.ensure_checkpoint(
            tmp.name, "ip2p", seed=0, extra_args=ARCHS[arch][1]
        )
        ckpt = os.path.join(tmp.name, name)

    sys.path.insert(0, str(root))
    import torch

    import comfy.cli_args

    comfy.cli_args.args.cpu = not torch.cuda.is_available()
    sys.path.insert(0, str(PACK / "scripts"))
    import pack  # noqa: F401  (the repo root as the package poselab, as ComfyUI imports it)

    import comfy.model_management as mm
    import comfy.sd
    import nodes as core
    from comfy_extras.nodes_custom_sampler import (
        BasicScheduler,
        DualCFGGuider,
        KSamplerSelect,
        RandomNoise,
        SamplerCustomAdvanced,
    )
    from comfy_extras.nodes_ip2p import InstructPixToPixConditioning

    from poselab.nodes.ip2p import IP2PEdit

    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(
        ckpt, output_vae=True, output_clip=True
    )
    device = mm.get_torch_device()
    torch.manual_seed(0)
    image = torch.rand(1, a.size, a.size, 3)
    text, neg = "make the person raise both arms", "blurry"
    sampler, scheduler, seed, tg = "dpmpp_2m", "karras", 42, 7.5

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def ours(ig):
        return IP2PEdit.execute(
            model, clip, vae, image, text, neg, tg, ig, sampler, scheduler, a.steps, seed
        ).args[0]

    def core_ksampler():
        pos = core.CLIPTextEncode().encode(clip, text)[0]
        n = core.CLIPTextEncode().encode(clip, neg)[0]
        p, nn_, latent = InstructPixToPixConditioning.execute(pos, n, image, vae).args
        out = core.common_ksampler(model, seed, a.steps, tg, sampler, scheduler, p, nn_, latent)[0]
        return vae.decode(out["samples"])

    def core_dualcfg(ig):
        pos = core.CLIPTextEncode().encode(clip, text)[0]
        n = core.CLIPTextEncode().encode(clip, neg)[0]
        p, nn_, latent = InstructPixToPixConditioning.execute(pos, n, image, vae).args
        guider = DualCFGGuider.execute(model, p, nn_, n, tg, ig, "regular").args[0]
        smp = KSamplerSelect.execute(sampler).args[0]
        sig = BasicScheduler.execute(model, scheduler, a.steps, 1.0).args[0]
        noise = RandomNoise.execute(seed).args[0]
        out = SamplerCustomAdvanced.execute(noise, guider, smp, sig, latent).args[0]
        return vae.decode(out["samples"])

    cases = {
        "ours (image_guidance 1.0)": lambda: ours(1.0),
        "core IP2PConditioning+KSampler": core_ksampler,
        "ours (image_guidance 1.5)": lambda: ours(1.5),
        "core IP2PConditioning+DualCFGGuider": lambda: core_dualcfg(1.5),
    }
    times = {k: [] for k in cases}
    with torch.inference_mode():
        outs = {k: f() for k, f in cases.items()}  # warm-up (loads, caches, kernels)
        for _ in range(a.repeats):
            for k, f in cases.items():  # interleaved so that machine load hits both sides alike
                sync()
                t = time.perf_counter()
                f()
                sync()
                times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"ComfyUI detected {type(model.model.model_config).__name__}")
    print(
        f"device {device}, {ARCHS[arch][0] if a.ckpt is None else a.ckpt}, {a.size}x{a.size}, {a.steps} steps, {sampler}/{scheduler}, "
        f"median of {a.repeats}:"
    )
    for k, v in med.items():
        print(f"  {k:40s} {v:8.3f} s/edit")
    r1 = med["ours (image_guidance 1.0)"] / med["core IP2PConditioning+KSampler"]
    r2 = med["ours (image_guidance 1.5)"] / med["core IP2PConditioning+DualCFGGuider"]
    same = float(
        (outs["ours (image_guidance 1.5)"] - outs["core IP2PConditioning+DualCFGGuider"])
        .abs()
        .max()
    )
    print(f"ratio ours/core (2-branch CFG): {r1:.3f}")
    print(f"ratio ours/core (dual CFG):     {r2:.3f}")
    print(
        f"max |ours - core DualCFG| pixel difference: {same:.2e} (same sampler, seed and guidance)"
    )
    if tmp is not None:
        tmp.cleanup()
    os._exit(0)  # skip ComfyUI's teardown noise


if __name__ == "__main__":
    main()
