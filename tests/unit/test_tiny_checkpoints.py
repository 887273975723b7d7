"""The test-time checkpoint builder (tests/tiny_checkpoints.py): what ComfyUI's own detector makes
of each architecture, read from the state-dict shapes on the meta device (nothing is built)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BUILDER = Path(__file__).resolve().parent.parent / "tiny_checkpoints.py"


def describe(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(BUILDER), "unused", "--describe", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args, config, model_class, params",
    [
        # the full-size architectures (real SD1.5: 859.52M, real SDXL: 2.567B UNet parameters)
        (
            (
                "--kind",
                "sd15",
                "--channel-mult",
                "1,2,4,4",
                "--res-blocks",
                "2",
                "--depth",
                "1,1,1,0",
                "--middle",
            ),
            "SD15",
            "BaseModel",
            859_520_964,
        ),
        (
            (
                "--kind",
                "sdxl",
                "--channel-mult",
                "1,2,4",
                "--res-blocks",
                "2",
                "--depth",
                "0,2,10",
                "--middle",
            ),
            "SDXL",
            "SDXL",
            2_567_463_684,
        ),
        # the tiny ones the tests use
        (
            ("--kind", "sdxl", "--channel-mult", "1,1,1", "--res-blocks", "2", "--depth", "0,1,2"),
            "Segmind_Vega",
            "SDXL",
            None,
        ),
        (
            (
                "--kind",
                "sd15_layout",
                "--channel-mult",
                "1,1",
                "--res-blocks",
                "2",
                "--depth",
                "1,0",
            ),
            "SD15",
            "BaseModel",
            None,
        ),
    ],
)
def test_builder_architectures_are_detected_by_comfyui(args, config, model_class, params):
    got = describe(*args)
    assert (got["config"], got["model_class"]) == (config, model_class), got
    if params is not None:
        assert got["unet_parameters"] == params
