"""Import this repository as the package ``poselab``, the way ComfyUI imports a custom-node
folder, so scripts, benchmarks and tests can use ``poselab.models...`` and the pack's relative
imports work. (``python -m`` cannot do this: the folder name has a hyphen.)

    import pack  # noqa: F401   (from scripts/; benches add scripts/ to sys.path first)
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def import_pack(name: str = "poselab"):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, REPO / "__init__.py", submodule_search_locations=[str(REPO)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


poselab = import_pack()
