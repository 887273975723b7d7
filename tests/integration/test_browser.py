"""The real ComfyUI web UI (comfyui-frontend-package) in headless Chromium: the pack's frontend
extension loads, and every UI-format workflow opens with no missing node and no broken link.

Needs Debian's chromium (``.ci/run`` installs it) and the ``playwright`` Python package, driven
with ``executable_path`` so no browser is downloaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UI_FILES = sorted((REPO / "workflows").glob("*.json"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Chromium's own background connections fail on this closed network; keep it quiet and local.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="module")
def page(comfy_server, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), (
        "Debian's chromium is needed for the browser tests (apt-get install chromium)"
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(comfy_server.url, wait_until="domcontentloaded", timeout=120_000)
        page.wait_for_function(
            "() => window.app && window.app.graph && window.LiteGraph", timeout=120_000
        )
        page.poselab_errors = errors
        yield page
        browser.close()


def test_frontend_loads_the_pack_extension(page):
    names = page.evaluate("() => window.app.extensions.map(e => e.name)")
    assert "poselab.report" in names
    registered = page.evaluate(
        "() => Object.keys(window.LiteGraph.registered_node_types).filter(t => t.startsWith('PoseLab'))"
    )
    assert registered, "the web UI knows no PoseLab node"
    assert not [e for e in page.poselab_errors if "poselab" in e.lower()], page.poselab_errors


def test_extension_shows_a_node_report_after_it_ran(page):
    shown = page.evaluate(
        """() => {
            const node = window.LiteGraph.createNode('PoseLabExtractPose');
            window.app.graph.add(node);
            node.onExecuted({openpose_json: [JSON.stringify([{people: [{}, {}], canvas_width: 8, canvas_height: 8}])]});
            const metrics = window.LiteGraph.createNode('PoseLabImageMetrics');
            window.app.graph.add(metrics);
            metrics.onExecuted({text: ['SSIM 0.91 | PSNR 27.3 dB']});
            const value = (n) => (n.widgets || []).find(w => w.name === 'poselab_report')?.value;
            return [value(node), value(metrics)];
        }"""
    )
    assert shown == ["people per image: 2", "SSIM 0.91 | PSNR 27.3 dB"]


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_workflow_opens_in_the_editor(page, path, tmp_path):
    workflow = json.loads(path.read_text())
    result = page.evaluate(
        """async (wf) => {
            await window.app.loadGraphData(wf, true, true, 'poselab-test');
            const nodes = window.app.graph._nodes;
            const missing = nodes.filter(n => !window.LiteGraph.registered_node_types[n.type]).map(n => n.type);
            const links = Object.values(window.app.graph.links || {}).filter(Boolean).length
                || (window.app.graph._links ? window.app.graph._links.size : 0);
            const saved = window.app.graph.serialize();
            const widgets = Object.fromEntries(saved.nodes.map(n => [n.id, n.widgets_values || []]));
            return {count: nodes.length, missing, links, widgets};
        }""",
        workflow,
    )
    assert result["count"] == len(workflow["nodes"])
    assert result["missing"] == [], f"{path.name}: nodes the UI does not know: {result['missing']}"
    assert result["links"] == len(workflow["links"]), f"{path.name}: links lost while loading"
    # The editor re-serialises exactly the widget values we wrote: none shifted, none dropped.
    for node in workflow["nodes"]:
        assert result["widgets"][str(node["id"])] == node["widgets_values"], (
            f"{path.name}: {node['type']} widgets differ"
        )
    page.screenshot(path=str(tmp_path / f"{path.stem}.png"))
