"""Peak RSS of each PoseLab trainer on full-size SD1.5 (random weights, the real architectures):
Train Stable-Pose, Train IP2P Pose LoRA (on the IP2P twin) and Train Subject LoRA, each in a fresh
ComfyUI process (the server's ``VmHWM``, its own imports included), batch 1, one optimiser step,
with gradient checkpointing off and on. The issue's acceptance: each fits in 16 GB at 512 px.
Run it under the memory lock (up to ~16 GB):

    flock /tmp/poselab-bigmem.lock python bench/fullsize_trainer_memory.py --size 512

The model files are those of the full-size test tier (tests/fullsize/fullsize_models.py), built
once into .cache/. On a CPU ComfyUI keeps the UNet in fp32 (3.44 GB); on a GPU in fp16, and the
activations move to the GPU, so CPU RAM there is lower still.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "fullsize"))
import fullsize_models  # noqa: E402
import trainer_memory  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--trainers", default=",".join(trainer_memory.TRAINERS))
    ap.add_argument("--checkpointing", default="off,on", help="off, on, or off,on")
    ap.add_argument(
        "--limit-gb", type=float, default=16.0, help="the budget each trainer must fit (GiB)"
    )
    ap.add_argument(
        "--min-available-gb",
        type=float,
        default=2.0,
        help="stop a run when the machine has less than this left (it is shared)",
    )
    a = ap.parse_args()
    paths = fullsize_models.ensure_models()
    rows = []
    for trainer in a.trainers.split(","):
        for mode in a.checkpointing.split(","):
            m = trainer_memory.measure(trainer, a.size, mode == "on", paths, a.min_available_gb)
            row = {k: v for k, v in asdict(m).items() if k != "report"}
            row["train_seconds"] = m.report.get("seconds")
            print(json.dumps(row), flush=True)
            rows.append(m)
    print(
        f"\nfull-size SD1.5, {a.size} px, batch 1, 1 step; peak RSS of a fresh ComfyUI process (GiB = 2**30 bytes)"
    )
    print(
        f"{'trainer':14} {'checkpointing':>13} {'peak RSS':>9} {'idle server':>12} {'seconds':>8}  fits {a.limit_gb:g} GiB"
    )
    for m in rows:
        fits = (
            "stopped"
            if m.stopped
            else (
                "error: " + m.error[:60]
                if m.error
                else ("yes" if m.peak_rss_gb < a.limit_gb else "NO")
            )
        )
        print(
            f"{m.trainer:14} {'on' if m.checkpointing else 'off':>13} {m.peak_rss_gb:9.2f} {m.idle_rss_gb:12.2f} "
            f"{m.seconds:8.0f}  {fits}"
        )
    by = {(m.trainer, m.checkpointing): m for m in rows}
    for trainer in a.trainers.split(","):
        off, on = by.get((trainer, False)), by.get((trainer, True))
        if off and on and not (off.error or on.error):
            print(
                f"{trainer}: checkpointing saves {off.peak_rss_gb - on.peak_rss_gb:.2f} GiB "
                f"({on.peak_rss_gb / off.peak_rss_gb:.2f}x the peak) at {on.seconds / off.seconds:.2f}x the time"
            )


if __name__ == "__main__":
    main()
