"""A CLIP vision checkpoint in the real format, with seeded random weights, built at test time.

ComfyUI's ``CLIPVisionLoader`` picks the architecture from key names alone (24 encoder layers
=> ViT-L/14), so a smaller model is not loadable; this builds the full ViT-L (~300M parameters,
~600 MB in fp16) in a subprocess, once per test session. Its 768-d image embeddings pair with the
768-d pooled output of SD1.5's CLIP-L text encoder, as the real models do.

    python tests/tiny_clip_vision.py OUT.safetensors
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FILENAME = "poselab_random_clip_vision_vitl.safetensors"


def ensure_clip_vision(folder: os.PathLike, seed: int = 0) -> str:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / FILENAME).is_file():
        subprocess.run([sys.executable, __file__, str(folder / FILENAME), str(seed)], check=True)
    return FILENAME


def build(out: Path, seed: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import comfy_host

    sys.path.insert(0, str(comfy_host.provision()))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import torch
    from safetensors.torch import save_file

    import comfy.clip_vision

    config = Path(comfy.clip_vision.__file__).with_name("clip_vision_config_vitl.json")
    model = comfy.clip_vision.ClipVisionModel(str(config))
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, t in model.model.state_dict().items():
        if not t.is_floating_point():
            sd[key] = t.clone()
        elif t.ndim >= 2:
            sd[key] = (torch.randn(t.shape, generator=gen) / t[0].numel() ** 0.5).half()
        elif key.endswith("weight"):  # LayerNorm gains
            sd[key] = torch.ones(t.shape, dtype=torch.float16)
        else:
            sd[key] = (torch.randn(t.shape, generator=gen) * 0.02).half()
    tmp = out.with_name(out.name + ".partial")
    save_file(sd, str(tmp))
    os.replace(tmp, out)


if __name__ == "__main__":
    build(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    os._exit(0)  # skip comfy's teardown noise
