"""Bad requests through the real server get a clear error and break nothing for the next ones.

Each case is one that a probe of the running server once found (issue: hardening): an
off-canvas pose that left MediaPipe's graph broken until restart, trainers reading folders
outside ComfyUI's, raw errors from corrupt model files, unbounded sizes, a batch failing for one
empty frame, hidden files from odd file names, error types shown as file paths.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import comfy_host
import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SAMPLE = "cameraman.png"


def workflow(name: str) -> dict:
    return json.loads((REPO / "workflows" / "api" / f"{name}.json").read_text())


def error_of(server, prompt: dict) -> dict:
    """Run a prompt that must fail; returns ComfyUI's execution_error message (type and text)."""
    comfy_host.fill_defaults(prompt, server.object_info())
    entry = server.run(prompt)
    assert entry["status"]["status_str"] == "error", "the prompt was expected to fail"
    for kind, data in entry["status"]["messages"]:
        if kind == "execution_error":
            return data
    raise AssertionError(f"no execution_error in {entry['status']}")


def run_ok(server, prompt: dict) -> dict:
    comfy_host.fill_defaults(prompt, server.object_info())
    return server.run_ok(prompt)


def pose_json(server, name: str, frames: list[dict]) -> str:
    (server.base_dir / "input" / name).write_text(json.dumps(frames))
    return name


def load_pose(text: str = "", file: str = "(none)") -> dict:
    return {"class_type": "PoseLabLoadPoseJSON", "inputs": {"json_text": text, "file": file}}


def person_at(dx: float = 0.0, canvas: int = 512) -> dict:
    body = []
    for i in range(18):
        body += [200.0 + dx + 5 * i, 100.0 + 15 * i, 1.0]
    return {
        "people": [{"pose_keypoints_2d": body}],
        "canvas_width": canvas,
        "canvas_height": canvas,
    }


def output_image(server, entry: dict, node: str, index: int = 0) -> np.ndarray:
    item = entry["outputs"][node]["images"][index]
    path = server.base_dir / item.get("type", "output") / item["subfolder"] / item["filename"]
    return np.asarray(Image.open(path).convert("RGB"))


# ------------------------------------------------------------ 1: one bad pose must not break the next


def test_off_canvas_edit_then_the_main_workflow_still_runs(comfy_server):
    """Extract Pose -> Edit Pose (moved off the image) -> Part-Warp Repose: a clear error, then the
    main workflow on a fresh request works (it used to fail until restart: 'ROI width and height
    must be > 0')."""
    for move in (
        16384.0,
        2000.0,
    ):  # beyond the accepted range of the canvas, and just off the image
        prompt = {
            "1": {"class_type": "LoadImage", "inputs": {"image": SAMPLE}},
            "2": {
                "class_type": "PoseLabExtractPose",
                "inputs": {"image": ["1", 0], "backend": "mediapipe"},
            },
            "3": {
                "class_type": "PoseLabEditPose",
                "inputs": {
                    "pose": ["2", 0],
                    "people": "all",
                    "limb": "none",
                    "angle": 0.0,
                    "mirror": False,
                    "mirror_axis": "person",
                    "scale": 1.0,
                    "scale_center": "person",
                    "move_x": move,
                    "move_y": 0.0,
                },
            },
            "4": {
                "class_type": "PoseLabPartWarpRepose",
                "inputs": {
                    "image": ["1", 0],
                    "source_pose": ["3", 0],
                    "target_pose": ["2", 0],
                    "person": 0,
                },
            },
            "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
        }
        err = error_of(comfy_server, prompt)
        assert err["exception_type"] in ("poselab.PoseFormatError", "ValueError"), err
        assert (
            "canvas" in err["exception_message"]
            or "no joint on the image" in err["exception_message"]
        ), err
        entry = run_ok(comfy_server, workflow("repose_to_named_pose"))
        assert entry["outputs"]["5"]["images"]


