"""What the command-line trainers share: importing ComfyUI and the pack in-process, and a
step printer standing in for ComfyUI's progress bar."""

from __future__ import annotations

import sys
from pathlib import Path

PACK = Path(__file__).resolve().parent.parent


def import_comfy_and_pack(comfyui: str | None) -> None:
    """Put a ComfyUI (``comfyui`` or the provisioned copy) and the pack (as ``poselab``) on the path;
    CPU unless ``--gpu`` was given or a GPU is present."""
    sys.path.insert(0, str(PACK / "scripts"))
    import comfy_host

    root = comfy_host.provision(comfyui)
    sys.path.insert(0, str(root))
    import comfy.cli_args

    if "--gpu" not in sys.argv:
        import torch

        comfy.cli_args.args.cpu = not torch.cuda.is_available()
    import pack  # noqa: F401  (the repo root as the package poselab, as ComfyUI imports it)


def add_common_args(ap) -> None:
    """The options every trainer command takes."""
    ap.add_argument(
        "--save-every", type=int, default=0, help="also write a checkpoint every N steps"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--comfyui", help="a ComfyUI folder to import from (default: the provisioned copy)"
    )
    ap.add_argument("--gpu", action="store_true", help="use the GPU (default: GPU when available)")


class StepPrinter:
    """``step()`` like nodes.common.Progress; prints about 20 lines per run."""

    def __init__(self, total: int):
        self.total, self.n = max(int(total), 1), 0

    def step(self, n: int = 1) -> None:
        self.n += n
        if self.n % max(1, self.total // 20) == 0 or self.n == self.total:
            print(f"step {self.n}/{self.total}", flush=True)
