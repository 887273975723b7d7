"""The main job: repose a person in a photo through a real ComfyUI, with the embedded defaults.

Starts ComfyUI 0.3.75 (CPU, loopback) with PoseLab linked in, queues the default workflow
``workflows/api/repose_to_named_pose.json`` (extract the pose, pick "waving" from the pose
library fitted to the person, part-warp repose, overlay) through ``POST /prompt`` on a bundled
sample photo (or ``--image``), shows ComfyUI's progress messages as they arrive, and copies every image the
workflow saved (the reposed photo, the pose overlay, ...) into ``--out``. Existing files in
``--out`` are never overwritten.

    scripts/run.sh demo [--image my_photo.jpg] [--out output/]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_host  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WORKFLOW = REPO / "workflows" / "api" / "repose_to_named_pose.json"
DEFAULT_IMAGE = REPO / "assets" / "samples" / "cameraman.png"


def unique_path(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name_1``, ``name_2`` ... if that exists: never overwrite."""
    path = folder / name
    stem, suffix = path.stem, path.suffix
    counter = 1
    while path.exists():
        path = folder / f"{stem}_{counter}{suffix}"
        counter += 1
    return path


def watch_progress(server: comfy_host.ComfyServer, prompt: dict, stop: threading.Event) -> None:
    """Print ComfyUI's websocket progress events (node started, step i/n) until ``stop``."""
    import aiohttp

    async def listen() -> None:
        url = f"ws://127.0.0.1:{server.port}/ws?clientId={server.client_id}"
        titles = {k: n.get("_meta", {}).get("title") or n["class_type"] for k, n in prompt.items()}
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url) as ws:
                while not stop.is_set():
                    try:
                        msg = await asyncio.wait_for(ws.receive(), timeout=0.5)
                    except asyncio.TimeoutError:
                        continue
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    event = json.loads(msg.data)
                    data = event.get("data", {})
                    if event.get("type") == "executing" and data.get("node"):
                        node = data["node"]
                        print(f"[comfyui] running node {node} {titles.get(node, '')}", flush=True)
                    elif event.get("type") == "progress":
                        print(
                            f"[comfyui]   node {data.get('node')}: {data.get('value')}/{data.get('max')}",
                            flush=True,
                        )
                    elif event.get("type") == "execution_cached" and data.get("nodes"):
                        print(f"[comfyui] cached nodes: {', '.join(data['nodes'])}", flush=True)

    try:
        asyncio.run(listen())
    except Exception as exc:  # progress display is best effort; the result is read from /history
        print(f"[poselab] (progress display stopped: {exc})", flush=True)


def run(image: Path, out_dir: Path, workflow: Path, comfyui: str | None) -> list[Path]:
    prompt = json.loads(workflow.read_text())
    loaders = [n for n in prompt.values() if n["class_type"] == "LoadImage"]
    if not loaders:
        raise SystemExit(f"{workflow} has no LoadImage node to feed the photo into")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="poselab-demo-") as base:
        root = comfy_host.provision(comfyui)
        print(f"[poselab] starting ComfyUI from {root} ...", flush=True)
        with comfy_host.ComfyServer(root, Path(base)) as server:
            name = server.upload_image(image, "poselab_source" + image.suffix.lower())
            # The first LoadImage is the person to repose; any others keep their sample photos.
            loaders[0]["inputs"]["image"] = name
            for sample in (REPO / "assets" / "samples").glob("*.png"):
                server.upload_image(sample)
            stop = threading.Event()
            watcher = threading.Thread(
                target=watch_progress, args=(server, prompt, stop), daemon=True
            )
            watcher.start()
            time.sleep(0.3)
            started = time.time()
            print(f"[poselab] queueing {workflow} on {image}", flush=True)
            entry = server.run(prompt, timeout=1800)
            stop.set()
            watcher.join(timeout=2)
            error = comfy_host.execution_error(entry)
            if error:
                raise SystemExit(f"[poselab] the workflow failed: {error}")
            saved = []
            for output in entry["outputs"].values():
                for img in output.get("images", []):
                    if img.get("type") != "output":
                        continue
                    src = server.base_dir / "output" / img.get("subfolder", "") / img["filename"]
                    dst = unique_path(out_dir, img["filename"])
                    shutil.copyfile(src, dst)
                    saved.append(dst)
            print(f"[poselab] done in {time.time() - started:.1f}s; wrote:", flush=True)
            for path in saved:
                print(f"  {path}", flush=True)
            return saved


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--image", type=Path, default=DEFAULT_IMAGE, help="photo of the person to repose"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "output",
        help="folder for the results (never overwritten)",
    )
    parser.add_argument(
        "--workflow", type=Path, default=DEFAULT_WORKFLOW, help="API-format workflow to queue"
    )
    parser.add_argument(
        "--comfyui", default=None, help="use this ComfyUI folder instead of the provisioned one"
    )
    args = parser.parse_args()
    if not args.image.is_file():
        raise SystemExit(f"no such image: {args.image}")
    saved = run(args.image.resolve(), args.out.resolve(), args.workflow.resolve(), args.comfyui)
    if not saved:
        raise SystemExit("[poselab] the workflow saved no image")


if __name__ == "__main__":
    main()