def test_far_off_canvas_pose_json_then_person_mask_works(comfy_server):
    far = person_at(dx=100000.0)
    err = error_of(
        comfy_server,
        {
            "1": {"class_type": "LoadImage", "inputs": {"image": SAMPLE}},
            "2": load_pose(json.dumps(far)),
            "3": {
                "class_type": "PoseLabPersonMask",
                "inputs": {"image": ["1", 0], "backend": "mediapipe", "pose": ["2", 0]},
            },
            "4": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 0]}},
            "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
        },
    )
    assert err["exception_type"] == "poselab.PoseFormatError"
    assert "more than 16 canvas sizes outside the 512x512 canvas" in err["exception_message"]
    # just off the image (accepted): an empty mask, and the next request segments normally
    off = person_at(dx=1000.0)
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": SAMPLE}},
        "2": load_pose(json.dumps(off)),
        "3": {
            "class_type": "PoseLabPersonMask",
            "inputs": {"image": ["1", 0], "backend": "mediapipe", "pose": ["2", 0]},
        },
        "4": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 0]}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
    }
    assert output_image(comfy_server, run_ok(comfy_server, prompt), "5").max() == 0
    del prompt["2"], prompt["3"]["inputs"]["pose"]
    assert output_image(comfy_server, run_ok(comfy_server, prompt), "5").mean() > 10


# ------------------------------------------------------------ 2: trainers stay inside ComfyUI's folders


def _train_gan(dataset: str) -> dict:
    return {
        "1": {
            "class_type": "PoseLabTrainPoseGAN",
            "inputs": {
                "dataset": dataset,
                "size": "market_128x64",
                "steps": 1,
                "batch_size": 1,
                "learning_rate": 2e-4,
                "seed": 0,
                "resume": False,
                "checkpoint_name": "hardening",
                "warp_skip": "mask",
                "width_mult": 0.0625,
                "output": "blend",
                "nn_window": "3",
                "l1_weight": 0.0,
                "vgg_weights": "(none: pixel-space NN loss)",
                "sample_every": 1000,
                "checkpoint_every": 1000,
            },
        },
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }


def test_gan_trainer_refuses_folders_outside_input_and_output(comfy_server, tmp_path):
    outside = tmp_path / "outside_dataset"
    outside.mkdir()
    messages = set()
    for given in (
        str(outside),
        "/no/such/folder",
        "../../",
        str(tmp_path / "missing"),
        "../" + outside.name,
    ):
        err = error_of(comfy_server, _train_gan(given))
        assert (
            "is not a folder inside ComfyUI's output or input folder" in err["exception_message"]
        ), err
        messages.add(err["exception_message"].replace(given, "<given>"))
    assert len(messages) == 1, messages  # one wording: existing and missing folders look alike


def test_gan_trainer_refuses_pair_names_that_leave_the_dataset(comfy_server):
    root = comfy_server.base_dir / "input" / "escaping_dataset"
    (root / "train").mkdir(parents=True, exist_ok=True)
    kp = "[" + ", ".join(["10"] * 18) + "]"
    secret = comfy_server.base_dir / "secret.png"
    Image.new("RGB", (64, 128)).save(secret)
    (root / "annotation-train.csv").write_text(
        f"name:keypoints_y:keypoints_x\n{secret}:{kp}:{kp}\n../../secret.png:{kp}:{kp}\n"
    )
    (root / "pairs-train.csv").write_text(f"from,to\n{secret},../../secret.png\n")
    err = error_of(comfy_server, _train_gan("escaping_dataset"))
    assert "which is not an image inside the dataset's train/ folder" in err["exception_message"], (
        err
    )


