"""Node help pages: js/docs/<NodeId>.md for every PoseLab node, written from the node schemas.

ComfyUI's frontend (1.32) shows ``<WEB_DIRECTORY>/docs/<NodeId>.md`` (or ``<NodeId>/<locale>.md``)
in its node help panel, served from ``/extensions/<pack folder>/docs/``, in place of the page it
builds from the description and tooltips. This script writes one page per node from the running
server's ``/object_info`` (description, every input with its type, default, range and tooltip,
every output), plus, where it exists, the hand-written part in ``docs/node_help/<NodeId>.md``.
The Pose Editor's page also lists the keyboard shortcuts, read from js/pose_editor/editor.js
(``SHORTCUTS``), so the help and the widget cannot disagree.

The same pages, gathered by stage, make the user-facing reference ``docs/NODES.md``.

    python scripts/node_docs.py        # regenerate js/docs/ and docs/NODES.md against a fresh server
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS_DIR = REPO / "js" / "docs"
EXTRA_DIR = REPO / "docs" / "node_help"
INDEX = REPO / "docs" / "NODES.md"
EDITOR_JS = REPO / "js" / "pose_editor" / "editor.js"
MODEL_FILE = re.compile(r"\.(pth|pt|ckpt|safetensors|bin|onnx|pkl|json)$", re.IGNORECASE)


def editor_shortcuts() -> list[tuple[str, str]]:
    """The (keys, action) pairs of ``SHORTCUTS`` in editor.js."""
    text = EDITOR_JS.read_text(encoding="utf-8")
    block = text[text.index("export const SHORTCUTS") :]
    block = block[: block.index("];")]
    return re.findall(r'\[\s*"([^"]+)",\s*"([^"]+)"\s*\]', block)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _input_rows(info: dict) -> list[str]:
    rows = []
    order = info.get("input_order", {})
    for section in ("required", "optional"):
        inputs = info.get("input", {}).get(section, {})
        for name in order.get(section, list(inputs)):
            spec = inputs[name]
            kind, options = (
                spec[0],
                (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}),
            )
            values = kind if isinstance(kind, list) else options.get("options")
            shown_type = "COMBO" if isinstance(kind, list) else kind
            detail = ""
            if values:
                if any(MODEL_FILE.search(str(v)) for v in values):
                    detail = "a file in the model folder"
                else:
                    detail = (
                        "one of "
                        + ", ".join(f"`{v}`" for v in values[:14])
                        + (" …" if len(values) > 14 else "")
                    )
            elif "min" in options or "max" in options:
                detail = f"{options.get('min', '')} to {options.get('max', '')}"
            default = options.get("default", "")
            if isinstance(default, bool):
                default = str(default).lower()
            default = "" if default == "" or default is None else f"`{default}`"
            facts = [shown_type] + (["optional"] if section == "optional" else [])
            facts += [f"default {default}"] if default else []
            facts += [detail] if detail else []
            tooltip = options.get("tooltip", "")
            rows.append(f"- **{name}** ({', '.join(facts)})" + (f": {tooltip}" if tooltip else ""))
    return rows


def render_page(node_id: str, info: dict, extra: str = "") -> str:
    lines = [f"# {info.get('display_name') or node_id}", ""]
    if info.get("description"):
        lines += [info["description"], ""]
    meta = [f"Category: `{info.get('category', '')}`", f"node id: `{node_id}`"]
    if info.get("experimental"):
        meta.append("experimental")
    lines += [" · ".join(meta), ""]
    if info.get("search_aliases"):
        lines += [
            "Also found by searching: " + ", ".join(f"*{a}*" for a in info["search_aliases"]) + ".",
            "",
        ]
    rows = _input_rows(info)
    if rows:
        lines += ["## Inputs", "", *rows, ""]
    outputs = info.get("output", [])
    if outputs:
        names = info.get("output_name") or outputs
        tips = info.get("output_tooltips") or [None] * len(outputs)
        lines += ["## Outputs", ""]
        lines += [
            f"- **{n}** ({t})" + (f": {tip}" if tip else "")
            for n, t, tip in zip(names, outputs, tips)
        ]
        lines.append("")
    if node_id == "PoseLabPoseEditor":
        lines += [
            "## Keyboard and mouse",
            "",
            "Click the canvas first; keys act while it has the focus.",
            "",
            "| keys | action |",
            "|---|---|",
        ]
        lines += [f"| {_cell(k)} | {_cell(a)} |" for k, a in editor_shortcuts()]
        lines.append("")
    if extra.strip():
        lines += [extra.strip(), ""]
    return "\n".join(lines)


def pack_nodes(object_info: dict) -> dict[str, dict]:
    return {k: v for k, v in sorted(object_info.items()) if k.startswith("PoseLab")}


def generate_all(object_info: dict) -> dict[str, str]:
    pages = {}
    for node_id, info in pack_nodes(object_info).items():
        extra_file = EXTRA_DIR / f"{node_id}.md"
        extra = extra_file.read_text(encoding="utf-8") if extra_file.is_file() else ""
        pages[node_id] = render_page(node_id, info, extra)
    return pages


def render_index(object_info: dict, pages: dict[str, str]) -> str:
    """docs/NODES.md: every node's page, grouped by its menu category, with a contents list."""
    nodes = pack_nodes(object_info)
    by_stage: dict[str, list[str]] = {}
    for node_id, info in nodes.items():
        by_stage.setdefault(info["category"], []).append(node_id)
    lines = [
        "# PoseLab nodes",
        "",
        "Generated from the node schemas by `scripts/node_docs.py` (the same pages the node help panel "
        "shows); do not edit by hand.",
        "",
    ]
    for stage in sorted(by_stage):
        lines.append(
            f"- **{stage}**: "
            + ", ".join(
                f"[{nodes[n]['display_name']}](#{n.lower()})"
                for n in sorted(by_stage[stage], key=lambda n: nodes[n]["display_name"])
            )
        )
    for stage in sorted(by_stage):
        lines += ["", f"## {stage}"]
        for node_id in sorted(by_stage[stage], key=lambda n: nodes[n]["display_name"]):
            page = pages[node_id].splitlines()
            # the page's "# Title" becomes a level-3 heading with the node id as its anchor
            lines += ["", f'<a id="{node_id.lower()}"></a>', "", f"##{page[0]}", f"`{node_id}`", ""]
            lines += [("##" + ln) if ln.startswith("#") else ln for ln in page[1:]]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import comfy_host

    with comfy_host.running_server() as server:
        info = server.object_info()
    DOCS_DIR.mkdir(parents=True, exist_ok=True)
    pages = generate_all(info)
    for node_id, text in pages.items():
        (DOCS_DIR / f"{node_id}.md").write_text(text, encoding="utf-8")
    for stale in DOCS_DIR.glob("PoseLab*.md"):
        if stale.stem not in pages:
            stale.unlink()
            print(f"removed {stale.relative_to(REPO)} (no such node)")
    INDEX.write_text(render_index(info, pages), encoding="utf-8")
    print(
        f"wrote {len(pages)} pages to {DOCS_DIR.relative_to(REPO)}/ and {INDEX.relative_to(REPO)}"
    )


if __name__ == "__main__":
    main()
