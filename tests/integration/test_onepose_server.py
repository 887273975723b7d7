"""OnePoseTrans through a real ComfyUI server, shrunk to 64x64 on tiny checkpoints built at test
time: the SD1.5 and SDXL repose workflows (segmentation, background fill, pose, the subject LoRA
trained on the photo, pose-controlled generation with the visual-consistency module, refine,
composite, metrics), the LoRA's block weights, and the VCM's exactness and errors. Model files are
in their real formats: tiny SD1.5/SDXL checkpoints and ControlNets, a ViT-L CLIP vision, IP-Adapter
and InstantID files with the real key layouts (InstantID's resampler at full size), and a tiny
insightface pack in models/insightface/models/antelopev2."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import comfy_host  # noqa: E402
import core_prompts  # noqa: E402
import tiny_checkpoints  # noqa: E402
import tiny_clip_vision  # noqa: E402
import tiny_insightface  # noqa: E402
import tiny_vcm  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SIZE = 64


@pytest.fixture(scope="module")
def files(comfy_server):
    """Every model file the two workflows name, in the server's models folders."""
    models = comfy_server.base_dir / "models"
    ck = models / "checkpoints"
    names = {
        "sd15": tiny_checkpoints.ensure_checkpoint(ck, "sd15_layout"),
        "sdxl": tiny_checkpoints.ensure_checkpoint(ck, "sdxl"),
        "cn_sd15": tiny_checkpoints.ensure_checkpoint(
            models / "controlnet",
            "controlnet",
            filename="poselab_tiny_controlnet_layout.safetensors",
            extra_args=tiny_checkpoints.SHAPES["sd15_layout"],
        ),
        "cn_sdxl": tiny_checkpoints.ensure_checkpoint(models / "controlnet", "controlnet_sdxl"),
        "clip_vision": tiny_clip_vision.ensure_clip_vision(models / "clip_vision"),
    }
    # the test CLIP vision is a ViT-L (768-d image embeddings): the IP-Adapters are built to take it
    ipa = models / "ipadapter"
    if not (ipa / "ip-adapter_sd15.safetensors").is_file():
        tiny_vcm.save(
            tiny_vcm.ip_adapter_sd(tiny_vcm.cross_attention_dims(ck / names["sd15"]), 768, 768),
            ipa / "ip-adapter_sd15.safetensors",
        )
        sdxl_dims = tiny_vcm.cross_attention_dims(ck / names["sdxl"])
        tiny_vcm.save(
            tiny_vcm.ip_adapter_sd(sdxl_dims, 2048, 768, seed=5),
            ipa / "ip-adapter_sdxl_vit-h.safetensors",
        )
        tiny_vcm.save(tiny_vcm.instantid_sd(sdxl_dims), models / "instantid" / "ip-adapter.bin")
        tiny_insightface.build_pack(models / "insightface" / "models" / "antelopev2")
        tiny_insightface.build_pack(models / "insightface" / "models" / "noface", faces=False)
    return names


def workflow(name: str, files: dict, sdxl: bool) -> dict:
    prompt = json.loads((REPO / "workflows" / "api" / f"{name}.json").read_text())
    prompt["3"]["inputs"]["ckpt_name"] = files["sdxl" if sdxl else "sd15"]
    prompt["12"]["inputs"]["control_net_name"] = files["cn_sdxl" if sdxl else "cn_sd15"]
    prompt["24"]["inputs"]["clip_name"] = files["clip_vision"]
    for node in ("2", "7", "8", "14"):
        prompt[node]["inputs"].update(width=SIZE, height=SIZE)
    prompt["9"]["inputs"].update(
        steps=3 if sdxl else 12, resolution=SIZE, views=2 if sdxl else 4, rank=4 if sdxl else 8
    )
    prompt["15"]["inputs"]["steps"] = 2
    prompt["22"]["inputs"]["steps"] = 2
    return prompt


def output_image(server, entry, node: str) -> np.ndarray:
    item = entry["outputs"][node]["images"][0]
    return np.asarray(
        Image.open(server.base_dir / "output" / item["subfolder"] / item["filename"]), np.float32
    )


def check_lora(server, report: dict, before: set, stem: str) -> list[str]:
    loras = server.base_dir / "models" / "loras"
    written = set(loras.glob(f"{stem}*")) - before
    assert [p.name for p in written] == [report["lora_file"]]
    from safetensors import safe_open

    with safe_open(str(next(iter(written))), "pt") as f:
        assert f.metadata()["poselab"] == "OnePoseTrans subject LoRA"
        return list(f.keys())


