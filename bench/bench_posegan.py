"""Deformable GAN speed: generator forward and one training step (D step + G step) at 128x64 and
256x256, batch 8, on the CPU (and the GPU when there is one), against the plain U-Net of the same
width without deformable skips (the paper's ``warp_skip none`` baseline). Prints a table with
the ratio, all measured in this one run.

    python bench/bench_posegan.py [--width-mult 1.0] [--iters 2] [--device cpu]

The deformable generator has two encoders (twice the encoder cost) and warps ten copies of the
features at the first four levels; the baseline has one encoder on concat(x_a, H_a, H_b).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--width-mult", type=float, default=1.0, help="1.0 = the paper's filter counts")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument(
        "--iters", type=int, default=2, help="timed iterations per measurement (after one warm-up)"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--sizes", default="128x64,256x256")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)

    sys.path.insert(0, str(REPO / "scripts"))
    import pack  # noqa: F401  (the repo root as the package poselab, as ComfyUI imports it)
    import torch

    from poselab.models.pose import synthetic
    from poselab.models.posegan import dataset, networks, trainer
    from poselab.models.posegan.losses import GeneratorLoss, discriminator_loss

    device = torch.device(args.device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn) -> float:
        fn()  # warm-up (allocations, kernels)
        sync()
        t = time.perf_counter()
        for _ in range(args.iters):
            fn()
        sync()
        return (time.perf_counter() - t) / args.iters

    rows = []
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        base_cfg = networks.PoseGANConfig(height=h, width=w, width_mult=args.width_mult)
        pairs = synthetic.make_pairs(args.batch, seed=0, size=(h, w))
        batch = dataset.collate(
            [
                dataset.make_sample(dataset.MemoryPairs(pairs)[i], base_cfg)
                for i in range(args.batch)
            ]
        )
        batch = {k: v.to(device) for k, v in batch.items()}
        result = {
            "size": size,
            "batch": args.batch,
            "width_mult": args.width_mult,
            "device": str(device),
        }
        for variant in ("mask", "none"):
            cfg = dataclasses.replace(base_cfg, warp_skip=variant)
            torch.manual_seed(0)
            gen, disc = networks.Generator(cfg).to(device), networks.Discriminator(cfg).to(device)
            opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
            opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
            loss_g = GeneratorLoss(33.0, 3, 0.0, 1.0, None)

            def forward():
                gen.eval()
                with torch.no_grad():
                    trainer.generate(gen, batch)

            def step():
                gen.train()
                fake = trainer.generate(gen, batch)
                disc.requires_grad_(True)
                ld = discriminator_loss(
                    disc(batch["x_a"], batch["h_a"], batch["x_b"], batch["h_b"]),
                    disc(batch["x_a"], batch["h_a"], fake.detach(), batch["h_b"]),
                )
                opt_d.zero_grad()
                ld.backward()
                opt_d.step()
                disc.requires_grad_(False)
                lg, _ = loss_g(
                    fake, batch["x_b"], disc(batch["x_a"], batch["h_a"], fake, batch["h_b"])
                )
                opt_g.zero_grad()
                lg.backward()
                opt_g.step()

            result[f"{variant}_params_M"] = round(networks.count_parameters(gen) / 1e6, 2)
            result[f"{variant}_forward_s"] = round(timed(forward), 4)
            result[f"{variant}_train_step_s"] = round(timed(step), 4)
            print(
                f"  {size} {variant}: forward {result[f'{variant}_forward_s']}s, train step {result[f'{variant}_train_step_s']}s",
                flush=True,
            )
        result["forward_ratio"] = round(result["mask_forward_s"] / result["none_forward_s"], 2)
        result["train_step_ratio"] = round(
            result["mask_train_step_s"] / result["none_train_step_s"], 2
        )
        rows.append(result)

    print(
        f"\nDeformable GAN vs plain U-Net (same width {args.width_mult}), batch {args.batch}, {device}, "
        f"torch threads {torch.get_num_threads()}, {args.iters} timed iterations each"
    )
    print(
        "| size | params M (deformable / U-Net) | forward s (deformable / U-Net) | ratio | train step s (deformable / U-Net) | ratio |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']} | {r['mask_params_M']} / {r['none_params_M']} | {r['mask_forward_s']} / {r['none_forward_s']} | "
            f"{r['forward_ratio']}x | {r['mask_train_step_s']} / {r['none_train_step_s']} | {r['train_step_ratio']}x |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
