"""The evaluation command on a small synthetic folder: layout checks, CSV / JSON / PNG outputs,
and numbers equal to the metric functions (identity result = target -> SSIM 1, PSNR inf)."""

import csv
import importlib.util
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from poselab.models.common.files import read_rgb
from poselab.models.metrics import evaluate as ev
from poselab.models.metrics import image_quality
from poselab.models.pose.keypoints import Person, PoseFrame, to_pose_keypoint

REPO = Path(__file__).resolve().parents[2]


def _cli():
    spec = importlib.util.spec_from_file_location(
        "poselab_evaluate_cli", REPO / "scripts" / "evaluate.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write(path: Path, rgb: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture()
def folder(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:64]
    for i in range(2):
        src = np.stack([(xx * (3 + i)) % 255, (yy * 5) % 255, (xx + yy) % 255], -1).astype(np.uint8)
        _write(tmp_path / "source" / f"p{i}.png", src)
        _write(tmp_path / "target" / f"p{i}.png", src)
        _write(tmp_path / "generated" / "identity" / f"p{i}.png", src)
        noisy = np.clip(src + rng.normal(0, 20, src.shape), 0, 255).astype(np.uint8)
        _write(tmp_path / "generated" / "noisy" / f"p{i}.png", noisy)
        mask = np.zeros((48, 64, 3), np.uint8)
        mask[10:30, 20:40] = 255
        _write(tmp_path / "masks" / f"p{i}.png", mask)
    return tmp_path


def test_run_writes_csv_json_report_with_correct_numbers(folder, tmp_path):
    out = tmp_path / "out"
    res = ev.run(folder, out, ev.Options(pose=False, identity=False), progress=False)
    s = res["summary"]
    assert set(s) == {"identity", "noisy"}
    assert s["identity"]["ssim"] == pytest.approx(1.0) and math.isinf(s["identity"]["psnr"])
    # the noisy method's numbers are the metric functions' on the same files
    gen = torch.from_numpy(read_rgb(folder / "generated" / "noisy" / "p0.png")).float()[None] / 255
    tgt = torch.from_numpy(read_rgb(folder / "target" / "p0.png")).float()[None] / 255
    row = next(r for r in res["rows"] if r["method"] == "noisy" and r["pair"] == "p0")
    assert row["ssim"] == pytest.approx(image_quality.ssim(gen, tgt).item(), abs=1e-9)
    assert row["psnr"] == pytest.approx(image_quality.psnr(gen, tgt).item(), abs=1e-9)
    assert 0 < row["masked_ssim"] < 1 and math.isnan(row["pck@0.1"])
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["psnr"] for r in rows if r["method"] == "identity"} == {"inf"}
    assert rows[0]["pck@0.1"] == ""  # not computed -> empty, not 0
    doc = json.loads((out / "summary.json").read_text())  # strict JSON: no Infinity / NaN tokens
    assert (
        doc["methods"]["identity"]["psnr"] == "inf" and doc["methods"]["noisy"]["pck@0.1"] is None
    )
    report = cv2.imread(str(out / "report.png"))
    assert report is not None and report.shape[1] > 300
    assert "identity" in res["table"] and "noisy" in res["table"]


def test_pose_accuracy_from_keypoint_files(folder, tmp_path):
    """Keypoints given as files: a result with nobody in it scores PCK 0 (all joints missed)."""
    body = np.zeros((18, 3), np.float32)
    body[[1, 2, 5, 8, 11], :] = [[32, 10, 1], [25, 12, 1], [39, 12, 1], [28, 35, 1], [36, 35, 1]]
    kp = folder / "keypoints"
    kp.mkdir()
    for i in range(2):
        (kp / f"p{i}.json").write_text(
            json.dumps(to_pose_keypoint([PoseFrame(64, 48, [Person(body=body)])]))
        )
    lay = ev.scan(folder)
    evaluator = ev.Evaluator(lay, ev.Options(identity=False))
    bodies = evaluator.target_bodies("p0", 128, 96)  # scaled to the result's size
    assert np.allclose(bodies[0][1, :2], [64, 20])
    row = evaluator.pair("noisy", "p0")
    assert row["pck@0.2"] == 0.0 and row["oks"] == 0.0


def test_layout_errors_and_cli(folder, tmp_path, capsys):
    with pytest.raises(ev.LayoutError, match="source/"):
        ev.scan(tmp_path / "target")
    (folder / "generated" / "noisy" / "stray.png").write_bytes(
        (folder / "source" / "p0.png").read_bytes()
    )
    with pytest.raises(ev.LayoutError, match="no source/NAME"):
        ev.scan(folder)
    (folder / "generated" / "noisy" / "stray.png").unlink()
    cli = _cli()
    assert (
        cli.main(
            [
                "run",
                str(folder),
                "--no-pose",
                "--no-identity",
                "--quiet",
                "--out",
                str(tmp_path / "cli"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "noisy" in printed and (tmp_path / "cli" / "summary.json").is_file()
    with pytest.raises(SystemExit, match="Folder layout"):
        cli.main(["run", str(tmp_path / "empty_dir_that_is_missing")])


def test_lpips_column_with_backbone_file(folder, tmp_path):
    import torchvision

    with torch.device("meta"):
        shapes = {
            k: v.shape for k, v in torchvision.models.alexnet(weights=None).state_dict().items()
        }
    gen = torch.Generator().manual_seed(0)
    weights = tmp_path / "alexnet_random.pth"
    torch.save(
        {
            k: torch.randn(s, generator=gen) * 0.05
            for k, s in shapes.items()
            if k.startswith("features.")
        },
        weights,
    )
    res = ev.run(
        folder,
        tmp_path / "out",
        ev.Options(lpips_weights=str(weights), pose=False, identity=False),
        progress=False,
    )
    assert res["summary"]["identity"]["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert res["summary"]["noisy"]["lpips"] > 0
    assert "lpips" in res["table"].splitlines()[0]