def test_sd15_workflow_with_vcm_trains_a_subject_lora_and_composites(comfy_server, files):
    prompt = workflow("onepose_repose", files, sdxl=False)
    prompt["9"]["inputs"]["lora_name"] = "test_subject"
    loras = comfy_server.base_dir / "models" / "loras"
    before = set(loras.glob("test_subject*")) if loras.is_dir() else set()
    entry = comfy_server.run_ok(prompt, timeout=900)
    report = json.loads(entry["outputs"]["9"]["text"][0])
    assert report["eval_loss_after"] < report["eval_loss_before"], report
    keys = check_lora(comfy_server, report, before, "test_subject")
    assert any(k.endswith("attn2.to_k.lora_up.weight") for k in keys)  # cross-attention adapted too
    assert any(".output_blocks.4.1." in k for k in keys)  # the layout block exists and is trained
    info = json.loads(entry["outputs"]["25"]["text"][0])
    # SD1.5: image tokens in output_blocks.3 (0.4) and .4 (1.0), no InstantID
    assert info["image_tokens"] == 4 and info["face_tokens"] == 0 and info["instantid"] is None
    assert info["ip_scales"] == {"output_blocks.3": 0.4, "output_blocks.4": 1.0, "other": 0.0}
    assert info["patched_layers"] == 2, info
    out = output_image(comfy_server, entry, "19")
    assert out.shape == (SIZE, SIZE, 3) and out.std() > 2.0

    # The saved LoRA through Apply Subject LoRA by Blocks: all strengths 0 is the base model
    # exactly; the layout block alone (the refine model's weights) changes it, and the
    # OnePoseTrans 0.2 elsewhere changes it again.
    images = {}
    for tag, strengths in {
        "base": None,
        "zero": (0.0, 0.0),
        "layout": (0.0, 1.0),
        "onepose": (0.2, 1.0),
    }.items():
        g = {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": files["sd15"]}},
            "2": {
                "class_type": "CLIPTextEncode",
                "inputs": {"clip": ["1", 1], "text": "A man with face"},
            },
            "3": {
                "class_type": "EmptyLatentImage",
                "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1},
            },
            "4": {
                "class_type": "KSampler",
                "inputs": {
                    "model": ["1", 0] if strengths is None else ["5", 0],
                    "positive": ["2", 0],
                    "negative": ["2", 0],
                    "latent_image": ["3", 0],
                    "seed": 1,
                    "steps": 2,
                    "cfg": 1.0,
                    "sampler_name": "euler",
                    "scheduler": "normal",
                    "denoise": 1.0,
                },
            },
            "6": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
            "7": {
                "class_type": "SaveImage",
                "inputs": {"images": ["6", 0], "filename_prefix": f"poselab_test/subject_{tag}"},
            },
        }
        if strengths is not None:
            g["5"] = {
                "class_type": "PoseLabApplySubjectLoRA",
                "inputs": {
                    "model": ["1", 0],
                    "lora_name": report["lora_file"],
                    "base_strength": strengths[0],
                    "layout_strength": strengths[1],
                },
            }
        images[tag] = output_image(comfy_server, comfy_server.run_ok(g, timeout=300), "7")
    assert np.array_equal(images["zero"], images["base"])
    assert np.abs(images["layout"] - images["base"]).mean() > 0.1
    assert np.abs(images["onepose"] - images["layout"]).mean() > 0.1


def test_subject_lora_refuses_a_batch_and_an_empty_description(comfy_server, files):
    base = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": files["sd15"]}},
        "2": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 2, "color": 0},
        },
        "3": {
            "class_type": "PoseLabTrainSubjectLoRA",
            "inputs": {
                "model": ["1", 0],
                "clip": ["1", 1],
                "vae": ["1", 2],
                "image": ["2", 0],
                "description": "A man with face",
                "steps": 1,
                "rank": 4,
                "learning_rate": 0.001,
                "batch_size": 1,
                "resolution": 64,
                "views": 1,
                "block_weights": "uniform",
                "strength": 1.0,
                "seed": 0,
                "lora_name": "x",
            },
        },
    }
    err = comfy_host.execution_error(comfy_server.run(base, timeout=300))
    assert err is not None and "trained on one photo" in err, err
    base["2"]["inputs"]["batch_size"] = 1
    base["3"]["inputs"]["description"] = "  "
    err = comfy_host.execution_error(comfy_server.run(base, timeout=300))
    assert err is not None and "description is empty" in err, err


