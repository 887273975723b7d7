"""The pack is ready for the Comfy Registry: pyproject.toml has the fields its specification
requires, and the published archive leaves development-only parts out (.comfyignore)."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def test_pyproject_has_what_the_registry_requires():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    project, comfy = meta["project"], meta["tool"]["comfy"]
    # name: < 100 characters, letters/digits/-_. , no leading digit or special character, no "ComfyUI"
    assert (
        re.fullmatch(r"[A-Za-z][A-Za-z0-9._-]{0,98}", project["name"])
        and "comfyui" not in project["name"].lower()
    )
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert project["license"] == {"file": "LICENSE"} and (REPO / "LICENSE").is_file()
    assert project["urls"]["Repository"].startswith("https://")
    assert comfy["PublisherId"] and comfy["DisplayName"]
    # the frontend code in js/ needs a frontend at least as new as the one it is tested with
    assert any(d.startswith("comfyui-frontend-package>=") for d in project["dependencies"])
    # the icon: a square image of at most 400x400, shipped in the repository at the URL's path
    icon = comfy["Icon"]
    local = REPO / icon.split("/main/", 1)[1]
    with Image.open(local) as img:
        assert img.width == img.height <= 400


def test_requirements_match_the_declared_dependencies():
    declared = {
        re.split(r"[<>=;\s\[]", d, maxsplit=1)[0].lower()
        for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    listed = {
        re.split(r"[<>=;\s\[]", line.strip(), maxsplit=1)[0].lower()
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    # the frontend comes with ComfyUI itself; pip must not replace the user's with ours
    assert declared - {"comfyui-frontend-package"} == listed


def test_development_parts_stay_out_of_the_published_archive():
    ignored = {
        line.strip()
        for line in (REPO / ".comfyignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"tests/", "bench/", "ci/", ".ci/", "docs/images/"} <= ignored
    # but nothing a user's ComfyUI loads
    for needed in ("nodes/", "models/", "js/", "workflows/", "__init__.py", "requirements.txt"):
        assert not any(needed.startswith(i.rstrip("/")) for i in ignored), needed