def test_ip2p_trainer_refuses_metadata_rows_outside_the_data_folder(comfy_server):
    import tiny_checkpoints

    ckpt = tiny_checkpoints.ensure_checkpoint(
        comfy_server.base_dir / "models" / "checkpoints", "ip2p", seed=0
    )
    data = comfy_server.base_dir / "input" / "escaping_pairs"
    data.mkdir(exist_ok=True)
    Image.new("RGB", (64, 64)).save(data / "a.png")
    messages = set()
    for name in ("/etc/hostname", "/no/such/file.png", "../../../etc/hostname"):
        (data / "metadata.jsonl").write_text(
            json.dumps(
                {"original_image": "a.png", "edit_prompt": "raise the arms", "edited_image": name}
            )
            + "\n"
        )
        err = error_of(
            comfy_server,
            {
                "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
                "2": {
                    "class_type": "PoseLabTrainIP2PLoRA",
                    "inputs": {
                        "model": ["1", 0],
                        "clip": ["1", 1],
                        "vae": ["1", 2],
                        "data_folder": "escaping_pairs",
                        "synthetic_pairs": 2,
                        "resolution": 64,
                        "rank": 2,
                        "alpha": 2.0,
                        "target_modules": "to_q",
                        "steps": 1,
                        "batch_size": 1,
                        "grad_accum": 1,
                        "learning_rate": 1e-4,
                        "text_dropout": 0.0,
                        "image_dropout": 0.0,
                        "save_every": 0,
                        "seed": 0,
                        "lora_name": "hardening",
                    },
                },
            },
        )
        assert "which is not a file inside the data folder" in err["exception_message"], err
        messages.add(err["exception_message"].replace(name, "<name>"))
    assert len(messages) == 1, messages
    for given in ("/etc", "../..", str(comfy_server.base_dir)):
        err = error_of(
            comfy_server,
            {
                "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
                "2": {
                    "class_type": "PoseLabTrainIP2PLoRA",
                    "inputs": {
                        "model": ["1", 0],
                        "clip": ["1", 1],
                        "vae": ["1", 2],
                        "data_folder": given,
                        "synthetic_pairs": 2,
                        "resolution": 64,
                        "rank": 2,
                        "alpha": 2.0,
                        "target_modules": "to_q",
                        "steps": 1,
                        "batch_size": 1,
                        "grad_accum": 1,
                        "learning_rate": 1e-4,
                        "text_dropout": 0.0,
                        "image_dropout": 0.0,
                        "save_every": 0,
                        "seed": 0,
                        "lora_name": "hardening",
                    },
                },
            },
        )
        assert (
            "is not a folder inside ComfyUI's input or output folder" in err["exception_message"]
        ), err


# ------------------------------------------------------------ 3: stale temporary files are cleaned