def test_subject_lora_is_reproducible_for_a_seed(comfy_server, files):
    from safetensors.torch import load_file

    def train(name: str, seed: int) -> dict:
        g = {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": files["sd15"]}},
            "2": {"class_type": "LoadImage", "inputs": {"image": "cameraman.png"}},
            "3": {
                "class_type": "PoseLabTrainSubjectLoRA",
                "inputs": {
                    "model": ["1", 0],
                    "clip": ["1", 1],
                    "vae": ["1", 2],
                    "image": ["2", 0],
                    "description": "A man with face, a dark coat",
                    "steps": 3,
                    "rank": 4,
                    "learning_rate": 0.001,
                    "batch_size": 2,
                    "resolution": SIZE,
                    "views": 2,
                    "block_weights": "uniform",
                    "strength": 1.0,
                    "seed": seed,
                    "lora_name": name,
                },
            },
        }
        report = json.loads(comfy_server.run_ok(g, timeout=600)["outputs"]["3"]["text"][0])
        return load_file(str(comfy_server.base_dir / "models" / "loras" / report["lora_file"]))

    a, b, c = train("test_seed_a", 7), train("test_seed_b", 7), train("test_seed_c", 8)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert any(not (a[k] == c[k]).all() for k in a if k.endswith("lora_up.weight"))


def test_sdxl_workflow_runs_end_to_end_with_face_tokens(comfy_server, files):
    prompt = workflow("onepose_repose_sdxl", files, sdxl=True)
    prompt["9"]["inputs"]["lora_name"] = "test_subject_sdxl"
    loras = comfy_server.base_dir / "models" / "loras"
    before = set(loras.glob("test_subject_sdxl*")) if loras.is_dir() else set()
    entry = comfy_server.run_ok(prompt, timeout=1800)
    report = json.loads(entry["outputs"]["9"]["text"][0])
    assert len(report["losses"]) == 3 and all(np.isfinite(report["losses"]))
    keys = check_lora(comfy_server, report, before, "test_subject_sdxl")
    assert any(
        ".output_blocks.1.1." in k for k in keys
    )  # SDXL's layout block (up_blocks.0.attentions.1)
    info = json.loads(entry["outputs"]["25"]["text"][0])
    assert info["model"] == "sdxl" and info["face_found"] is True and info["subject_token"] == 4
    assert (info["image_tokens"], info["face_tokens"]) == (4, 16)
    assert info["ip_scales"] == {"output_blocks.0": 0.4, "output_blocks.1": 1.0, "other": 0.0}
    assert (
        info["patched_layers"] == info["cross_attentions"] == 15
    )  # the face wrapping is in every cross-attention
    refine = json.loads(entry["outputs"]["26"]["text"][0])
    assert (
        refine["face_tokens"] == 0 and refine["patched_layers"] == 2 + 2
    )  # image tokens in the two blocks only
    out = output_image(comfy_server, entry, "19")
    assert out.shape == (SIZE, SIZE, 3) and out.std() > 2.0
    assert "identity" in entry["outputs"]["27"]["text"][0]
    # core LoraLoader reads every key of the SDXL subject LoRA
    g = core_prompts.lora_sample_prompt(
        files["sdxl"], report["lora_file"], SIZE, "low quality, bad quality"
    )
    comfy_server.run_ok(g, timeout=600)
    assert "lora key not loaded" not in comfy_server.log_tail(400000)


