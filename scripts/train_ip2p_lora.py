"""Train an InstructPix2Pix pose-edit LoRA from the command line (same code as the node).

Examples::

    python scripts/train_ip2p_lora.py --ckpt instruct-pix2pix-00-22000.safetensors --synthetic 200 \\
        --resolution 256 --steps 500 --out loras/poselab_pose.safetensors
    python scripts/train_ip2p_lora.py --ckpt ip2p.safetensors --data my_pairs/ --out my_pose.safetensors

``--data`` is a folder in the InstructPix2Pix layout (``metadata.jsonl`` rows
``{original_image, edit_prompt, edited_image}``); without it, procedural same-person pose pairs
are generated. The LoRA is written atomically in ComfyUI's LoRA key format (core Load LoRA
reads it); an existing file is never overwritten (a counter is added).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

PACK = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PACK / "scripts"))
from comfy_cli import StepPrinter, add_common_args, import_comfy_and_pack  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--ckpt", required=True, help="InstructPix2Pix checkpoint (single-file .safetensors)"
    )
    ap.add_argument("--data", help="folder with metadata.jsonl pairs (default: synthetic pairs)")
    ap.add_argument(
        "--synthetic",
        type=int,
        default=64,
        help="number of synthetic pairs when --data is not given",
    )
    ap.add_argument("--out", required=True, help="output .safetensors path")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=8.0)
    ap.add_argument("--targets", default="to_q,to_k,to_v,to_out.0")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--grad-accum", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--text-dropout", type=float, default=0.05)
    ap.add_argument("--image-dropout", type=float, default=0.05)
    ap.add_argument(
        "--keep-checkpoints", type=int, default=2, help="newest step checkpoints to keep"
    )
    ap.add_argument(
        "--gradient-checkpointing", action="store_true", help="less memory, about a third more time"
    )
    add_common_args(ap)
    a = ap.parse_args()

    import_comfy_and_pack(a.comfyui)
    import torch

    import comfy.sd

    from poselab.models.common import lora_training as lt
    from poselab.models.common.files import read_rgb, unique_path
    from poselab.models.editing.pairs import read_pairs_folder
    from poselab.nodes import ip2p

    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(
        a.ckpt, output_vae=True, output_clip=True
    )
    size = (a.resolution // 8) * 8
    if a.data:
        pairs = [
            (read_rgb(r.source, (size, size)), read_rgb(r.target, (size, size)), r.instruction)
            for r in read_pairs_folder(a.data)
        ]
    else:
        pairs = ip2p.make_synthetic_pairs(a.synthetic, size, a.seed)
    out = Path(a.out)
    out = unique_path(
        out.with_name(out.name.removesuffix(".safetensors") + ".safetensors"), digits=4
    )
    cfg = lt.TrainConfig(
        steps=a.steps,
        batch_size=a.batch_size,
        grad_accum=a.grad_accum,
        lr=a.lr,
        text_dropout=a.text_dropout,
        image_dropout=a.image_dropout,
        seed=a.seed,
        save_every=a.save_every,
    )

    with torch.inference_mode():  # as inside ComfyUI: the trainer must cope with it
        result, _ = ip2p.train_lora_on_model(
            model,
            clip,
            vae,
            pairs,
            a.rank,
            a.alpha,
            a.targets.split(","),
            cfg,
            out,
            StepPrinter(a.steps),
            keep_checkpoints=a.keep_checkpoints,
            gradient_checkpointing=a.gradient_checkpointing,
        )
    print(
        json.dumps(
            {
                "lora": str(out),
                "pairs": len(pairs),
                "seconds": round(result.seconds, 2),
                "eval_loss_before": result.eval_before,
                "eval_loss_after": result.eval_after,
                "checkpoints": result.checkpoints,
            }
        ),
        flush=True,
    )
    os._exit(0)  # skip ComfyUI's ModelPatcher teardown noise at interpreter exit


if __name__ == "__main__":
    main()
