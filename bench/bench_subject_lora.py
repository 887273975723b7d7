"""Subject-LoRA training speed: PoseLab's trainer vs core TrainLoraNode, on the same model and
data, in one run.

Both train on the same pre-encoded data (crops of one photo as latents, the description as the
conditioning) with OnePoseTrans's recipe: batch 2, rank 32, AdamW lr 1e-3. Ours adapts the
attention projections (to_q/k/v/out, as OnePoseTrans) through ComfyUI weight adapters on the frozen
UNet; core TrainLoraNode adapts every weight of the diffusion model (its only mode), at its
``training_dtype`` (bf16 autocast by default; fp32 too). Seconds per optimiser step are the median
time between consecutive progress-bar updates of a run (both trainers update ComfyUI's ProgressBar
once per optimiser step), so loading, set-up and evaluation do not count; the runs of the sides
alternate, and the fastest of each side's runs is reported (other jobs on a shared machine only
ever slow a run down). Models: the tiny SD1.5 and SDXL checkpoints of the tests
(tests/tiny_checkpoints.py, built once into --models), or --ckpt files.

    python bench/bench_subject_lora.py                   # tiny SD1.5 and SDXL, 256 px crops
    python bench/bench_subject_lora.py --size 512 --gpu  # the paper's crop size on a GPU

Measured on the shared 2-core CPU (no GPU lent): see the README (OnePoseTrans section) for the
table this prints.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

PACK = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", type=int, default=256, help="crop size in pixels (the paper: 512)")
    ap.add_argument(
        "--steps",
        type=int,
        default=6,
        help="optimiser steps per run (steps - 1 intervals are timed)",
    )
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument(
        "--models", default="/tmp/poselab-bench-models", help="where the tiny checkpoints are built"
    )
    ap.add_argument("--kinds", default="sd15,sdxl")
    ap.add_argument(
        "--core-dtypes",
        default="bf16,fp32",
        help="core TrainLoraNode training_dtype values to time",
    )
    ap.add_argument("--gpu", action="store_true")
    a = ap.parse_args()

    sys.path.insert(0, str(PACK / "tests"))
    sys.path.insert(0, str(PACK / "scripts"))
    import tiny_checkpoints
    from comfy_cli import import_comfy_and_pack

    ckpts = {
        k: Path(a.models) / tiny_checkpoints.ensure_checkpoint(a.models, k)
        for k in a.kinds.split(",")
    }
    import_comfy_and_pack(None)
    import torch

    import comfy.model_management as mm
    import comfy.sd
    import comfy.utils
    from comfy_extras.nodes_train import TrainLoraNode

    from poselab.models.common import lora_training as lt
    from poselab.nodes import onepose, training
    from poselab.nodes.common import Progress

    ticks: list[float] = []
    comfy.utils.set_progress_bar_global_hook(
        lambda value, total, preview=None, node_id=None: ticks.append(time.perf_counter())
    )

    rows = []
    for kind, path in ckpts.items():
        with torch.inference_mode():
            model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(path))
            gen = torch.Generator().manual_seed(0)
            crops = (torch.rand(4, a.size, a.size, 3, generator=gen) * 255).to(torch.uint8).numpy()
            description = "A man with face, a dark coat, a black hat"
            data = onepose.subject_data(model, clip, vae, crops, description, (a.size, a.size))
            cond, pooled = onepose.encode_prompt(clip, description)
            extra = {} if pooled is None else {"pooled_output": pooled}
            latents = model.model.latent_format.process_out(
                data.target_latents
            )  # core takes unscaled latents

        def ours(steps):
            cfg = lt.TrainConfig(
                steps=steps,
                batch_size=2,
                grad_accum=1,
                lr=1e-3,
                text_dropout=0.0,
                image_dropout=0.0,
                eval_samples=1,
            )
            with torch.inference_mode():
                training.train_lora_on_data(
                    model,
                    data,
                    32,
                    32.0,
                    list(onepose.TARGETS),
                    cfg,
                    Path(a.models) / "bench_ours.safetensors",
                    {},
                    Progress(steps),
                )

        def core(dtype):
            def run(steps):
                with torch.inference_mode():
                    # one LATENT per image: core 0.3.75 fails on a single batched LATENT (multi_res unset)
                    TrainLoraNode.execute(
                        [model],
                        [{"samples": x[None]} for x in latents],
                        [[[cond, extra]]],
                        [2],
                        [steps],
                        [1],
                        [1e-3],
                        [32],
                        ["AdamW"],
                        ["MSE"],
                        [0],
                        [dtype],
                        ["fp32"],
                        ["LoRA"],
                        [False],
                        ["[None]"],
                    )

            return run

        sides = {"ours (attention LoRA, weight adapters)": ours}
        sides.update({f"core TrainLoraNode ({d})": core(d) for d in a.core_dtypes.split(",")})
        per_run = {k: [] for k in sides}  # the median step of each run; runs of the sides alternate
        for _ in range(a.repeats):
            for name, fn in sides.items():
                ticks.clear()
                fn(a.steps)
                per_run[name].append(statistics.median(b - a_ for a_, b in zip(ticks, ticks[1:])))
        # on a shared machine other jobs only ever slow a run down: the fastest run is the best estimate
        med = {k: min(v) for k, v in per_run.items()}
        best_core = min(v for k, v in med.items() if k.startswith("core"))
        for name, s in med.items():
            rows.append(
                (kind, name, s, best_core / med[name] if name.startswith("ours") else best_core / s)
            )
        mm.unload_all_models()
        mm.soft_empty_cache()

    print(
        f"\nsubject LoRA, batch 2, rank 32, {a.size}px crops, {'GPU' if a.gpu else 'CPU'}; seconds per optimiser step"
    )
    print(f"{'model':6} {'trainer':42} {'s/step':>8} {'steps/s':>8} {'speed vs best core':>19}")
    for kind, name, s, ratio in rows:
        print(f"{kind:6} {name:42} {s:8.3f} {1 / s:8.3f} {ratio:19.2f}")


if __name__ == "__main__":
    main()