def test_temp_files_of_a_killed_save_go_with_the_next_run(comfy_server):
    pairs = {
        "1": {
            "class_type": "PoseLabSyntheticPairs",
            "inputs": {
                "seed": 0,
                "count": 8,
                "size": "market_128x64",
                "still_torso": True,
                "write_dataset": True,
                "dataset_name": "hardening_pairs",
                "test_fraction": 0.25,
            },
        },
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    comfy_host.fill_defaults(pairs, comfy_server.object_info())
    run_ok(comfy_server, pairs)
    models = comfy_server.base_dir / "models" / "posegan"
    runs = comfy_server.base_dir / "output" / "posegan_runs" / "hardening_tmp"
    prompt = _train_gan(
        sorted((comfy_server.base_dir / "output").glob("hardening_pairs*"))[-1].name
    )
    prompt["1"]["inputs"].update(
        checkpoint_name="hardening_tmp", resume=True, steps=1, checkpoint_every=1
    )
    run_ok(comfy_server, prompt)  # a run with its state, as a killed run leaves it
    dead_pid = 2**22 + 12345  # above Linux's default pid_max: never a live process
    stale = [
        models / f".hardening_tmp.safetensors.{dead_pid}.abcd1234.tmp",
        runs / f".state.safetensors.{dead_pid}.efgh5678.tmp",
    ]
    for p in stale:
        p.write_bytes(b"\0" * 1024)
    prompt["1"]["inputs"].update(steps=2)  # resume it
    run_ok(comfy_server, prompt)
    assert not any(p.exists() for p in stale), [p.name for p in stale if p.exists()]
    assert (models / "hardening_tmp.safetensors").is_file() and not (
        models / "hardening_tmp_1.safetensors"
    ).exists()


# ------------------------------------------------------------ 4: corrupt model files name the file


def test_corrupt_model_files_give_the_file_and_folder(comfy_server):
    models = comfy_server.base_dir / "models"
    for sub in ("sams", "posegan", "lpips", "stable_pose"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    (models / "sams" / "sam_broken.pth").write_bytes(b"PK\x03\x04 truncated zip")
    (models / "posegan" / "broken.safetensors").write_bytes(b"\xff" * 64)
    (models / "posegan" / "legacy.pth").write_bytes(b"\0" * 64)
    (models / "lpips" / "alex_broken.pth").write_bytes(b"\0" * 10)
    (models / "stable_pose" / "broken.safetensors").write_bytes(b"{}" * 8)
    info = comfy_server.object_info()
    gan_files = comfy_host.combo_options(
        info["PoseLabLoadPoseGAN"]["input"]["required"]["ckpt_name"]
    )
    assert (
        "broken.safetensors" in gan_files and "legacy.pth" not in gan_files
    )  # only what it can read is listed
    cases = [
        (
            "sam_broken.pth",
            "sams",
            {
                "1": {"class_type": "LoadImage", "inputs": {"image": SAMPLE}},
                "2": {
                    "class_type": "PoseLabExtractPose",
                    "inputs": {"image": ["1", 0], "backend": "mediapipe"},
                },
                "3": {
                    "class_type": "PoseLabPersonMask",
                    "inputs": {
                        "image": ["1", 0],
                        "backend": "sam",
                        "pose": ["2", 0],
                        "sam_model": "sam_broken.pth",
                    },
                },
                "4": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 0]}},
                "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
            },
        ),
        (
            "broken.safetensors",
            "posegan",
            {
                "1": {
                    "class_type": "PoseLabLoadPoseGAN",
                    "inputs": {"ckpt_name": "broken.safetensors"},
                },
                "2": {"class_type": "LoadImage", "inputs": {"image": SAMPLE}},
                "3": {
                    "class_type": "PoseLabExtractPose",
                    "inputs": {"image": ["2", 0], "backend": "mediapipe"},
                },
                "4": {
                    "class_type": "PoseLabPoseGANTransfer",
                    "inputs": {
                        "model": ["1", 0],
                        "source": ["2", 0],
                        "source_pose": ["3", 0],
                        "target_pose": ["3", 0],
                        "person_index": 0,
                        "output": "full image",
                    },
                },
                "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
            },
        ),
        (
            "alex_broken.pth",
            "lpips",
            {
                "1": {"class_type": "LoadImage", "inputs": {"image": SAMPLE}},
                "2": {
                    "class_type": "PoseLabImageMetrics",
                    "inputs": {
                        "image": ["1", 0],
                        "reference": ["1", 0],
                        "lpips_weights": "alex_broken.pth",
                    },
                },
            },
        ),
    ]
    for name, folder, prompt in cases:
        comfy_host.fill_defaults(prompt, info)
        err = error_of(comfy_server, prompt)
        assert err["exception_type"] == "poselab.ModelFileError", err
        msg = err["exception_message"]
        assert f"cannot read '{name}' in " in msg and str(models / folder) in msg, msg


# ------------------------------------------------------------ 5: bounded sizes, clear messages


