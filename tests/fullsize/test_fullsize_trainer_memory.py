"""Peak memory of each trainer on full-size SD1.5, each in a fresh ComfyUI process (its peak RSS
``VmHWM``, the server's own imports included), one step of batch 1 at 128 px, the size this tier
affords on a CPU. ``bench/fullsize_trainer_memory.py`` measures 512 px (README: all three fit in
16 GB there).

On a CPU ComfyUI keeps the fp16 file's UNet in fp32 (3.44 GB); a GPU user's is fp16. The bounds
hold the parts that do not grow with the image: the frozen UNet once, CLIP-L, the trained
weights with their gradients and AdamW moments (Stable-Pose: a 365M fp32 adapter = 5.8 GB of
them), ~1 GB of server; a second copy of the UNet (3.4 GB) breaks them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fullsize_models  # noqa: E402
import trainer_memory  # noqa: E402

pytestmark = pytest.mark.fullsize
SIZE = 128
# GiB. Measured at 128 px (2-core CPU, torch 2.14.1): stable_pose 10.08, ip2p_lora 6.13, subject_lora 6.14.
# A second fp32 copy of the frozen UNet (3.2 GiB) exceeds each bound.
BOUND_GB = {"stable_pose": 11.5, "ip2p_lora": 7.5, "subject_lora": 7.5}


@pytest.fixture(scope="module")
def fullsize_paths() -> dict:
    return fullsize_models.ensure_models()


@pytest.mark.parametrize("trainer", trainer_memory.TRAINERS)
def test_trainer_peak_rss_at_full_size(trainer, fullsize_paths):
    m = trainer_memory.measure(trainer, SIZE, checkpointing=False, paths=fullsize_paths)
    print(
        f"{trainer} {SIZE} px: peak RSS {m.peak_rss_gb:.2f} GiB (idle server {m.idle_rss_gb:.2f} GiB), "
        f"{m.seconds:.0f} s"
    )
    assert m.error is None, m.error
    assert m.report["steps"] == 1 and len(m.report["losses"]) == 1
    assert m.peak_rss_gb < BOUND_GB[trainer], (
        f"{trainer} peaked at {m.peak_rss_gb:.2f} GB at {SIZE} px (bound {BOUND_GB[trainer]} GiB): "
        "is the frozen UNet copied (it must stay the loaded model, in its own dtype)?"
    )
