"""Thumbnails for ComfyUI's template browser: workflows/<name>.jpg beside each workflows/<name>.json.

The browser (frontend 1.32) shows ``/api/workflow_templates/<pack>/<name>.jpg`` for a custom
node's template, which ComfyUI serves from the same folder as the JSON. Each thumbnail is a
diagram of the workflow's graph, drawn from its API twin: nodes in columns by their depth from
the inputs, PoseLab nodes highlighted, links as lines, the workflow's name on top. A diagram and
not a result picture, because half the workflows need checkpoints the repository cannot ship.

    python scripts/workflow_thumbnails.py     # (re)write every thumbnail
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parent.parent
API_DIR = REPO / "workflows" / "api"
UI_DIR = REPO / "workflows"
SIZE = (512, 384)
BG, OURS, CORE, INK, LINK = (
    (24, 26, 34),
    (38, 92, 150),
    (70, 74, 86),
    (236, 238, 244),
    (140, 146, 160),
)


def _depths(prompt: dict) -> dict[str, int]:
    depth: dict[str, int] = {}

    def visit(node_id: str, seen: tuple = ()) -> int:
        if node_id in depth:
            return depth[node_id]
        if node_id in seen:  # a cycle cannot be queued; draw it flat rather than recurse forever
            return 0
        parents = [
            v[0]
            for v in prompt[node_id]["inputs"].values()
            if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and v[0] in prompt
        ]
        depth[node_id] = 1 + max((visit(p, seen + (node_id,)) for p in parents), default=-1)
        return depth[node_id]

    for node_id in prompt:
        visit(node_id)
    return depth


def _label(node: dict) -> str:
    title = node.get("_meta", {}).get("title") or node["class_type"]
    return title.removeprefix("PoseLab").replace("(PoseLab)", "").strip()


def draw(name: str, prompt: dict) -> Image.Image:
    img = Image.new("RGB", SIZE, BG)
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    d.text((14, 10), "PoseLab: " + name.replace("_", " "), fill=INK, font=font)
    depth = _depths(prompt)
    columns: dict[int, list[str]] = {}
    for node_id in sorted(prompt, key=lambda n: (depth[n], int(n) if n.isdigit() else 0, n)):
        columns.setdefault(depth[node_id], []).append(node_id)
    n_cols = max(columns) + 1
    col_w = (SIZE[0] - 20) / n_cols
    box_w = min(col_w - 10, 150)
    pos = {}
    for c, ids in columns.items():
        row_h = (SIZE[1] - 40) / len(ids)
        box_h = min(row_h - 8, 34)
        for r, node_id in enumerate(ids):
            x0 = 10 + c * col_w + (col_w - box_w) / 2
            y0 = 34 + r * row_h + (row_h - box_h) / 2
            pos[node_id] = (x0, y0, x0 + box_w, y0 + box_h)
    for node_id, node in prompt.items():  # links first, boxes over them
        for value in node["inputs"].values():
            if (
                isinstance(value, list)
                and len(value) == 2
                and isinstance(value[0], str)
                and value[0] in pos
            ):
                a, b = pos[value[0]], pos[node_id]
                d.line([(a[2], (a[1] + a[3]) / 2), (b[0], (b[1] + b[3]) / 2)], fill=LINK, width=1)
    for node_id, node in prompt.items():
        box = pos[node_id]
        ours = node["class_type"].startswith("PoseLab")
        d.rounded_rectangle(box, radius=5, fill=OURS if ours else CORE)
        label = _label(node)
        max_chars = max(int((box[2] - box[0] - 8) / 6), 4)
        if len(label) > max_chars:
            label = label[: max_chars - 1] + "…"
        d.text((box[0] + 5, (box[1] + box[3]) / 2 - 5), label, fill=INK, font=font)
    return img


def main() -> None:
    for api in sorted(API_DIR.glob("*.json")):
        prompt = json.loads(api.read_text())
        out = UI_DIR / f"{api.stem}.jpg"
        draw(api.stem, prompt).save(out, quality=88)
        print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