def vcm_graph(files, **vcm_inputs) -> dict:
    """Tiny SDXL: base model (node 5) and VCM-patched model (node 8) sampled with the same seed."""
    vcm = {
        "model": ["1", 0],
        "clip": ["1", 1],
        "image": ["2", 0],
        "prompt": "A man with face, a red coat",
        "ipadapter_file": "ip-adapter_sdxl_vit-h.safetensors",
        "instantid_file": "ip-adapter.bin",
        "face_analysis": "antelopev2",
        "subject_word": "face",
        "ip_scale_layout": 1.0,
        "ip_scale_style": 0.4,
        "ip_scale_other": 0.0,
        "face_strength": 1.0,
        "clip_vision": ["3", 0],
    }
    vcm.update(vcm_inputs)
    g = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": files["sdxl"]}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "cameraman.png"}},
        "3": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": files["clip_vision"]}},
        "4": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1},
        },
        "8": {"class_type": "PoseLabVisualConsistency", "inputs": vcm},
        "11": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "low quality"}},
    }
    for node, model in (("5", ["1", 0]), ("9", ["8", 0])):
        g[node] = {
            "class_type": "KSampler",
            "inputs": {
                "model": model,
                "positive": ["8", 1],
                "negative": ["11", 0],
                "latent_image": ["4", 0],
                "seed": 3,
                "steps": 2,
                "cfg": 4.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        }
        g[str(int(node) + 1)] = {
            "class_type": "VAEDecode",
            "inputs": {"samples": [node, 0], "vae": ["1", 2]},
        }
        g[str(int(node) + 100)] = {
            "class_type": "SaveImage",
            "inputs": {
                "images": [str(int(node) + 1), 0],
                "filename_prefix": f"poselab_test/vcm_{node}",
            },
        }
    return g


def test_vcm_scales_zero_is_the_unpatched_model_and_no_face_is_reported(comfy_server, files):
    off = vcm_graph(files, ip_scale_layout=0.0, ip_scale_style=0.0, face_strength=0.0)
    entry = comfy_server.run_ok(off, timeout=900)
    assert json.loads(entry["outputs"]["8"]["text"][0])["patched_layers"] == 0
    assert np.array_equal(
        output_image(comfy_server, entry, "105"), output_image(comfy_server, entry, "109")
    )
    on = comfy_server.run_ok(vcm_graph(files), timeout=900)
    assert (
        np.abs(output_image(comfy_server, on, "105") - output_image(comfy_server, on, "109")).mean()
        > 0.5
    )
    # the image tokens alone, and the face wrapping alone, each change the generation
    for inputs in ({"face_strength": 0.0}, {"ip_scale_layout": 0.0, "ip_scale_style": 0.0}):
        e = comfy_server.run_ok(vcm_graph(files, **inputs), timeout=900)
        assert (
            np.abs(
                output_image(comfy_server, e, "105") - output_image(comfy_server, e, "109")
            ).mean()
            > 0.1
        ), inputs
    noface = comfy_server.run_ok(vcm_graph(files, face_analysis="noface"), timeout=900)
    info = json.loads(noface["outputs"]["8"]["text"][0])
    assert (
        info["face_found"] is False
        and info["face_tokens"] == 0
        and "no face found" in info["notes"][0]
    )
    assert (
        info["patched_layers"] == 4
    )  # only the image-token blocks remain (2 transformer blocks each)


def test_vcm_composes_with_a_patch_already_on_the_model(comfy_server, files):
    """A second VCM on a VCM-patched model: the first one's attention stays inside the second."""
    g = vcm_graph(files, face_strength=0.0)
    once = output_image(comfy_server, comfy_server.run_ok(g, timeout=900), "109")
    g["12"] = {
        "class_type": "PoseLabVisualConsistency",
        "inputs": dict(g["8"]["inputs"], model=["8", 0]),
    }
    g["9"]["inputs"]["model"] = ["12", 0]
    twice = output_image(comfy_server, comfy_server.run_ok(g, timeout=900), "109")
    assert np.abs(twice - once).mean() > 0.1  # the image tokens now count twice


class Evil:
    def __reduce__(self):
        return (print, ("this pickle runs code",))


@pytest.mark.parametrize(
    "case, inputs, message",
    [
        (
            "missing ip-adapter",
            {"ipadapter_file": "ip-adapter-plus_sd15.safetensors"},
            "'ip-adapter-plus_sd15.safetensors' not found: put it in",
        ),
        (
            "missing instantid",
            {"instantid_file": "ip-adapter.bin"},
            "'ip-adapter.bin' not found: put it in",
        ),
        (
            "missing face pack",
            {"face_analysis": "antelopev3"},
            "insightface pack 'antelopev3' not found: put the folder antelopev3/",
        ),
        ("no clip vision", {"clip_vision": None}, "connect a CLIP_VISION"),
        ("pickle with code", {"ipadapter_file": "evil.bin"}, "cannot read evil.bin in"),
        ("corrupt file", {"ipadapter_file": "corrupt.bin"}, "cannot read corrupt.bin in"),
        ("subject word", {"subject_word": "hat"}, "the subject word 'hat' is not in the prompt"),
        (
            "path as face pack",
            {"face_analysis": "../../checkpoints"},
            "must be the name of a pack folder",
        ),
    ],
)
def test_vcm_errors_name_the_file_and_folder(comfy_server, files, case, inputs, message):
    models = comfy_server.base_dir / "models"
    (models / "ipadapter" / "evil.bin").write_bytes(pickle.dumps(Evil()))
    (models / "ipadapter" / "corrupt.bin").write_bytes(b"PK\x03\x04 not a torch file")
    if case == "missing instantid":  # hide the InstantID file for this case
        hidden = models / "instantid" / "ip-adapter.bin"
        hidden.rename(hidden.with_suffix(".hidden"))
    try:
        g = vcm_graph(files, **{k: v for k, v in inputs.items() if v is not None})
        if inputs.get("clip_vision", 1) is None:
            del g["8"]["inputs"]["clip_vision"]
        for node in ("5", "6", "105"):  # only the VCM and its sampler
            g.pop(node)
        err = comfy_host.execution_error(comfy_server.run(g, timeout=600))
    finally:
        if case == "missing instantid":
            hidden.with_suffix(".hidden").rename(hidden)
    assert err is not None and message in err, err
    if case.startswith("missing"):
        assert str(models) in err  # the folder to put it in
    assert "this pickle runs code" not in comfy_server.log_tail(100000)
