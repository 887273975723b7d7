"""Writing files a user keeps: never half-written, never over someone else's.

* :func:`atomic_write`: write to a temporary file in the same folder, then rename it over the
  real name in one step, so a reader (ComfyUI listing ``models/``, a resumed run) sees the old
  file or the new one and never a torn one; the temporary file goes away if writing fails.
* :func:`unique_path`: the first free name (``name``, ``name_1``, ``name_2`` ... or with a fixed
  number of digits), for outputs that must not replace an existing file or folder.
* :func:`remove_stale_temps`: a process killed while saving (``kill -9``, a crash) cannot clean up
  after itself; its temporary files carry its process id, so the next writer removes them.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

TMP_SUFFIX = ".tmp"
# .<final name>.<pid>.<random>.tmp (tempfile's random part is 8 characters of [a-z0-9_])
_TMP_NAME = re.compile(r"^\..+\.(\d+)\.[a-z0-9_]{8}\.tmp$")


def atomic_write(path: os.PathLike, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` fills a temporary file next to ``path``, which then replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)  # what a killed earlier writer left here
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX
    )
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline=""))


def atomic_write_image(path: os.PathLike, image: np.ndarray) -> Path:
    """uint8 RGB ``(H, W, 3)`` or gray ``(H, W)``, encoded by ``path``'s extension (png, jpg, ...)."""
    path = Path(path)
    arr = np.ascontiguousarray(image[..., ::-1] if image.ndim == 3 else image)
    ok, buf = cv2.imencode(path.suffix or ".png", arr)
    if not ok:
        raise OSError(f"could not encode {path.name} as {path.suffix or '.png'}")
    return atomic_write(path, lambda tmp: tmp.write_bytes(buf.tobytes()))


def unique_path(path: os.PathLike, digits: int = 0, stem: str | None = None) -> Path:
    """``path`` if nothing is there, else the first free ``<stem>_<n><suffix>`` for n = 1, 2, ...
    (``digits`` zero-pads n; ``stem`` defaults to ``path``'s own)."""
    path = Path(path)
    if not path.exists():
        return path
    stem = path.stem if stem is None else stem
    n = 1
    while True:
        candidate = path.with_name(f"{stem}_{n:0{digits}d}{path.suffix}")
        if not candidate.exists():
            return candidate
        n += 1


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temps(folder: os.PathLike) -> list[Path]:
    """Delete the temporary files :func:`atomic_write` left in ``folder`` (not recursive) when its
    process died mid-write; files of a writer that is still running are kept. Returns what went."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        m = _TMP_NAME.match(entry.name)
        if m and entry.is_file() and not entry.is_symlink() and not _alive(int(m.group(1))):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def is_inside(base: os.PathLike, path: os.PathLike) -> bool:
    """Whether ``path`` resolves (symlinks followed) to ``base`` or somewhere below it."""
    base, path = os.path.realpath(base), os.path.realpath(path)
    return os.path.commonpath([base, path]) == base


def read_rgb(path: os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """An image file as ``uint8 (h, w, 3)`` RGB, area-resized to ``size=(h, w)`` when given."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read the image {path}: it is missing, not an image, or damaged")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if size is not None and img.shape[:2] != tuple(size):
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return img
