"""Install the pack the way ComfyUI-Manager does, into a fresh Python environment.

A user's ComfyUI has its own venv: torch (already there, chosen by the user for their GPU),
ComfyUI's ``requirements.txt``, whatever numpy the newest resolution gives, and then, when the
pack is installed, ``pip install -r requirements.txt`` of the pack with no lock file and no
pins beyond the pack's own. This script builds exactly that, so the tests can run the pack's
workflows in it (tests/install/test_manager_install.py) instead of only in the pinned
development venv, where ``ci/lock.txt`` hides what an unpinned resolution does.

torch itself is not downloaded again: the fresh venv sees the development venv's torch and
torchvision (and their CUDA libraries) through a ``.pth`` file pointing at a folder of links,
as if the user had installed that torch. Everything else is resolved from the package index.

    python scripts/manager_install.py [--python python3.11] [--venv DIR]   # prints the venv's python
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parent.parent
# torch and what only torch uses; ComfyUI's other requirements are resolved freshly.
TORCH_FAMILY = re.compile(
    r"^(torch|torchvision|torchgen|nvidia|cuda|functorch)([-_.].*)?$", re.IGNORECASE
)
# Pure-Python dependencies of torch that pip would otherwise not install (torch is not installed here).
TORCH_DEPS = [
    "filelock",
    "typing-extensions",
    "sympy",
    "networkx",
    "jinja2",
    "fsspec",
    "setuptools",
]


def _comfy_requirements(comfy_root: Path) -> list[str]:
    """ComfyUI's requirements without torch/torchvision/torchaudio (the user's own torch is kept)."""
    out = []
    for line in (comfy_root / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name = re.split(r"[<>=~!\[; ]", line, maxsplit=1)[0].lower()
        if name in ("torch", "torchvision", "torchaudio"):
            continue
        out.append(line)
    # The server imports requests (app/frontend_management.py) but this copy's list omits it;
    # every real install has it (ComfyUI-Manager itself needs it).
    return out + ["requests"]


def _link_torch(venv_python: Path, link_dir: Path) -> None:
    site = Path(sysconfig.get_paths()["purelib"])  # the development venv running this script
    link_dir.mkdir(parents=True, exist_ok=True)
    for entry in site.iterdir():
        if TORCH_FAMILY.match(entry.name) and not (link_dir / entry.name).exists():
            (link_dir / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    # torch asks for triton, which only torch.compile imports; the development venv leaves it out
    # (0.9 GB) and a user's CUDA torch has it. A metadata-only record keeps pip from fetching it.
    triton = _torch_requirement("triton")
    if triton:
        record = link_dir / f"triton-{triton}.dist-info"
        record.mkdir(exist_ok=True)
        (record / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: triton\nVersion: {triton}\n"
        )
        (record / "INSTALLER").write_text("poselab-manager-install\n")
    target_site = subprocess.run(
        [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(target_site) / "_user_torch.pth").write_text(str(link_dir) + "\n")


def _torch_requirement(name: str) -> str | None:
    """The version torch pins for ``name`` (``triton~=3.8.0`` -> ``3.8.0``), from torch's metadata."""
    from importlib.metadata import requires

    for req in requires("torch") or []:
        m = re.match(rf"{name}\s*[~=]=\s*([\d.]+)", req)
        if m:
            return m.group(1)
    return None


def _pip(venv_python: Path, *args: str) -> None:
    cmd = [
        str(venv_python),
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-cache-dir",
        "--no-compile",
        "--progress-bar",
        "off",
        *args,
    ]
    print("[poselab] " + " ".join(cmd[3:]), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=sys.stderr)


def build(venv: Path, comfy_root: Path, python: str = sys.executable) -> Path:
    """Create (or reuse, when the requirements are unchanged) the Manager-style venv."""
    venv = venv.resolve()
    stamp = hashlib.sha256(
        (PACK_DIR / "requirements.txt").read_bytes()
        + (comfy_root / "requirements.txt").read_bytes()
        + Path(__file__).read_bytes()
        + python.encode()
    ).hexdigest()[:16]
    venv_python = venv / "bin" / "python"
    stamp_file = venv / ".poselab-stamp"
    if venv_python.exists() and stamp_file.exists() and stamp_file.read_text().strip() == stamp:
        return venv_python
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    _link_torch(venv_python, venv / "user-torch")
    reqs = venv / "comfyui-requirements.txt"
    reqs.write_text("\n".join(_comfy_requirements(comfy_root)) + "\n")
    _pip(venv_python, *TORCH_DEPS)
    _pip(venv_python, "-r", str(reqs))
    _pip(
        venv_python, "--upgrade", "numpy"
    )  # what a user who has run other packs' installs often has
    # What ComfyUI-Manager runs for the pack: its requirements, unpinned, into that environment.
    _pip(venv_python, "-r", str(PACK_DIR / "requirements.txt"))
    (venv / ".poselab-stamp").write_text(stamp + "\n")
    return venv_python


def main() -> None:
    sys.path.insert(0, str(PACK_DIR / "scripts"))
    import comfy_host

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--venv", default=None, help="where to build it (default .cache/manager-venv)"
    )
    parser.add_argument(
        "--comfyui", default=None, help="ComfyUI folder whose requirements.txt to use"
    )
    args = parser.parse_args()
    root = comfy_host.provision(args.comfyui)
    venv = Path(args.venv) if args.venv else comfy_host.cache_dir() / "manager-venv"
    print(build(venv, root))


if __name__ == "__main__":
    main()