@pytest.mark.parametrize(
    "frame, expected",
    [
        (
            {"people": [], "canvas_width": 100000, "canvas_height": 100000},
            "larger than 16384 pixels per side",
        ),
        (person_at(dx=1e30), "more than 16 canvas sizes outside"),
        (
            {
                "people": [
                    {"pose_keypoints_2d": [10, 10, 1] * 18, "poselab_scores": {"body": ["a"] * 18}}
                ],
                "canvas_width": 64,
                "canvas_height": 64,
            },
            "people[0].poselab_scores.body: expected 18 numbers",
        ),
        (
            {
                "people": [{"pose_keypoints_2d": [10, 10, 1] * 18}] * 1001,
                "canvas_width": 64,
                "canvas_height": 64,
            },
            "at most 1000 per frame",
        ),
    ],
)
def test_pose_values_out_of_bounds_are_refused_with_their_place(comfy_server, frame, expected):
    err = error_of(
        comfy_server,
        {
            "1": load_pose(json.dumps([frame])),
            "2": {
                "class_type": "PoseLabRenderPose",
                "inputs": {
                    "pose": ["1", 0],
                    "style": "openpose",
                    "width": 0,
                    "height": 0,
                    "hands_and_face": True,
                },
            },
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
        },
    )
    assert (
        err["exception_type"] == "poselab.PoseFormatError" and expected in err["exception_message"]
    ), err


def test_huge_render_is_refused_before_allocating(comfy_server):
    err = error_of(
        comfy_server,
        {
            "1": load_pose(json.dumps([person_at(canvas=12000)])),
            "2": {
                "class_type": "PoseLabRenderPose",
                "inputs": {
                    "pose": ["1", 0],
                    "style": "openpose",
                    "width": 0,
                    "height": 0,
                    "hands_and_face": True,
                },
            },
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
        },
    )
    assert "larger than 8192 pixels per side" in err["exception_message"], err


def test_deep_and_non_utf8_json_files(comfy_server):
    (comfy_server.base_dir / "input" / "deep.json").write_text("[" * 100000 + "]" * 100000)
    (comfy_server.base_dir / "input" / "latin1.json").write_bytes(b'{"people": [], "caf\xe9": 1}')
    comfy_server.object_info()  # the file menu is read when the node list is
    for name, expected in (
        ("deep.json", "nested more than 64 levels"),
        ("latin1.json", "not UTF-8 text"),
    ):
        err = error_of(
            comfy_server,
            {
                "1": load_pose(file=name),
                "2": {
                    "class_type": "PoseLabSavePoseJSON",
                    "inputs": {"pose": ["1", 0], "filename_prefix": "x"},
                },
            },
        )
        assert (
            err["exception_type"] == "poselab.PoseFormatError"
            and expected in err["exception_message"]
        ), err


