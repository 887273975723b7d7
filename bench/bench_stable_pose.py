"""Stable-Pose adapter cost: forward (no grad) and forward + backward (adapter parameters only)
against ComfyUI's plain SD1.5 ControlNet (``comfy.cldm.cldm.ControlNet``, the obvious
alternative) on the same inputs, plus the pose-mask computation alone. Both are full SD1.5 size
(``StablePoseConfig()`` defaults, ~365M parameters; the ControlNet ~361M) with random weights,
measured interleaved in this one run; prints a table and the ratios Stable-Pose / ControlNet.

    python bench/bench_stable_pose.py                        # 512x512 (64x64 latent), batch 2, CPU
    python bench/bench_stable_pose.py --size 256             # quicker CPU run
    python bench/bench_stable_pose.py --device cuda --repeats 10

Both sides use PyTorch's scaled_dot_product_attention (ComfyUI is told
``--use-pytorch-cross-attention``; on a CPU it would otherwise pick sub-quadratic attention,
``--comfy-attention default`` keeps that), so the ratio is the architectures' and not the
attention kernels'. Stable-Pose's extra work over a ControlNet: the pose feature extractor (vs the
ControlNet's hint block), the PMSA-ViT (1024 tokens at 512 px, 2 layers) inside input block 1,
and the masks (two Gaussian blurs of the pose image).

Measured 2026-11-23 on the 2-core CPU (no GPU lent), float32, batch 2, wall seconds, each line one
run of this script (other jobs were idle; repeats of the same run moved ratios by ~0.1):

| size | forward SP / CN | ratio | forward+backward SP / CN | ratio | masks alone |
|---|---|---|---|---|---|
| 256 (median of 2) | 1.41 / 1.13 s | 1.24x | 4.49 / 4.01 s | 1.12x | 12 ms |
| 512 (median of 2, --forward-only) | 4.86 / 4.42 s | 1.10x | - | - | 49 ms |
| 512 (--repeats 1) | 4.33 / 3.56 s | 1.22x | 17.5 / 13.5 s | 1.30x | 40 ms |

So the adapter costs ~1.1-1.3x a ControlNet of the same size, and its masks ~1% of a ControlNet
forward (computed once per call: a sampler could reuse them across steps).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def fill_random_(model, seed: int) -> None:
    """Seeded weights with sane scales (ComfyUI's ops leave weights uninitialised, and stray
    denormals or NaNs in uninitialised memory would distort CPU timings)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) / p[0].numel() ** 0.5)
            elif name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--size",
        type=int,
        default=512,
        help="image side in pixels (multiple of 16); latent = size/8",
    )
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="timed repeats per measurement after one warm-up (median)",
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    ap.add_argument(
        "--comfy-attention",
        choices=("pytorch", "default"),
        default="pytorch",
        help="pytorch: ComfyUI uses scaled_dot_product_attention like the adapter; default: ComfyUI's own choice",
    )
    ap.add_argument(
        "--forward-only", action="store_true", help="skip forward+backward (full size on a CPU)"
    )
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args(argv)
    if a.size % 16:
        raise SystemExit(
            f"--size must be a multiple of 16 (latent sides multiples of the ViT patch), got {a.size}"
        )

    sys.path.insert(0, str(REPO / "scripts"))
    import comfy_host
    import pack  # noqa: F401  (the repo root as the package poselab, as ComfyUI imports it)
    import torch

    sys.path.insert(0, str(comfy_host.provision()))
    import comfy.cli_args

    device = torch.device(a.device)
    comfy.cli_args.args.cpu = device.type == "cpu"
    comfy.cli_args.args.use_pytorch_cross_attention = a.comfy_attention == "pytorch"
    import comfy.ops
    from comfy.cldm.cldm import ControlNet
    from comfy.ldm.modules import attention as comfy_attention

    from poselab.models.stable_pose import adapter

    dtype = getattr(torch, a.dtype)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    torch.manual_seed(0)
    stable_pose = adapter.StablePoseAdapter(adapter.StablePoseConfig())
    fill_random_(stable_pose, 1)  # also the zero convs: a trained adapter's cost, not a no-op's
    stable_pose.to(device, dtype).eval()
    controlnet = ControlNet(
        image_size=32,
        in_channels=4,
        model_channels=320,
        hint_channels=3,
        num_res_blocks=[2, 2, 2, 2],
        channel_mult=[1, 2, 4, 4],
        transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
        transformer_depth_middle=1,
        use_spatial_transformer=True,
        context_dim=768,
        num_heads=8,
        num_head_channels=-1,
        use_linear_in_transformer=False,
        legacy=False,
        operations=comfy.ops.disable_weight_init,
    )
    fill_random_(controlnet, 2)
    controlnet.to(device, dtype).eval()
    models = {"Stable-Pose": stable_pose, "ControlNet": controlnet}
    params = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}

    gen = torch.Generator().manual_seed(0)
    lat = a.size // 8
    x = torch.randn(a.batch, 4, lat, lat, generator=gen).to(device, dtype)
    timesteps = torch.linspace(50, 950, a.batch).to(device)
    context = torch.randn(a.batch, 77, 768, generator=gen).to(device, dtype)
    # a skeleton-like hint: thick strokes on black, so the pose masks cover part of the image
    hint = torch.zeros(a.batch, 3, a.size, a.size)
    s = a.size
    hint[:, :, s // 4 : 3 * s // 4, s // 2 - s // 64 : s // 2 + s // 64] = 1.0  # torso
    hint[:, 0, s // 4 : s // 4 + s // 32, s // 4 : 3 * s // 4] = 1.0  # arms
    hint = hint.to(device, dtype)
    masks = stable_pose.masks_for(hint)
    coverage = [float(masks[:, i].float().mean()) for i in range(masks.shape[1])]

    def forward(name):
        def run():
            with torch.no_grad():
                return models[name](x, hint, timesteps, context)

        return run

    def train_step(name):
        model = models[name]

        def run():
            model.zero_grad(set_to_none=True)
            res = model(x, hint, timesteps, context)
            loss = sum(r.float().pow(2).mean() for r in res["output"] + res["middle"])
            loss.backward()

        return run

    def mask_only():
        with torch.no_grad():
            return stable_pose.masks_for(hint)

    cases = {
        "forward": {k: forward(k) for k in models},
        "forward+backward": {k: train_step(k) for k in models},
        "masks": {"Stable-Pose": mask_only},
    }
    if a.forward_only:
        del cases["forward+backward"]
    times = {(c, k): [] for c, fns in cases.items() for k in fns}
    cpu_times = {ck: [] for ck in times}
    for c, fns in cases.items():
        for k, fn in fns.items():
            fn()  # warm-up (allocations, kernels)
    sync()
    for _ in range(a.repeats):
        for c, fns in cases.items():
            for k, fn in fns.items():  # interleaved so that machine load hits both sides alike
                sync()
                t, cpu = time.perf_counter(), time.process_time()
                fn()
                sync()
                times[(c, k)].append(time.perf_counter() - t)
                cpu_times[(c, k)].append(time.process_time() - cpu)
    med = {ck: statistics.median(v) for ck, v in times.items()}
    cpu_med = {ck: statistics.median(v) for ck, v in cpu_times.items()}

    attn = comfy_attention.optimized_attention.__name__
    print(
        f"\nStable-Pose adapter vs ComfyUI SD1.5 ControlNet, {a.size}x{a.size} ({lat}x{lat} latent), batch {a.batch}, "
        f"{device} {a.dtype}, torch threads {torch.get_num_threads()}, ComfyUI attention {attn}, median of {a.repeats}"
    )
    print(
        f"parameters: Stable-Pose {params['Stable-Pose'] / 1e6:.1f}M, ControlNet {params['ControlNet'] / 1e6:.1f}M; "
        f"pose-mask coverage (coarse, fine): {', '.join(f'{c:.2f}' for c in coverage)}"
    )
    # CPU seconds (all threads of this process) next to wall seconds: on a shared machine the wall
    # clock also counts time other processes held the cores; the CPU time is the work done
    print(
        "| measurement | Stable-Pose s | ControlNet s | ratio SP/CN | CPU s SP / CN | CPU ratio |"
    )
    print("|---|---|---|---|---|---|")
    result = {
        "size": a.size,
        "batch": a.batch,
        "device": str(device),
        "dtype": a.dtype,
        "repeats": a.repeats,
        "comfy_attention": attn,
        "params": params,
    }
    for c in [c for c in ("forward", "forward+backward") if c in cases]:
        sp, cn = med[(c, "Stable-Pose")], med[(c, "ControlNet")]
        csp, ccn = cpu_med[(c, "Stable-Pose")], cpu_med[(c, "ControlNet")]
        print(
            f"| {c} | {sp:.3f} | {cn:.3f} | {sp / cn:.2f}x | {csp:.2f} / {ccn:.2f} | {csp / ccn:.2f}x |"
        )
        result[c] = {
            "stable_pose_s": sp,
            "controlnet_s": cn,
            "ratio": sp / cn,
            "stable_pose_cpu_s": csp,
            "controlnet_cpu_s": ccn,
            "cpu_ratio": csp / ccn,
        }
    m, cm = med[("masks", "Stable-Pose")], cpu_med[("masks", "Stable-Pose")]
    print(
        f"| pose masks alone | {m * 1000:.1f} ms | - | {m / med[('forward', 'ControlNet')]:.3f}x of a ControlNet forward | "
        f"{cm * 1000:.1f} ms | - |"
    )
    result["masks_s"], result["masks_cpu_s"] = m, cm
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
