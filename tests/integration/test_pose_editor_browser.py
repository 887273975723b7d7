"""The Pose Editor in the real web UI: Debian's Chromium driven with real mouse and keyboard events
against the real server.

A photo's detected skeleton appears in the widget; dragging the wrist by (dx, dy) screen pixels
moves the output POSE_KEYPOINT's wrist by (dx, dy) / (screen pixels per pose pixel); the edit
survives saving the workflow, reloading the page and loading it again; undo brings the input pose
back; the saved workflow queued through POST /prompt (no browser) gives the edited pose; ten people
with hands and faces stay responsive and keep every untouched point; a renamed pack folder still
loads the editor. Screenshots are kept in the pytest temp folder (printed), as test artefacts.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import comfy_host
import numpy as np
import pytest
from PIL import Image
from test_browser import CHROMIUM, CHROMIUM_ARGS

from poselab.models.pose import editor_state
from poselab.models.pose.keypoints import (
    J,
    Person,
    PoseFrame,
    parse_pose_keypoint,
    to_pose_keypoint,
)

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = "edit_pose_by_hand"
EDITOR = "PoseLabPoseEditor"
RW = J["right_wrist"]
DRAG = (36, -48)  # screen pixels
# Keeps what the first test produced for the API-only test.
RESULTS: dict = {}


@pytest.fixture(scope="module")
def screens() -> Path:
    """Test artefacts: screenshots and the saved workflows (output/ is git-ignored)."""
    path = (
        Path(os.environ.get("POSELAB_ARTEFACTS", REPO / "output" / "test_artefacts"))
        / "pose_editor"
    )
    path.mkdir(parents=True, exist_ok=True)
    print(f"\nPose Editor screenshots: {path}")
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), (
        "Debian's chromium is needed for the browser tests (apt-get install chromium)"
    )
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(browser, server):
    # A first visit opens the template browser over the graph; a returning user's setting skips it.
    server.post_json("/settings/Comfy.TutorialCompleted", True)
    server.post_json("/settings/Comfy.Minimap.Visible", False)
    page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
    page.poselab_errors = []
    page.poselab_missing = []
    page.on("pageerror", lambda exc: page.poselab_errors.append(str(exc)))
    page.on("response", lambda r: r.status >= 400 and page.poselab_missing.append(r.url))
    load_app(page, server)
    return page


def load_app(page, server):
    page.goto(server.url, wait_until="domcontentloaded", timeout=120_000)
    page.wait_for_function(
        "() => window.app && window.app.graph && window.LiteGraph", timeout=120_000
    )
    page.wait_for_function(
        "() => window.app.extensions.some(e => e.name === 'poselab.pose_editor')", timeout=60_000
    )


def our_errors(page) -> list[str]:
    return [e for e in page.poselab_errors if "pose_editor" in e or "poselab" in e.lower()]


def show_editor(page, workflow: dict | None = None, size=(720, 800)) -> None:
    """Load the workflow (or use the graph as it is) and put the editor node at 1:1 zoom in view."""
    page.evaluate(
        """async ([wf, size]) => {
            if (wf) await window.app.loadGraphData(wf, true, true, 'poselab-editor-test');
            const node = window.app.graph._nodes.find(n => n.type === 'PoseLabPoseEditor');
            node.setSize(size);
            const ds = window.app.canvas.ds;
            ds.scale = 1;
            ds.offset = [-node.pos[0] + 420, -node.pos[1] + 140];
            window.app.canvas.setDirty(true, true);
            window.app.canvas.draw(true, true);
        }""",
        [workflow, list(size)],
    )
    # DOM widgets follow the canvas on the next animation frames.
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    page.wait_for_timeout(300)
    page.evaluate(
        "() => window.app.graph._nodes.find(n => n.type === 'PoseLabPoseEditor').poselabEditor.draw()"
    )


def editor_eval(page, body: str, arg=None):
    return page.evaluate(
        f"(arg) => {{ const node = window.app.graph._nodes.find(n => n.type === '{EDITOR}'); const ed = node.poselabEditor; {body} }}",
        arg,
    )


def new_editor(
    page, frames: list[PoseFrame] | None = None, size=(900, 820), arrange: bool = True
) -> None:
    """A fresh graph holding one Pose Editor that received ``frames`` as its input (as after a run)."""
    page.evaluate(
        """(pose) => {
            window.app.graph.clear();
            const node = window.LiteGraph.createNode('PoseLabPoseEditor');
            node.pos = [300, 100];
            window.app.graph.add(node);
            window.app.canvas.ds.scale = 1;
            window.app.canvas.ds.offset = [0, 0];
            window.app.canvas.setDirty(true, true);
            if (pose) node.onExecuted({openpose_json: [pose], poselab_background: []});
        }""",
        json.dumps(to_pose_keypoint(frames)) if frames else None,
    )
    page.wait_for_function(
        f"() => window.app.graph._nodes.find(n => n.type === '{EDITOR}').poselabEditor.tables",
        timeout=30_000,
    )
    if arrange:
        show_editor(page, None, size=size)


def queue(page, server, timeout: float = 300) -> dict:
    """Queue the graph from the page (the frontend builds the prompt); the /history entry when done."""
    before = set(server.get_json("/history"))
    seen = editor_eval(page, "return ed.received;")
    page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    deadline = time.time() + timeout
    while time.time() < deadline:
        history = server.get_json("/history")
        new = [k for k in history if k not in before]
        if new and history[new[0]].get("status", {}).get("completed") is not None:
            entry = history[new[0]]
            err = comfy_host.execution_error(entry)
            assert err is None, f"{err}\n{server.log_tail()}"
            page.wait_for_function(
                f"() => window.app.graph._nodes.find(n => n.type === '{EDITOR}').poselabEditor.received > {seen}",
                timeout=30_000,
            )
            return entry
        time.sleep(0.25)
    raise TimeoutError("the queued workflow did not finish")


def saved_pose(server, entry: dict) -> PoseFrame:
    texts = [
        t
        for out in entry["outputs"].values()
        for t in out.get("text", [])
        if t.startswith("saved ")
    ]
    assert len(texts) == 1, entry["outputs"]
    return parse_pose_keypoint(
        (server.base_dir / "output" / texts[0].removeprefix("saved ")).read_text()
    )[0]


def pixel(page, x: float, y: float) -> tuple[int, int, int]:
    shot = page.screenshot(clip={"x": x - 1, "y": y - 1, "width": 3, "height": 3})
    return tuple(int(v) for v in np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))[1, 1])


def shown_point(page, person: int, joint: int):
    return editor_eval(
        page,
        "const d = ed.displayed()[arg[0]]; return d ? d.person.body[arg[1]] : null;",
        [person, joint],
    )


def drag(page, start, delta, steps: int = 12) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    for i in range(1, steps + 1):
        page.mouse.move(start[0] + delta[0] * i / steps, start[1] + delta[1] * i / steps)
    page.mouse.up()


def test_drag_a_detected_wrist_queue_save_reload_and_undo(comfy_server, browser, screens):
    page = open_page(browser, comfy_server)
    workflow = json.loads((REPO / "workflows" / f"{WORKFLOW}.json").read_text())
    show_editor(page, workflow)
    page.screenshot(path=str(screens / "01_workflow_loaded.png"))

    # Run it on the photo: the detected skeleton appears in the widget.
    first = queue(page, comfy_server)
    detected = parse_pose_keypoint(first["outputs"]["3"]["openpose_json"][0])[0]
    assert detected.people, "no person detected in the sample photo"
    assert editor_eval(page, "return ed.displayed().length;") == len(detected.people)
    wrist = detected.people[0].body[RW]
    assert wrist[2] > 0, "the sample photo's right wrist was not detected"
    np.testing.assert_allclose(shown_point(page, 0, RW)[:2], wrist[:2], atol=1e-3)
    x, y = editor_eval(
        page, "return ed.poseToClient(arg[0], arg[1]);", [float(wrist[0]), float(wrist[1])]
    )
    colors = editor_eval(page, "return ed.tables.colors;")
    got = pixel(page, x, y)
    assert np.abs(np.subtract(got, colors[RW])).max() <= 40, (
        f"the wrist joint is not drawn at its place: {got}"
    )
    page.screenshot(path=str(screens / "02_detected_pose_in_the_editor.png"))

    # Drag the wrist with the real mouse.
    scale = editor_eval(page, "return ed.clientScale();")  # screen pixels per pose pixel
    drag(page, (x, y), DRAG)
    expected = wrist[:2] + np.asarray(DRAG) / scale
    value = editor_eval(page, "return ed.value;")
    assert (
        value
        and editor_eval(page, "return node.widgets.find(w => w.name === 'edits').value;") == value
    )
    page.screenshot(path=str(screens / "03_wrist_dragged.png"))
    page.screenshot(
        path=str(screens / "pose_editor_graph.png"),
        clip={"x": 200, "y": 150, "width": 1220, "height": 700},
    )

    # Queue: the output pose's wrist moved by the matching canvas amount; nothing else moved.
    out = saved_pose(comfy_server, queue(page, comfy_server))
    moved = out.people[0].body
    print(
        f"\nwrist drag {DRAG} screen px at {scale:.4f} screen px per pose px: output moved "
        f"{np.round(moved[RW, :2] - wrist[:2], 3).tolist()} pose px, expected {np.round(expected - wrist[:2], 3).tolist()}, "
        f"error {np.abs(moved[RW, :2] - expected).max():.3f} px"
    )
    assert np.abs(moved[RW, :2] - expected).max() <= 1.0, (moved[RW, :2], expected, scale)
    others = [i for i in range(18) if i != RW]
    np.testing.assert_allclose(moved[others], detected.people[0].body[others], atol=2e-3)
    assert len(out.people) == len(detected.people)
    RESULTS.update(expected=expected, detected=detected, value=value)

    # Save the workflow (what Save writes) and its API form, reload the page, load it again.
    saved = page.evaluate("() => window.app.graph.serialize()")
    api_prompt = page.evaluate("async () => (await window.app.graphToPrompt()).output")
    (screens / "saved_workflow.json").write_text(json.dumps(saved, indent=1))
    (screens / "saved_workflow_api.json").write_text(json.dumps(api_prompt, indent=1))
    RESULTS.update(saved=saved, api_prompt=api_prompt)
    load_app(page, comfy_server)
    show_editor(page, saved)
    assert editor_eval(page, "return ed.value;") == value
    # Shown before any run: the stored edit carries the pose it was made on.
    np.testing.assert_allclose(shown_point(page, 0, RW)[:2], expected, atol=1.0)
    x2, y2 = editor_eval(
        page, "return ed.poseToClient(arg[0], arg[1]);", [float(expected[0]), float(expected[1])]
    )
    assert np.abs(np.subtract(pixel(page, x2, y2), colors[RW])).max() <= 40
    page.screenshot(path=str(screens / "04_reloaded_edit_still_there.png"))

    # Undo (keyboard, focus in the editor) brings the input pose back; redo and undo again.
    page.mouse.click(x2, y2)  # focus the editor (a click without a drag edits nothing)
    assert editor_eval(page, "return ed.value;") == value
    page.keyboard.press("Control+z")
    assert editor_eval(page, "return ed.value;") == ""
    np.testing.assert_allclose(shown_point(page, 0, RW)[:2], wrist[:2], atol=1e-3)
    page.keyboard.press("Control+Shift+z")
    assert editor_eval(page, "return ed.value;") == value
    page.keyboard.press("Control+z")
    assert editor_eval(page, "return node.widgets.find(w => w.name === 'edits').value;") == ""
    back = saved_pose(comfy_server, queue(page, comfy_server))
    np.testing.assert_allclose(back.people[0].body, detected.people[0].body, atol=2e-3)
    page.screenshot(path=str(screens / "05_undone.png"))
    assert not our_errors(page), page.poselab_errors
    assert not [u for u in page.poselab_missing if "pose_editor" in u], page.poselab_missing
    page.context.close()


def test_the_saved_workflow_queued_through_the_api_gives_the_edited_pose(comfy_server):
    if not RESULTS.get("api_prompt"):
        # alone (pytest -k) there is nothing to replay; in CI the browser test always runs first
        if os.environ.get("CI"):
            pytest.fail("the browser test saved no workflow to replay (it failed or did not run)")
        pytest.skip("needs the workflow saved by the browser test")
    # What the browser exported, queued with no browser (a new file name so it runs again).
    prompt = json.loads(json.dumps(RESULTS["api_prompt"]))
    prompt["4"]["inputs"]["filename_prefix"] = "poselab/api_only"
    out = saved_pose(comfy_server, comfy_server.run_ok(prompt))
    assert np.abs(out.people[0].body[RW, :2] - RESULTS["expected"]).max() <= 1.0
    # And the shipped API workflow with the saved edits pasted into the editor's input.
    shipped = json.loads((REPO / "workflows" / "api" / f"{WORKFLOW}.json").read_text())
    editor_node = next(n for n in RESULTS["saved"]["nodes"] if n["type"] == EDITOR)
    shipped["3"]["inputs"]["edits"] = editor_node["widgets_values"][0]
    shipped["4"]["inputs"]["filename_prefix"] = "poselab/api_only_shipped"
    out = saved_pose(comfy_server, comfy_server.run_ok(shipped))
    assert np.abs(out.people[0].body[RW, :2] - RESULTS["expected"]).max() <= 1.0


def crowd() -> PoseFrame:
    """Ten people with both hands and 70-point faces on a 1024 x 768 canvas."""
    rng = np.random.default_rng(7)
    stand = {
        "nose": (0, -90),
        "neck": (0, -60),
        "right_shoulder": (-25, -58),
        "right_elbow": (-35, -25),
        "right_wrist": (-40, 8),
        "left_shoulder": (25, -58),
        "left_elbow": (35, -25),
        "left_wrist": (40, 8),
        "right_hip": (-15, 20),
        "right_knee": (-17, 65),
        "right_ankle": (-18, 110),
        "left_hip": (15, 20),
        "left_knee": (17, 65),
        "left_ankle": (18, 110),
        "right_eye": (-5, -95),
        "left_eye": (5, -95),
        "right_ear": (-12, -92),
        "left_ear": (12, -92),
    }
    people = []
    for k in range(10):
        cx, cy = 110 + 200 * (k % 5), 200 + 370 * (k // 5)
        body = np.zeros((18, 3), np.float32)
        for name, (dx, dy) in stand.items():
            body[J[name]] = (cx + dx, cy + dy, 1)
        hand = lambda w: np.c_[body[w, :2] + rng.normal(0, 6, (21, 2)), np.ones(21)]  # noqa: E731
        face = np.c_[body[J["nose"], :2] + rng.normal(0, 6, (70, 2)), np.ones(70)]
        people.append(
            Person(body=body, left_hand=hand(J["left_wrist"]), right_hand=hand(RW), face=face)
        )
    return parse_pose_keypoint(to_pose_keypoint([PoseFrame(1024, 768, people)]))[0]


def test_ten_people_with_hands_and_faces_drag_frame_time_and_untouched_points_survive(
    comfy_server, browser, screens
):
    page = open_page(browser, comfy_server)
    frame = crowd()
    new_editor(page, [frame])
    assert editor_eval(page, "return ed.displayed().length;") == 10
    target = 3
    wrist = frame.people[target].body[RW]
    x, y = editor_eval(
        page, "return ed.poseToClient(arg[0], arg[1]);", [float(wrist[0]), float(wrist[1])]
    )
    scale = editor_eval(page, "return ed.clientScale();")
    editor_eval(page, "ed.stats.dragFrameMs.length = 0;")
    drag(page, (x, y), (30, 40), steps=60)
    times = np.asarray(editor_eval(page, "return ed.stats.dragFrameMs;"))
    assert len(times) >= 50
    print(
        f"\ndrag frame (pointer move handling + full redraw), 10 people with hands and 70-point faces, "
        f"{len(times)} frames: median {np.median(times):.2f} ms, p95 {np.percentile(times, 95):.2f} ms, "
        f"max {times.max():.2f} ms"
    )
    assert np.median(times) < 50, "drag frames are far slower than one display frame"
    page.screenshot(path=str(screens / "06_ten_people_hands_faces.png"))

    # The stored edits, applied by the node's code: the dragged wrist and its hand moved, every
    # other point of every person (hands, 70-point faces) is exactly the input's.
    value = editor_eval(page, "return ed.value;")
    (out,), (report,) = editor_state.apply_edit_state([frame], editor_state.parse_edit_state(value))
    assert report.edited_points == 1 + 21 and not report.input_changed
    delta = np.asarray((30, 40)) / scale
    np.testing.assert_allclose(out.people[target].body[RW, :2], wrist[:2] + delta, atol=1.0)
    hand_shift = out.people[target].right_hand[:, :2] - frame.people[target].right_hand[:, :2]
    np.testing.assert_allclose(
        hand_shift, np.broadcast_to(hand_shift[0], hand_shift.shape), atol=2e-3
    )
    for k, (got, want) in enumerate(zip(out.people, frame.people)):
        for part in ("body", "left_hand", "right_hand", "face"):
            a, b = getattr(got, part), getattr(want, part)
            if k == target and part == "right_hand":
                continue  # moved with the wrist, checked above
            if k == target and part == "body":
                keep = [i for i in range(18) if i != RW]
                a, b = a[keep], b[keep]
            np.testing.assert_array_equal(a, b, err_msg=f"person {k} {part}")
    assert not our_errors(page), page.poselab_errors
    page.context.close()


def test_the_editor_loads_when_the_pack_folder_is_renamed(browser, tmp_path_factory, screens):
    """ComfyUI-Manager and zip downloads name the folder differently (here GitHub's zip name);
    nothing may depend on it. (A name with a space breaks every pack's scripts in ComfyUI 0.3.75:
    its /extensions/<name> static route does not serve them.)"""
    base = tmp_path_factory.mktemp("comfy-renamed")
    server = comfy_host.ComfyServer(comfy_host.provision(), base)
    renamed = base / "custom_nodes" / "ComfyUI-PoseLab-main"
    (base / "custom_nodes" / comfy_host.PACK_NAME).rename(renamed)
    with server:
        page = open_page(browser, server)
        assert (
            server.get_json("/object_info/" + EDITOR)[EDITOR]["python_module"]
            == "custom_nodes.ComfyUI-PoseLab-main"
        )
        new_editor(page, None, size=(720, 800))
        editor_eval(page, "ed.addPerson('t-pose');")
        assert editor_eval(page, "return ed.displayed().length;") == 1
        # The stylesheet next to the script loaded (it lays the widget out as a column).
        assert editor_eval(page, "return getComputedStyle(ed.root).flexDirection;") == "column"
        assert not our_errors(page), page.poselab_errors
        missing = [u for u in page.poselab_missing if "poselab" in u.lower()]
        assert not missing, missing
        page.screenshot(path=str(screens / "07_renamed_pack_folder.png"))
        page.context.close()
    shutil.rmtree(base, ignore_errors=True)


def shown_people(page, frame: int) -> list[dict]:
    """The people the editor shows on a frame, as pixel lists (None for a missing point)."""
    return editor_eval(
        page,
        """
        return ed.displayed(arg).map(d => Object.fromEntries(['body', 'left_hand', 'right_hand', 'face'].map(part =>
            [part, d.person[part] ? d.person[part].map(p => p[2] > 0 ? [p[0], p[1]] : null) : null])));""",
        frame,
    )


def assert_shown_is_output(page, inputs: list[PoseFrame]) -> list:
    """What the canvas shows on every frame is what the node outputs for the stored edits."""
    value = editor_eval(page, "return ed.value;")
    out, reports = editor_state.apply_edit_state(inputs, editor_state.parse_edit_state(value))
    for k, frame in enumerate(out):
        shown = shown_people(page, k)
        assert len(shown) == len(frame.people), (
            f"frame {k}: {len(shown)} people shown, node outputs {len(frame.people)}"
        )
        for s, person in zip(shown, frame.people):
            for part in ("body", "left_hand", "right_hand", "face"):
                arr = getattr(person, part)
                if arr is None:
                    assert s[part] is None or all(p is None for p in s[part]), part
                    continue
                for i, p in enumerate(arr):
                    if p[2] > 0:
                        assert (
                            s[part][i] is not None
                            and abs(s[part][i][0] - p[0]) <= 2e-3
                            and abs(s[part][i][1] - p[1]) <= 2e-3
                        ), (k, part, i)
                    else:
                        assert s[part][i] is None, (k, part, i)
    return reports


def two_frames() -> list[PoseFrame]:
    crowd_frame = crowd()
    first = PoseFrame(1024, 768, [crowd_frame.people[1], crowd_frame.people[7]])
    second = PoseFrame(1024, 768, [crowd_frame.people[2]])
    return parse_pose_keypoint(to_pose_keypoint([first, second]))


def test_every_editing_operation_shows_what_the_node_outputs(comfy_server, browser, screens):
    """Rotate a limb, select, mirror, duplicate, move, scale, delete, add, library pose, frames of a
    batch: after each, the edits the widget stores give (through the node's code) exactly the pose
    the canvas shows. Then the input changes upstream: offsets shown, re-base keeps the picture."""
    page = open_page(browser, comfy_server)
    frames = two_frames()
    new_editor(page, frames)

    def to_client(p):
        return editor_eval(
            page, "return ed.poseToClient(arg[0], arg[1]);", [float(p[0]), float(p[1])]
        )

    button = lambda name: page.locator(".poselab-pe-bar button", has_text=name).click()  # noqa: E731
    p0 = frames[0].people[0]
    RE, RS = J["right_elbow"], J["right_shoulder"]

    # Shift + drag the elbow: the upper arm turns about the shoulder, forearm and hand along.
    page.keyboard.down("Shift")
    drag(page, to_client(p0.body[RE]), (-40, -30))
    page.keyboard.up("Shift")
    shown = shown_people(page, 0)[0]
    sho = np.asarray(shown["body"][RS])
    for j in (RE, RW):
        assert (
            abs(
                np.linalg.norm(np.asarray(shown["body"][j]) - sho)
                - np.linalg.norm(p0.body[j, :2] - p0.body[RS, :2])
            )
            < 1e-2
        )
    assert np.linalg.norm(np.asarray(shown["body"][RE]) - p0.body[RE, :2]) > 10
    hand = np.asarray(shown["right_hand"]) - np.asarray(shown["body"][RW])
    np.testing.assert_allclose(
        np.linalg.norm(hand, axis=1),
        np.linalg.norm(p0.right_hand[:, :2] - p0.body[RW, :2], axis=1),
        atol=1e-2,
    )
    assert_shown_is_output(page, frames)

    # Zoom in with the wheel over the canvas: a drag still moves the joint by the screen distance
    # divided by the new scale.
    x, y = to_client(p0.body[J["left_knee"]])
    page.mouse.move(x, y)
    for _ in range(2):
        page.mouse.wheel(0, -200)
    zoomed = editor_eval(page, "return ed.clientScale();")
    assert zoomed > 1.5 * editor_eval(page, "return ed.clientScale() / ed.view.zoom;")
    knee = np.asarray(shown_people(page, 0)[0]["body"][J["left_knee"]])
    drag(page, to_client(knee), (12, 9))
    np.testing.assert_allclose(
        shown_people(page, 0)[0]["body"][J["left_knee"]],
        knee + np.asarray((12, 9)) / zoomed,
        atol=1e-3,
    )
    page.keyboard.press("f")
    assert editor_eval(page, "return ed.view.zoom;") == 1
    assert_shown_is_output(page, frames)

    # M mirrors the selected (dragged) person: the turned right arm becomes the left arm.
    assert editor_eval(page, "return ed.selected;") == {"kind": "work", "index": 0}
    body = np.asarray([p if p else (np.nan, np.nan) for p in shown["body"]])
    page.keyboard.press("m")
    mirrored = np.asarray(shown_people(page, 0)[0]["body"])
    present = ~np.isnan(body[:, 0])
    c = (body[present, 0].min() + body[present, 0].max()) / 2
    np.testing.assert_allclose(
        mirrored[J["left_elbow"]], (2 * c - body[RE, 0], body[RE, 1]), atol=1e-2
    )
    assert_shown_is_output(page, frames)

    # Tab selects the next person; duplicate it, move and scale the copy, delete it.
    page.keyboard.press("Tab")
    assert editor_eval(page, "return ed.selected;") == {"kind": "work", "index": 1}
    button("Dup")
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("+")
    assert editor_eval(page, "return ed.displayed().length;") == 3
    assert_shown_is_output(page, frames)
    page.keyboard.press("Delete")
    assert editor_eval(page, "return ed.displayed().length;") == 2

    # N adds a person; the library pose replaces the selected person's body.
    page.keyboard.press("n")
    page.locator(".poselab-pe-bar select").select_option("arms raised")
    added = shown_people(page, 0)[2]["body"]
    assert added[RW][1] < added[J["nose"]][1], "arms raised: the wrist is above the nose"
    # X removes the selected joint (click it first).
    ear = shown_people(page, 0)[1]["body"][J["left_ear"]]
    page.mouse.click(*to_client(ear))
    page.keyboard.press("x")
    assert shown_people(page, 0)[1]["body"][J["left_ear"]] is None
    page.screenshot(path=str(screens / "08_operations.png"))
    reports = assert_shown_is_output(page, frames)
    assert reports[0].added == 1 and not reports[0].input_changed

    # The next frame of the batch: edits there stay there.
    page.keyboard.press(".")
    assert editor_eval(page, "return ed.frame;") == 1
    p1 = frames[1].people[0]
    drag(page, to_client(p1.body[J["left_ankle"]]), (25, 0))
    page.keyboard.press(",")
    assert editor_eval(page, "return ed.frame;") == 0
    reports = assert_shown_is_output(page, frames)
    assert [r.frame for r in reports] == [0, 1]

    # Undo walks back through the frames' steps.
    page.keyboard.press("Control+z")
    assert editor_eval(page, "return Object.keys(ed.state.frames);") == ["0"]

    # Upstream change: the detector sees both people 15 px right and lists them in the other order.
    moved = []
    for f in frames:
        f = f.copy()
        for p in f.people:
            for part in ("body", "left_hand", "right_hand", "face"):
                arr = getattr(p, part)
                if arr is not None:
                    arr[arr[:, 2] > 0, 0] += 15.0
        f.people.reverse()
        moved.append(f)
    editor_eval(
        page,
        "node.onExecuted({openpose_json: [arg], poselab_background: []}); ed.setFrame(0);",
        json.dumps(to_pose_keypoint(moved)),
    )
    status = editor_eval(page, "return ed.status.textContent;")
    assert "input changed upstream" in status and "offsets" in status
    reports = assert_shown_is_output(page, moved)
    assert reports[0].input_changed and reports[0].unmatched == 0
    before = shown_people(page, 0)
    page.screenshot(path=str(screens / "09_input_changed_offsets.png"))
    button("Re-base")
    reports = assert_shown_is_output(page, moved)
    assert not reports[0].input_changed
    after = shown_people(page, 0)
    for a, b in zip(after, before, strict=True):
        for part in a:
            pa = np.asarray([p if p else (np.nan, np.nan) for p in a[part] or []], float)
            pb = np.asarray([p if p else (np.nan, np.nan) for p in b[part] or []], float)
            np.testing.assert_allclose(
                pa, pb, atol=2e-3, err_msg=part
            )  # NaN (missing) must match too
    assert "input changed" not in editor_eval(page, "return ed.status.textContent;")
    # Reset drops the frame's edits: the new input as it comes.
    button("Reset")
    assert editor_eval(page, "return ed.value;") == ""
    reports = assert_shown_is_output(page, moved)
    assert reports == []
    assert not our_errors(page), page.poselab_errors
    page.context.close()


def test_the_node_help_panel_shows_the_pack_help_pages(comfy_server, browser, screens):
    """The frontend's own help panel (selection toolbox > info) shows js/docs/<NodeId>.md."""
    page = open_page(browser, comfy_server)
    for node_type, marker in (
        ("PoseLabPoseEditor", "Keyboard and mouse"),
        ("PoseLabExtractPose", "Also found by searching"),
    ):
        page.evaluate(
            """(type) => {
                window.app.graph.clear();
                const node = window.LiteGraph.createNode(type);
                node.pos = [420, 220];
                window.app.graph.add(node);
                window.app.canvas.ds.scale = 1;
                window.app.canvas.ds.offset = [0, 0];
                window.app.canvas.selectNode(node);
                window.app.canvas.setDirty(true, true);
            }""",
            node_type,
        )
        page.locator('[data-testid="info-button"]').first.click()
        page.get_by_text(marker).first.wait_for(timeout=30_000)
        page.screenshot(path=str(screens / f"10_help_{node_type}.png"))
    assert not our_errors(page), page.poselab_errors
    page.context.close()


def random_person(rng, cx: float, cy: float) -> Person:
    body = np.c_[
        cx + rng.normal(0, 40, 18),
        cy + rng.normal(0, 60, 18),
        (rng.random(18) > 0.15).astype(np.float32),
    ]

    def part(n):
        return np.c_[cx + rng.normal(0, 30, n), cy + rng.normal(0, 30, n), (rng.random(n) > 0.1)]  # noqa: E731

    return Person(
        body=body,
        left_hand=part(21) if rng.random() > 0.4 else None,
        right_hand=part(21) if rng.random() > 0.4 else None,
        face=part(70) if rng.random() > 0.5 else None,
    )


def random_case(rng):
    """A base frame, random edits of it (moved, removed and placed points, deleted and added people),
    and an incoming frame that differs from the base in one of several ways."""
    w, h = int(rng.integers(200, 900)), int(rng.integers(200, 900))
    base = parse_pose_keypoint(
        to_pose_keypoint(
            [
                PoseFrame(
                    w,
                    h,
                    [
                        random_person(rng, rng.uniform(0.2, 0.8) * w, rng.uniform(0.3, 0.7) * h)
                        for _ in range(int(rng.integers(1, 5)))
                    ],
                )
            ]
        )
    )[0]
    edited = []
    for p in base.people:
        if rng.random() < 0.15:
            edited.append(None)
            continue
        q = p.copy()
        for part in ("body", "left_hand", "right_hand", "face"):
            arr = getattr(q, part)
            if arr is None:
                continue
            for i in rng.choice(len(arr), size=int(rng.integers(0, 4)), replace=False):
                arr[i] = (
                    (0, 0, 0)
                    if rng.random() < 0.2
                    else (arr[i, 0] + rng.normal(0, 20), arr[i, 1] + rng.normal(0, 20), 1)
                )
        edited.append(q)
    added = [random_person(rng, w / 2, h / 2)] if rng.random() < 0.4 else []
    incoming = base.copy()
    kind = rng.integers(0, 4)
    if kind == 1:  # everyone moved a little, listed in another order
        for p in incoming.people:
            for part in ("body", "left_hand", "right_hand", "face"):
                arr = getattr(p, part)
                if arr is not None:
                    arr[arr[:, 2] > 0, :2] += rng.normal(0, 3, 2)
        rng.shuffle(incoming.people)
    elif kind == 2:  # a canvas 1.5x the size
        incoming = PoseFrame(
            int(w * 1.5),
            int(h * 1.5),
            [editor_state._scaled_person(p, 1.5, 1.5) for p in base.people],
        )
    elif kind == 3:  # a person gone, a stranger far away
        incoming.people = incoming.people[1:] + [random_person(rng, -5 * w, -5 * h)]
    incoming = parse_pose_keypoint(to_pose_keypoint([incoming]))[0]
    return base, editor_state.diff_frame(base, edited, added), incoming


def test_the_widget_applies_stored_edits_exactly_as_the_node(comfy_server, browser):
    """model.js (what the canvas shows) against editor_state.py (what the node outputs) on 60
    random cases: moved, removed and placed points, deleted and added people, and incoming poses
    that are equal, moved and reordered, on a bigger canvas, or missing a person."""
    page = open_page(browser, comfy_server)
    rng = np.random.default_rng(12)
    cases = []
    while len(cases) < 60:
        base, edit, incoming = random_case(rng)
        if not edit.people:
            continue
        text = editor_state.dump_edit_state(editor_state.EditState({0: edit}))
        out, report = editor_state.apply_frame_edit(
            incoming, editor_state.parse_edit_state(text).frames[0]
        )
        cases.append(
            {
                "text": text,
                "incoming": to_pose_keypoint([incoming])[0],
                "want": to_pose_keypoint([out])[0],
                "report": report.as_dict(),
            }
        )
    results = page.evaluate(
        f"""async (cases) => {{
            const M = await import('/extensions/{comfy_host.PACK_NAME}/pose_editor/model.js');
            return cases.map(c => {{
                const r = M.applyFrameEdit(M.readFrame(c.incoming), M.parseState(c.text).frames[0]);
                return {{got: M.writeFrame({{width: c.incoming.canvas_width, height: c.incoming.canvas_height, people: r.people}}),
                         report: r.report}};
            }});
        }}""",
        cases,
    )
    kinds = set()
    for k, (case, res) in enumerate(zip(cases, results)):
        want, got = parse_pose_keypoint([case["want"]])[0], parse_pose_keypoint([res["got"]])[0]
        assert len(got.people) == len(want.people), k
        for a, b in zip(got.people, want.people):
            for part in ("body", "left_hand", "right_hand", "face"):
                pa, pb = getattr(a, part), getattr(b, part)
                assert (pa is None) == (pb is None) or not (
                    (pa if pa is not None else pb)[:, 2] > 0
                ).any(), (k, part)
                if pa is not None and pb is not None:
                    np.testing.assert_array_equal(
                        pa[:, 2] > 0, pb[:, 2] > 0, err_msg=f"case {k} {part}"
                    )
                    np.testing.assert_allclose(
                        pa[:, :2], pb[:, :2], atol=2e-3, err_msg=f"case {k} {part}"
                    )
        want_report = {key: v for key, v in case["report"].items() if key != "frame"}
        assert res["report"] == want_report, k
        kinds.add(
            (
                want_report["input_changed"],
                want_report["unmatched"] > 0,
                want_report["added"] > 0,
                want_report["deleted"] > 0,
            )
        )
    assert len(kinds) >= 5, (
        kinds
    )  # the cases cover changed/unchanged inputs, lost, added and deleted people
    page.context.close()


def test_the_editor_works_in_the_vue_node_layout(comfy_server, browser, screens):
    """ComfyUI's "Nodes 2.0" (Vue) node layout, opt-in in this frontend and its future default:
    the canvas shows and a real drag edits the pose there too."""
    comfy_server.post_json("/settings/Comfy.VueNodes.Enabled", True)
    try:
        page = open_page(browser, comfy_server)
        frame = two_frames()[0]
        new_editor(page, [frame], arrange=False)
        page.wait_for_timeout(500)
        editor_eval(page, "ed.draw();")
        height = editor_eval(page, "return ed.canvas.getBoundingClientRect().height;")
        assert height >= 150, f"the canvas is squeezed to {height} px in the Vue layout"
        wrist = frame.people[0].body[RW]
        x, y = editor_eval(
            page, "return ed.poseToClient(arg[0], arg[1]);", [float(wrist[0]), float(wrist[1])]
        )
        scale = editor_eval(page, "return ed.clientScale();")
        drag(page, (x, y), (20, 25))
        (out,), _ = editor_state.apply_edit_state(
            [frame], editor_state.parse_edit_state(editor_eval(page, "return ed.value;"))
        )
        np.testing.assert_allclose(
            out.people[0].body[RW, :2], wrist[:2] + np.asarray((20, 25)) / scale, atol=1.0
        )
        page.screenshot(path=str(screens / "11_vue_node_layout.png"))
        assert not our_errors(page), page.poselab_errors
        page.context.close()
    finally:
        comfy_server.post_json("/settings/Comfy.VueNodes.Enabled", False)
