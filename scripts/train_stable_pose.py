"""Train a Stable-Pose adapter from the command line (same code as the Train Stable-Pose node).

Examples::

    python scripts/train_stable_pose.py --ckpt v1-5-pruned-emaonly.safetensors --synthetic 512 \\
        --resolution 512 --steps 2000 --out stable_pose/poselab_stable_pose.safetensors
    python scripts/train_stable_pose.py --ckpt sd15.safetensors --init adapter.safetensors --steps 500 --out more.safetensors

Without ``--init`` the adapter is made from the checkpoint's own encoder (Stable-Pose's
``prepare_weights``) and trained on procedural people (exact keypoints, captions from the pose
names) with the pose-mask-guided loss; the checkpoint stays frozen. The adapter is written
atomically as safetensors; an existing file is never overwritten (a counter is added). The last
line printed is a JSON report with the held-out loss before and after, and with a wrong pose.
"""

from __future__ import annotations

import argparse
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
        "--ckpt", required=True, help="SD1.5-family checkpoint (single-file .safetensors)"
    )
    ap.add_argument("--init", help="an adapter to continue training (.safetensors)")
    ap.add_argument(
        "--synthetic", type=int, default=64, help="number of procedural training samples"
    )
    ap.add_argument("--out", required=True, help="output .safetensors path")
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument(
        "--alpha", type=float, default=5.0, help="loss weight inside the fine pose mask"
    )
    ap.add_argument("--text-dropout", type=float, default=0.5)
    ap.add_argument("--holdout", type=float, default=0.25)
    add_common_args(ap)
    a = ap.parse_args()

    import_comfy_and_pack(a.comfyui)
    import torch

    import comfy.sd
    import comfy.utils

    from poselab.models.common.files import unique_path
    from poselab.models.common.json_values import strict_json
    from poselab.models.stable_pose import train as sp_train
    from poselab.nodes import stable_pose

    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(
        a.ckpt, output_vae=True, output_clip=True
    )
    initial = comfy.utils.load_torch_file(a.init, safe_load=True) if a.init else None
    samples = stable_pose.procedural_samples(a.synthetic, a.resolution // 16 * 16, a.seed)
    out = unique_path(
        Path(a.out) if a.out.endswith(".safetensors") else Path(a.out + ".safetensors")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = sp_train.TrainConfig(
        steps=a.steps,
        batch_size=a.batch_size,
        lr=a.lr,
        alpha=a.alpha,
        text_dropout=a.text_dropout,
        seed=a.seed,
        save_every=a.save_every,
    )

    with torch.inference_mode():  # as inside ComfyUI: the trainer must cope with it
        result, _, n_train, n_eval = stable_pose.train_on_model(
            model, clip, vae, samples, initial, cfg, a.holdout, out, StepPrinter(a.steps)
        )
    print(
        strict_json(
            {
                "adapter": str(out),
                "train_samples": n_train,
                "heldout_samples": n_eval,
                "seconds": round(result.seconds, 2),
                "eval_loss_before": result.eval_before,
                "eval_loss_after": result.eval_after,
                "eval_loss_wrong_pose": result.eval_wrong_pose,
                "checkpoints": result.checkpoints,
            }
        ),
        flush=True,
    )
    os._exit(0)  # skip ComfyUI's ModelPatcher teardown noise at interpreter exit


if __name__ == "__main__":
    main()
