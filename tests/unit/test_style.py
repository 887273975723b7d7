"""The code style is checked, not hoped for: ruff's lint rules and formatter (pyproject.toml,
line length 100) over the whole repository, as `ruff check` and `ruff format --check` run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def ruff(*args: str) -> subprocess.CompletedProcess:
    try:
        import ruff  # noqa: F401  (ci/lock.txt installs it)
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("ruff is not installed in this environment (ci/lock.txt has it)")
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True
    )


def test_ruff_check_passes():
    result = ruff("check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_ruff_format_leaves_every_file_unchanged():
    result = ruff("format", "--check", "--no-cache", ".")
    assert result.returncode == 0, (
        "run `ruff format .`:\n" + result.stdout[-4000:] + result.stderr[-2000:]
    )
