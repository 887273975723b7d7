"""API-format workflows (what POST /prompt takes) -> UI-format workflows (what the graph editor loads).

The API files in ``workflows/api/`` are the source of truth; the UI twins in ``workflows/`` are
generated from them with the server's ``/object_info`` (which says, per node, which inputs are
sockets and which are widgets, and in what order the editor lays the widgets out), so the two
never drift apart. ``tests/integration/test_workflows.py`` checks that they are in sync.

    python scripts/workflow_format.py        # regenerate workflows/*.json against a fresh server
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
API_DIR = REPO / "workflows" / "api"
UI_DIR = REPO / "workflows"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def input_specs(info: dict) -> list[tuple[str, str, dict]]:
    """(name, type, options) for each input of a node, in the editor's order (required, then optional)."""
    specs = []
    order = info.get("input_order", {})
    for section in ("required", "optional"):
        inputs = info.get("input", {}).get(section, {})
        names = order.get(section, list(inputs))
        for name in names:
            spec = inputs[name]
            kind = spec[0]
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            specs.append((name, "COMBO" if isinstance(kind, list) else kind, options))
    return specs


def is_link(value) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


def widget_values(name: str, kind: str, options: dict, value) -> list:
    values = [value]
    if options.get("control_after_generate") or (kind == "INT" and name in ("seed", "noise_seed")):
        values.append("fixed")
    if options.get("image_upload"):
        values.append("image")
    return values


def depth_of(prompt: dict) -> dict[str, int]:
    depth: dict[str, int] = {}

    def visit(node_id: str, stack=()) -> int:
        if node_id in depth:
            return depth[node_id]
        if node_id in stack:
            raise ValueError(f"cycle through node {node_id}")
        parents = [v[0] for v in prompt[node_id]["inputs"].values() if is_link(v)]
        depth[node_id] = 1 + max((visit(p, stack + (node_id,)) for p in parents), default=-1)
        return depth[node_id]

    for node_id in prompt:
        visit(node_id)
    return depth


def api_to_ui(prompt: dict, object_info: dict, title: str = "") -> dict:
    """Build a litegraph (UI-format, version 0.4) workflow from an API-format prompt."""
    ids = {
        node_id: i + 1
        for i, node_id in enumerate(sorted(prompt, key=lambda k: int(k) if k.isdigit() else k))
    }
    depth = depth_of(prompt)
    column_rows: dict[int, int] = defaultdict(int)
    links, nodes = [], []
    out_links: dict[tuple[int, int], list[int]] = defaultdict(list)
    order = sorted(prompt, key=lambda k: (depth[k], ids[k]))
    for rank, node_id in enumerate(order):
        node = prompt[node_id]
        cls = node["class_type"]
        if cls not in object_info:
            raise KeyError(f"node {node_id}: {cls} is not known to the server")
        info = object_info[cls]
        inputs, widgets = [], []
        for name, kind, options in input_specs(info):
            value = node["inputs"].get(name)
            is_widget = kind in WIDGET_TYPES
            if is_link(value):
                src = value[0]
                if src not in prompt:
                    raise KeyError(f"node {node_id} input {name} links to missing node {src}")
                link_id = len(links) + 1
                src_type = object_info[prompt[src]["class_type"]]["output"][value[1]]
                links.append([link_id, ids[src], value[1], ids[node_id], len(inputs), src_type])
                out_links[(ids[src], value[1])].append(link_id)
                entry = {"name": name, "type": kind, "link": link_id}
                if is_widget:
                    entry["widget"] = {"name": name}
                    widgets.extend(widget_values(name, kind, options, options.get("default")))
                inputs.append(entry)
            elif is_widget:
                if value is None:
                    value = options.get("default")
                widgets.extend(widget_values(name, kind, options, value))
            elif value is not None:
                raise ValueError(
                    f"node {node_id} input {name} ({kind}) must be a link, got {value!r}"
                )
        col = depth[node_id]
        nodes.append(
            {
                "id": ids[node_id],
                "type": cls,
                "pos": [40 + 380 * col, 40 + 300 * column_rows[col]],
                "size": [340, 120 + 26 * len(widgets)],
                "flags": {},
                "order": rank,
                "mode": 0,
                "inputs": inputs,
                "outputs": [],
                "properties": {"Node name for S&R": cls},
                "widgets_values": widgets,
                **({"title": node["_meta"]["title"]} if node.get("_meta", {}).get("title") else {}),
            }
        )
        column_rows[col] += 1
    for entry in nodes:
        info = object_info[entry["type"]]
        entry["outputs"] = [
            {
                "name": (info.get("output_name") or info["output"])[i],
                "type": t,
                "links": out_links.get((entry["id"], i), []),
                "slot_index": i,
            }
            for i, t in enumerate(info["output"])
        ]
    return {
        "last_node_id": len(nodes),
        "last_link_id": len(links),
        "nodes": sorted(nodes, key=lambda n: n["id"]),
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"poselab": {"generated_from": f"workflows/api/{title}.json"}},
        "version": 0.4,
    }


def generate_all(object_info: dict) -> dict[str, dict]:
    return {
        p.stem: api_to_ui(json.loads(p.read_text()), object_info, p.stem)
        for p in sorted(API_DIR.glob("*.json"))
    }


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import comfy_host

    with comfy_host.running_server() as server:
        info = server.object_info()
    for name, ui in generate_all(info).items():
        path = UI_DIR / f"{name}.json"
        path.write_text(json.dumps(ui, indent=1) + "\n")
        print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
