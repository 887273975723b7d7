"""The full-size tier's model files, built once and cached: random weights in the real
architectures and file formats, so shapes and memory are those of the files users load.

* ``sd15``: SD1.5 (859.52M UNet, channel mult 1,2,4,4, 2 res blocks, transformer depth 1,1,1,0,
  middle block; CLIP-L; TAESD as the VAE), by ``tests/tiny_checkpoints.py``.
* ``ip2p``: its InstructPix2Pix twin (the same UNet with 8 input channels).
* ``controlnet``: an OpenPose-shaped SD1.5 ControlNet (3-channel hint, the UNet's encoder).
* ``stable_pose``: a Stable-Pose adapter built from that UNet's encoder (as Stable-Pose's
  ``prepare_weights``), its zero convs opened so it changes the UNet's output, in the released
  ``stable_pose_adapter.*`` key format.
* ``ipadapter`` / ``clip_vision`` / ``insightface``: what the SD1.5 OnePoseTrans workflow names.

They live in ``$POSELAB_CACHE/fullsize-models`` (``.cache/`` of the clone by default, ~7 GB) and are
reused across runs; every file is written aside and renamed into place, so an interrupted build is
rebuilt. Bump ``VERSION`` when the builders change.

    python tests/fullsize/fullsize_models.py            # build (or find) them, print the paths
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
VERSION = "v1"
FULL_SD15 = ("--channel-mult", "1,2,4,4", "--res-blocks", "2", "--depth", "1,1,1,0", "--middle")
FILES = {
    "sd15": ("checkpoints", "poselab_full_sd15.safetensors"),
    "ip2p": ("checkpoints", "poselab_full_ip2p.safetensors"),
    "controlnet": ("controlnet", "poselab_full_controlnet_openpose.safetensors"),
    "stable_pose": ("stable_pose", "poselab_full_stable_pose.safetensors"),
    "ipadapter": ("ipadapter", "ip-adapter_sd15.safetensors"),
}


def cache_folder() -> Path:
    sys.path.insert(0, str(REPO / "scripts"))
    import comfy_host

    return comfy_host.cache_dir() / f"fullsize-models-{VERSION}"


def ensure_models(root: os.PathLike | None = None) -> dict[str, Path]:
    """Build whatever is missing (in subprocesses: this process never holds a full model) and
    return ``{name: path}``; ``clip_vision`` and ``insightface`` are included."""
    sys.path.insert(0, str(TESTS))
    import tiny_checkpoints
    import tiny_clip_vision
    import tiny_insightface

    root = Path(root or cache_folder())
    paths = {name: root / folder / file for name, (folder, file) in FILES.items()}
    for kind in ("sd15", "ip2p", "controlnet"):
        tiny_checkpoints.ensure_checkpoint(
            paths[kind].parent, kind, seed=0, filename=paths[kind].name, extra_args=FULL_SD15
        )
    if not paths["stable_pose"].is_file():
        subprocess.run(
            [sys.executable, __file__, "--adapter", str(paths["sd15"]), str(paths["stable_pose"])],
            check=True,
        )
    if not paths["ipadapter"].is_file():
        subprocess.run(
            [sys.executable, __file__, "--ipadapter", str(paths["sd15"]), str(paths["ipadapter"])],
            check=True,
        )
    paths["clip_vision"] = (
        root / "clip_vision" / tiny_clip_vision.ensure_clip_vision(root / "clip_vision")
    )
    pack = root / "insightface" / "models" / "antelopev2"
    if not (pack / ".complete").is_file():
        tiny_insightface.build_pack(pack)
        (pack / ".complete").write_text("")
    paths["insightface"] = root / "insightface"
    return paths


def link_into(models: Path, paths: dict[str, Path]) -> dict[str, str]:
    """Symlink the cached files into a ComfyUI ``models/`` folder; returns the names nodes take."""
    for name, path in paths.items():
        link = models / name if name == "insightface" else models / path.parent.name / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(path, target_is_directory=path.is_dir())
    return {name: path.name for name, path in paths.items()}


# ---------------------------------------------------------------------------- builds (subprocess)
def _unet_state(checkpoint: Path) -> dict:
    from safetensors import safe_open

    prefix = "model.diffusion_model."
    with safe_open(str(checkpoint), "pt") as f:
        return {k[len(prefix) :]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}


def _build_adapter(checkpoint: Path, out: Path) -> None:
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(REPO / "scripts"))
    import pack  # noqa: F401  (the repo as the package poselab)

    from poselab.models.stable_pose import adapter as sp

    model = sp.adapter_for_unet(_unet_state(checkpoint), prefix="", seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a trained adapter's zero convs are not zero: give this one an effect
        for name, p in model.named_parameters():
            if "zero_convs" in name or "middle_block_out" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    sd = {
        f"stable_pose_adapter.{k}": v.to(torch.float16).contiguous()
        for k, v in model.state_dict().items()
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    save_file(sd, str(tmp), metadata={"poselab": "full-size test adapter, random"})
    os.replace(tmp, out)


def _build_ipadapter(checkpoint: Path, out: Path) -> None:
    sys.path.insert(0, str(TESTS))
    import tiny_vcm

    tmp = out.with_name(out.name + ".partial.safetensors")
    tiny_vcm.save(tiny_vcm.ip_adapter_sd(tiny_vcm.cross_attention_dims(checkpoint), 768, 768), tmp)
    os.replace(tmp, out)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--adapter":
        _build_adapter(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "--ipadapter":
        _build_ipadapter(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        print(json.dumps({k: str(v) for k, v in ensure_models().items()}, indent=1))
