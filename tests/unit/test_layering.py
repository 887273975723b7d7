"""The house rules of docs/DEVELOPING.md, read from the code: models/ knows nothing of ComfyUI,
stage files in nodes/ do not import each other, and DEVELOPING.md's table lists every stage file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMFY_MODULES = {
    "comfy",
    "comfy_api",
    "comfy_extras",
    "folder_paths",
    "node_helpers",
    "latent_preview",
    "server",
    "execution",
    "nodes",
}


def stage_modules() -> tuple[str, ...]:
    tree = ast.parse((REPO / "nodes" / "__init__.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", "") == "STAGE_MODULES" for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("nodes/__init__.py defines no STAGE_MODULES")


def imported_modules(path: Path) -> list[tuple[int, str, int]]:
    """(level, module, line) of every import in a file, function-level imports included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            out.append((node.level, node.module or "", node.lineno))
            if node.module is None:  # "from . import x"
                out += [(node.level, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            out += [(0, alias.name, node.lineno) for alias in node.names]
    return out


def test_no_stage_file_imports_another_stage_file():
    stages = set(stage_modules())
    offences = []
    for name in sorted(stages):
        for level, module, line in imported_modules(REPO / "nodes" / f"{name}.py"):
            target = module.split(".")[0]
            if level == 1 and target in stages and target != name:
                offences.append(f"nodes/{name}.py:{line} imports nodes/{target}.py")
    assert not offences, (
        "shared ComfyUI-side code belongs in nodes/common.py, model_folders.py or training.py:\n"
        + "\n".join(offences)
    )


def test_models_do_not_import_comfyui_or_nodes():
    offences = []
    for path in sorted((REPO / "models").rglob("*.py")):
        for level, module, line in imported_modules(path):
            top = module.split(".")[0]
            depth = len(
                path.relative_to(REPO / "models").parts
            )  # 1: models/x.py, 2: models/pkg/x.py
            if (
                level == 0 and top in COMFY_MODULES
            ) or level > depth:  # level > depth: out of models/
                offences.append(f"{path.relative_to(REPO)}:{line} imports {'.' * level}{module}")
    assert not offences, "models/ is plain PyTorch/NumPy:\n" + "\n".join(offences)


def test_the_stage_checker_sees_an_offence(tmp_path):
    # the checks above must be able to fail: a file importing a sibling stage is caught
    fake = tmp_path / "x.py"
    fake.write_text("from .repose import thing\nfrom ..models.pose import keypoints\n")
    assert (1, "repose", 1) in imported_modules(fake)


def test_developing_md_lists_every_stage_file():
    text = (REPO / "docs" / "DEVELOPING.md").read_text()
    listed = set(re.findall(r"^\| `nodes/(\w+)\.py` \|", text, flags=re.M))
    assert listed == set(stage_modules()), (
        f"docs/DEVELOPING.md's stage table differs: {sorted(listed)}"
    )
    for name in ("common", "model_folders", "training"):
        assert f"`nodes/{name}.py`" in text, f"docs/DEVELOPING.md does not describe nodes/{name}.py"