def test_heatmaps_of_a_crowd_can_be_interrupted(comfy_server):
    crowd = {
        "people": [person_at(dx=(i % 50) * 5.0)["people"][0] for i in range(1000)],
        "canvas_width": 512,
        "canvas_height": 512,
    }
    # ~30 s of work without the interrupt (wide gaussians), yet inside the node's drawing limit
    name = pose_json(comfy_server, "crowd.json", [crowd] * 30)
    comfy_server.object_info()
    prompt = {
        "1": load_pose(file=name),
        "2": {
            "class_type": "PoseLabPoseHeatmaps",
            "inputs": {"pose": ["1", 0], "sigma": 20.0, "person": -1},
        },
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    prompt_id = comfy_server.queue(prompt)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until the heatmap node is running
        queue = comfy_server.get_json("/queue")
        if any(item[1] == prompt_id for item in queue["queue_running"]):
            break
        time.sleep(0.2)
    time.sleep(3.0)
    comfy_server.post_json("/interrupt", {})
    entry = comfy_server.wait(prompt_id, timeout=120)
    messages = [kind for kind, _ in entry["status"]["messages"]]
    assert "execution_interrupted" in messages, entry["status"]


# ------------------------------------------------------------ 6: one empty frame does not fail the batch


def test_part_warp_passes_a_frame_without_person_through(comfy_server):
    run_ok(
        comfy_server,
        {
            "1": {"class_type": "LoadImage", "inputs": {"image": SAMPLE}},
            "2": {
                "class_type": "PoseLabExtractPose",
                "inputs": {"image": ["1", 0], "backend": "mediapipe"},
            },
            "3": {
                "class_type": "PoseLabSavePoseJSON",
                "inputs": {"pose": ["2", 0], "filename_prefix": "hardening/one"},
            },
        },
    )
    saved = comfy_server.base_dir / "output" / "hardening"
    frame = json.loads(sorted(saved.glob("one*.json"))[-1].read_text())[0]
    empty = dict(frame, people=[])
    pose_json(comfy_server, "two_frames.json", [frame, empty])
    comfy_server.object_info()
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": SAMPLE}},
        "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 2}},
        "3": load_pose(file="two_frames.json"),
        "4": {
            "class_type": "PoseLabPoseFromLibrary",
            "inputs": {
                "text": "waving",
                "width": 512,
                "height": 512,
                "fit": "source position and size",
                "source_pose": ["3", 0],
            },
        },
        "5": {
            "class_type": "PoseLabPartWarpRepose",
            "inputs": {
                "image": ["2", 0],
                "source_pose": ["3", 0],
                "target_pose": ["4", 0],
                "person": 0,
            },
        },
        "6": {
            "class_type": "SaveImage",
            "inputs": {"images": ["5", 0], "filename_prefix": "hardening/batch"},
        },
    }
    entry = run_ok(comfy_server, prompt)
    source = np.asarray(Image.open(REPO / "assets" / "samples" / SAMPLE).convert("RGB"))
    reposed, passed = (
        output_image(comfy_server, entry, "6", 0),
        output_image(comfy_server, entry, "6", 1),
    )
    assert np.array_equal(passed, source)  # the frame without a person comes out unchanged
    assert np.abs(reposed.astype(int) - source.astype(int)).mean() > 1  # the other one was reposed
    assert "1 of 2 images had nobody to repose" in comfy_server.log_tail(20000)
    prompt["5"]["inputs"]["on_missing_person"] = "fail"
    err = error_of(comfy_server, prompt)
    assert "image 1: no person in the source pose" in err["exception_message"], err


# ------------------------------------------------------------ 7: file names


def test_save_pose_json_refuses_dot_names_and_load_lists_no_escaping_links(comfy_server, tmp_path):
    for prefix in ("..", ".", "poses/..", " . "):
        err = error_of(
            comfy_server,
            {
                "1": load_pose(json.dumps([person_at()])),
                "2": {
                    "class_type": "PoseLabSavePoseJSON",
                    "inputs": {"pose": ["1", 0], "filename_prefix": prefix},
                },
            },
        )
        assert "is not a file name inside the output folder" in err["exception_message"], err
    assert not list((comfy_server.base_dir / "output").glob(".*.json"))
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps([person_at()]))
    link = comfy_server.base_dir / "input" / "escaping_link.json"
    if not link.exists():
        os.symlink(outside, link)
    inside_link = comfy_server.base_dir / "input" / "inside_link.json"
    pose_json(comfy_server, "real_pose.json", [person_at()])
    if not inside_link.exists():
        os.symlink(comfy_server.base_dir / "input" / "real_pose.json", inside_link)
    files = comfy_host.combo_options(
        comfy_server.object_info()["PoseLabLoadPoseJSON"]["input"]["required"]["file"]
    )
    assert "escaping_link.json" not in files and "inside_link.json" in files


def test_errors_show_a_short_type_name(comfy_server):
    err = error_of(
        comfy_server,
        {
            "1": load_pose("{not json"),
            "2": {
                "class_type": "PoseLabSavePoseJSON",
                "inputs": {"pose": ["1", 0], "filename_prefix": "x"},
            },
        },
    )
    assert err["exception_type"] == "poselab.PoseFormatError", err


def test_the_server_is_still_healthy(comfy_server):
    """After every bad request above, the main job runs."""
    entry = run_ok(comfy_server, workflow("repose_to_named_pose"))
    assert entry["outputs"]["5"]["images"]
    assert comfy_host.execution_error(entry) is None
