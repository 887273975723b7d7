"""models/common/files.py: atomic writes keep the old file on failure and leave no temp file;
free names count on without replacing anything."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from poselab.models.common.files import (
    atomic_write,
    atomic_write_image,
    atomic_write_text,
    unique_path,
)


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = atomic_write_text(tmp_path / "a.json", "old")

    def half_then_fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
    atomic_write_text(path, "new\r\n")
    assert path.read_bytes() == b"new\r\n"  # no newline translation (CSV rows keep their \r\n)


def test_image_is_encoded_by_its_extension(tmp_path):
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 200  # red
    path = atomic_write_image(tmp_path / "sub" / "x.png", rgb)
    assert np.array_equal(cv2.imread(str(path))[..., ::-1], rgb)
    gray = atomic_write_image(tmp_path / "m.png", np.full((3, 3), 7, np.uint8))
    assert cv2.imread(str(gray), cv2.IMREAD_UNCHANGED).tolist() == [[7] * 3] * 3


def test_unique_path_counts_on(tmp_path):
    assert unique_path(tmp_path / "run") == tmp_path / "run"
    (tmp_path / "run").mkdir()
    assert unique_path(tmp_path / "run").name == "run_1"
    (tmp_path / "pose.json").write_text("{}")
    (tmp_path / "pose_0001.json").write_text("{}")
    assert unique_path(tmp_path / "pose.json", digits=4).name == "pose_0002.json"
    assert unique_path(tmp_path / "pose_0001.json", digits=4, stem="pose").name == "pose_0002.json"


def test_a_killed_writer_leaves_a_temp_that_the_next_write_removes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from poselab.models.common.files import remove_stale_temps

    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); import pack\n"
        "from poselab.models.common.files import atomic_write\n"
        "def slow(tmp):\n    tmp.write_bytes(b'x' * 1000); print('writing', flush=True); time.sleep(60)\n"
        "atomic_write(sys.argv[2], slow)\n"
    )
    scripts = str(Path(__file__).resolve().parents[2] / "scripts")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, scripts, str(tmp_path / "model.safetensors")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "writing"
    live = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(live) == 1 and str(proc.pid) in live[0].name
    assert remove_stale_temps(tmp_path) == []  # its writer is alive: kept
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.1)
    atomic_write_text(tmp_path / "other.json", "{}")  # any later write in that folder cleans up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json"]
