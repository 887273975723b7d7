"""Train the Deformable GAN from the command line (same trainer as the ComfyUI node).

Examples::

    # synthetic pairs generated on the fly (no files), then a held-out evaluation
    python scripts/train_posegan.py --synthetic 2000 --size test_64x64 --width-mult 0.25 \\
        --steps 3000 --run-dir runs/syn64 --eval 64

    # the README's Deformable-GAN table (blend head; --output image for the paper's head)
    python scripts/train_posegan.py --synthetic 512 --still-torso --size test_64x64 --width-mult 0.25 \
        --steps 3000 --lr 2e-3 --heatmap-sigma 3 --dropout 0 --l1-weight 100 --nn-weight 0 --gan-weight 0 \
        --output blend --run-dir runs/blend64 --eval 48

    # a dataset folder in the Market-1501 pose-transfer layout (annotation-train.csv, pairs-train.csv, train/)
    python scripts/train_posegan.py --dataset /data/market --size market_128x64 --steps 90000 \\
        --run-dir runs/market --model-out ~/ComfyUI/models/posegan/market.safetensors --vgg vgg19-dcbb9e9d.pth

Ctrl+C saves a checkpoint; run the same command with ``--resume`` to continue. ``--eval N``
scores the model on N held-out pairs (the test split, or synthetic pairs with other seeds)
against the identity baseline (output = source) and the classical part-warp baseline, in
SSIM and L1, and prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--dataset",
        help="dataset folder (annotation-<split>.csv, pairs-<split>.csv, <split>/ images)",
    )
    src.add_argument(
        "--synthetic", type=int, metavar="N", help="train on N synthetic pairs generated in memory"
    )
    p.add_argument("--synthetic-seed", type=int, default=0)
    p.add_argument(
        "--still-torso",
        action="store_true",
        help="synthetic pairs whose torso does not move (limbs and head only)",
    )
    p.add_argument(
        "--size",
        default="market_128x64",
        help="size preset: market_128x64, deepfashion_256x256, deepfashion_256x176, test_64x64",
    )
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width-mult", type=float, default=1.0)
    p.add_argument("--warp-skip", choices=["mask", "none"], default="mask")
    p.add_argument(
        "--output",
        choices=["image", "blend"],
        default="image",
        help="image: the paper's head; blend: a learned mask keeps source pixels where nothing moves",
    )
    p.add_argument("--nn-window", type=int, default=3)
    p.add_argument(
        "--nn-weight", type=float, default=-1.0, help="-1: the default of the feature space used"
    )
    p.add_argument("--l1-weight", type=float, default=0.0)
    p.add_argument("--gan-weight", type=float, default=1.0)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument(
        "--heatmap-sigma",
        type=float,
        default=6.0,
        help="Gaussian sigma in px (the paper: 6 at 128/256 px)",
    )
    p.add_argument(
        "--vgg",
        help="torchvision VGG19 weights (.pth or .safetensors) for the NN loss on block1_conv2",
    )
    p.add_argument(
        "--run-dir", required=True, help="folder for losses.csv, samples/, state.safetensors"
    )
    p.add_argument("--model-out", help="model file to write (default: RUN_DIR/model.safetensors)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/state.safetensors")
    p.add_argument("--sample-every", type=int, default=250)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument(
        "--eval",
        type=int,
        default=0,
        metavar="N",
        help="after training, score N held-out pairs against the baselines",
    )
    p.add_argument("--eval-json", help="also write the evaluation table as JSON here")
    args = p.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.path.insert(0, str(REPO / "scripts"))
    import pack  # noqa: F401  (the repo root as the package poselab, as ComfyUI imports it)
    import torch

    from poselab.models.pose import synthetic
    from poselab.models.posegan import dataset, evaluate, trainer
    from poselab.models.posegan.losses import load_vgg_block1
    from poselab.models.posegan.networks import SIZE_PRESETS, PoseGANConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.size not in SIZE_PRESETS:
        p.error(f"--size must be one of {sorted(SIZE_PRESETS)}")
    h, w = SIZE_PRESETS[args.size]
    config = PoseGANConfig(
        height=h,
        width=w,
        width_mult=args.width_mult,
        warp_skip=args.warp_skip,
        output=args.output,
        nn_window=args.nn_window,
        nn_weight=args.nn_weight,
        l1_weight=args.l1_weight,
        gan_weight=args.gan_weight,
        dropout=args.dropout,
        heatmap_sigma=args.heatmap_sigma,
    )
    if args.synthetic:
        train_set = dataset.MemoryPairs(
            synthetic.make_pairs(
                args.synthetic, seed=args.synthetic_seed, size=(h, w), still_torso=args.still_torso
            )
        )
        # held-out pairs use seeds the training set never saw
        eval_set = dataset.MemoryPairs(
            synthetic.make_pairs(
                max(args.eval, 4),
                seed=args.synthetic_seed + 10_000_000,
                size=(h, w),
                still_torso=args.still_torso,
            )
        )
    else:
        train_set = dataset.FolderPairs(args.dataset, "train")
        try:
            eval_set = dataset.FolderPairs(args.dataset, "test")
        except (FileNotFoundError, ValueError):
            eval_set = None
    vgg = load_vgg_block1(args.vgg) if args.vgg else None
    settings = trainer.TrainSettings(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        sample_every=args.sample_every,
        checkpoint_every=args.checkpoint_every,
        device=args.device,
    )
    last = [time.perf_counter()]

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            now = time.perf_counter()
            print(f"step {done}/{total} ({now - last[0]:.1f}s)", flush=True)
            last[0] = now

    result = trainer.train(
        config,
        train_set,
        args.run_dir,
        settings,
        model_path=args.model_out,
        resume=args.resume,
        vgg=vgg,
        progress=progress,
        sample_dataset=eval_set,
    )
    print(
        json.dumps(
            {k: v for k, v in result.items() if k not in ("loss_curve", "loss_rows")}, indent=1
        )
    )
    if args.eval and eval_set is not None:
        n = min(args.eval, len(eval_set))
        table = evaluate.compare(result["model_path"], eval_set, list(range(n)), device=args.device)
        print(evaluate.format_table(table))
        if args.eval_json:
            Path(args.eval_json).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
