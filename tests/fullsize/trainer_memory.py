"""Peak memory of one PoseLab trainer in a fresh ComfyUI: a new server process (the pack linked,
the full-size files in its models folders), one prompt that loads the checkpoint and runs the
trainer node, and the server's peak RSS (``VmHWM``) read when the prompt ends. What a user's
ComfyUI process reaches, its ~1 GB of imports included. Used by the full-size tier (at the size CI
affords) and ``bench/fullsize_trainer_memory.py`` (512 px).

A watchdog stops the server when the machine gets close to running out of memory (it is shared):
the result then says ``stopped`` with the peak reached so far.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_host  # noqa: E402
import fullsize_models  # noqa: E402

TRAINERS = ("stable_pose", "ip2p_lora", "subject_lora")
NODE = {
    "stable_pose": "PoseLabTrainStablePose",
    "ip2p_lora": "PoseLabTrainIP2PLoRA",
    "subject_lora": "PoseLabTrainSubjectLoRA",
}


def trainer_prompt(trainer: str, names: dict, size: int, checkpointing: bool, tag: str) -> dict:
    """The checkpoint loader and one trainer: batch 1, one optimiser step at ``size`` px."""
    ckpt = names["ip2p"] if trainer == "ip2p_lora" else names["sd15"]
    common = {
        "model": ["1", 0],
        "clip": ["1", 1],
        "vae": ["1", 2],
        "resolution": size,
        "steps": 1,
        "batch_size": 1,
        "seed": 0,
        "gradient_checkpointing": checkpointing,
    }
    if trainer == "stable_pose":
        inputs = dict(
            common,
            start_from="new (from the model's encoder)",
            synthetic_samples=2,
            holdout=0.5,
            save_every=0,
            adapter_name=f"mem_{tag}",
        )
    elif trainer == "ip2p_lora":
        inputs = dict(
            common,
            data_folder="",
            synthetic_pairs=2,
            rank=8,
            alpha=8.0,
            grad_accum=1,
            save_every=0,
            target_modules="to_q,to_k,to_v,to_out.0",
            lora_name=f"mem_{tag}",
            resume=False,
        )
    else:  # the OnePoseTrans settings (rank 32) at batch 1
        inputs = dict(
            common,
            image=["2", 0],
            description="A man with face, a dark coat",
            rank=32,
            views=4,
            lora_name=f"mem_{tag}",
        )
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "3": {"class_type": NODE[trainer], "inputs": inputs},
    }
    if trainer == "subject_lora":
        prompt["2"] = {"class_type": "LoadImage", "inputs": {"image": "cameraman.png"}}
    return prompt


@dataclass
class Measurement:
    trainer: str
    size: int
    checkpointing: bool
    peak_rss_gb: float = 0.0  # GiB (VmHWM / 2**20 kB)
    idle_rss_gb: float = 0.0  # the server before the prompt: imports, no model
    seconds: float = 0.0
    error: str | None = None
    stopped: bool = False
    report: dict = field(default_factory=dict)


def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _available_gb() -> float:
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) for line in f}
    return info["MemAvailable"] / 2**20


def measure(
    trainer: str,
    size: int,
    checkpointing: bool = False,
    paths: dict | None = None,
    min_available_gb: float = 2.0,
    timeout: float = 3600,
) -> Measurement:
    import json

    paths = paths or fullsize_models.ensure_models()
    result = Measurement(trainer, size, checkpointing)
    with tempfile.TemporaryDirectory(prefix="poselab-trainer-memory-") as base:
        server = comfy_host.ComfyServer(comfy_host.provision(), Path(base))
        names = fullsize_models.link_into(server.base_dir / "models", paths)
        server.upload_image(REPO / "assets" / "samples" / "cameraman.png")
        server.start()
        pid = server.process.pid
        stop = threading.Event()

        def watch():
            while not stop.wait(0.5):
                if _available_gb() < min_available_gb and server.process.poll() is None:
                    result.stopped = True
                    result.peak_rss_gb = _status_kb(pid, "VmHWM") / 2**20
                    server.process.kill()
                    return

        try:
            result.idle_rss_gb = _status_kb(pid, "VmRSS") / 2**20
            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            t0 = time.perf_counter()
            prompt = trainer_prompt(trainer, names, size, checkpointing, f"{trainer}_{size}")
            try:
                entry = server.run(
                    comfy_host.fill_defaults(prompt, server.object_info()), timeout=timeout
                )
                result.error = comfy_host.execution_error(entry)
                if result.error is None:
                    result.report = json.loads(entry["outputs"]["3"]["text"][0])
            except (
                RuntimeError
            ) as exc:  # the server died (killed by the watchdog, or by the kernel)
                result.error = (
                    "stopped: the machine ran low on memory" if result.stopped else str(exc)[:400]
                )
            result.seconds = time.perf_counter() - t0
            if not result.stopped:
                result.peak_rss_gb = _status_kb(pid, "VmHWM") / 2**20
        finally:
            stop.set()
            server.stop()
    return result
