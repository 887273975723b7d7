"""Every pack node has a help page (js/docs/<NodeId>.md, what the frontend's node help panel
shows), served by the real server, naming every input and output; the Pose Editor's page lists
the widget's keyboard shortcuts. (The panel itself is tested in test_pose_editor_browser.py.)"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import comfy_host
import node_docs

REPO = Path(__file__).resolve().parents[2]


def test_every_pack_node_has_a_help_page_the_server_serves(comfy_server):
    nodes = node_docs.pack_nodes(comfy_server.object_info())
    assert len(nodes) >= 30
    pages = {p.stem for p in node_docs.DOCS_DIR.glob("*.md")}
    assert not set(nodes) - pages, (
        f"no help page (run scripts/node_docs.py): {sorted(set(nodes) - pages)}"
    )
    assert not pages - set(nodes), f"help pages of no node: {sorted(pages - set(nodes))}"
    for node_id, info in nodes.items():
        text = (node_docs.DOCS_DIR / f"{node_id}.md").read_text(encoding="utf-8")
        assert text.startswith(f"# {info['display_name']}\n"), node_id
        for section in ("required", "optional"):
            for name in info["input"].get(section, {}):
                assert f"**{name}**" in text, (
                    f"{node_id}: input {name} is not in its help page (run scripts/node_docs.py)"
                )
        for name in info.get("output_name") or info["output"]:
            assert f"**{name}**" in text, (
                f"{node_id}: output {name} is not in its help page (run scripts/node_docs.py)"
            )
        url = f"{comfy_server.url}/extensions/{comfy_host.PACK_NAME}/docs/{node_id}.md"
        with urllib.request.urlopen(url, timeout=30) as resp:
            assert resp.read().decode("utf-8") == text


def test_the_editor_help_lists_every_shortcut_of_the_widget():
    shortcuts = node_docs.editor_shortcuts()
    assert len(shortcuts) >= 15 and any("Ctrl + Z" in keys for keys, _ in shortcuts)
    text = (node_docs.DOCS_DIR / "PoseLabPoseEditor.md").read_text(encoding="utf-8")
    for keys, action in shortcuts:
        assert f"| {keys} | {action} |" in text, (
            f"shortcut {keys!r} missing: run scripts/node_docs.py"
        )
    assert "## When the incoming pose changes" in text


def test_pages_and_the_nodes_reference_are_current(tmp_path):
    """js/docs/*.md and docs/NODES.md are exactly what the schemas of the pack give, on a fresh
    server as scripts/node_docs.py runs one (file menus list what the model folders hold, so the
    session's server, where other tests put model files, would describe them differently)."""
    with comfy_host.running_server(tmp_path / "fresh") as server:
        info = server.object_info()
    pages = node_docs.generate_all(info)
    stale = [
        n
        for n, text in pages.items()
        if (node_docs.DOCS_DIR / f"{n}.md").read_text(encoding="utf-8") != text
    ]
    assert not stale, f"stale help pages (run scripts/node_docs.py): {stale}"
    assert node_docs.INDEX.read_text(encoding="utf-8") == node_docs.render_index(info, pages), (
        "docs/NODES.md is stale: run scripts/node_docs.py"
    )
