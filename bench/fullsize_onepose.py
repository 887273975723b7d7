"""OnePoseTrans at full size: the subject-LoRA trainer and the visual-consistency module on the
real SD1.5 (859.5M) and SDXL (2.567B) UNet architectures with random weights, once, small and short
(64-128 px, 1-2 steps), to catch the shape assumptions tiny models hide. Prints seconds, peak RSS
and what was checked; run it under the memory lock (several GB):

    flock /tmp/poselab-bigmem.lock python bench/fullsize_onepose.py --kinds sd15,sdxl

The files are built once into --models (SDXL ~6.8 GB): full-size checkpoints (fp16), IP-Adapter
files of the real layout for those UNets (image projection for the test's ViT-L CLIP vision),
InstantID's ip-adapter.bin at its real size, and a tiny insightface pack. SDXL is loaded in bf16
(``--bf16-unet``; fp32 would need 10 GB for the UNet alone); SD1.5 in ComfyUI's CPU default, fp32.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from pathlib import Path

PACK = Path(__file__).resolve().parent.parent
FULL = {
    "sd15": ("--channel-mult", "1,2,4,4", "--res-blocks", "2", "--depth", "1,1,1,0", "--middle"),
    "sdxl": ("--channel-mult", "1,2,4", "--res-blocks", "2", "--depth", "0,2,10", "--middle"),
}


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def guard_memory(min_available_gb: float) -> None:
    """Stop this process before the machine runs out of memory (it is shared)."""
    import os
    import threading

    def watch():
        while True:
            with open("/proc/meminfo") as f:
                info = {line.split(":")[0]: int(line.split()[1]) for line in f}
            if info["MemAvailable"] / 2**20 < min_available_gb:
                print(
                    f"STOPPED: less than {min_available_gb} GB available (peak RSS {peak_gb():.2f} GB)",
                    flush=True,
                )
                os._exit(3)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--models", default="/tmp/poselab-fullsize")
    ap.add_argument("--kinds", default="sd15,sdxl")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument(
        "--min-available-gb",
        type=float,
        default=3.0,
        help="stop if the machine gets this close to full",
    )
    a = ap.parse_args()
    guard_memory(a.min_available_gb)
    kinds = a.kinds.split(",")
    models = Path(a.models)

    sys.path.insert(0, str(PACK / "tests"))
    sys.path.insert(0, str(PACK / "scripts"))
    import tiny_checkpoints
    import tiny_clip_vision
    import tiny_insightface
    import tiny_vcm

    files = {}
    for kind in kinds:  # built in subprocesses, before this process imports ComfyUI
        ck = (
            models
            / "checkpoints"
            / tiny_checkpoints.ensure_checkpoint(
                models / "checkpoints",
                kind,
                filename=f"poselab_full_{kind}.safetensors",
                extra_args=FULL[kind],
            )
        )
        ctx = 2048 if kind == "sdxl" else 768
        ipa = models / "ipadapter" / f"full_{kind}.safetensors"
        if not ipa.is_file():
            tiny_vcm.save(tiny_vcm.ip_adapter_sd(tiny_vcm.cross_attention_dims(ck), ctx, 768), ipa)
        files[kind] = {"ckpt": ck, "ipadapter": ipa.name}
        if kind == "sdxl":
            iid = models / "instantid" / "ip-adapter.bin"
            if not iid.is_file():
                tiny_vcm.save(tiny_vcm.instantid_sd(tiny_vcm.cross_attention_dims(ck)), iid)
    pack_dir = models / "insightface" / "models" / "antelopev2"
    if not pack_dir.is_dir():
        tiny_insightface.build_pack(pack_dir)
    clip_vision = (
        models / "clip_vision" / tiny_clip_vision.ensure_clip_vision(models / "clip_vision")
    )

    from comfy_cli import import_comfy_and_pack

    import_comfy_and_pack(None)
    import torch

    import comfy.cli_args
    import comfy.clip_vision
    import comfy.lora
    import comfy.model_management as mm
    import comfy.sd
    import folder_paths
    import nodes as core

    from poselab.nodes import onepose

    for f in ("ipadapter", "instantid", "insightface", "loras"):
        (models / f).mkdir(parents=True, exist_ok=True)
        folder_paths.folder_names_and_paths[f] = (
            [str(models / f)],
            {".safetensors", ".bin", ".onnx"},
        )
    results = []
    for kind in kinds:
        comfy.cli_args.args.bf16_unet = kind == "sdxl"
        gc.collect()
        row = {"model": kind}
        t0 = time.perf_counter()
        with torch.inference_mode():
            model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(files[kind]["ckpt"]))
            unet = model.model.diffusion_model
            print(f"{kind} loaded, RSS peak {peak_gb():.2f} GB", flush=True)
            row.update(
                model_class=type(model.model).__name__,
                config=type(model.model.model_config).__name__,
                unet_params_m=round(sum(p.numel() for p in unet.parameters()) / 1e6, 2),
                unet_dtype=str(model.model_dtype()),
                load_s=round(time.perf_counter() - t0, 1),
            )
            gen = torch.Generator().manual_seed(0)
            photo = torch.rand(1, a.size * 3 // 2, a.size, 3, generator=gen)
            t = time.perf_counter()
            trained = onepose.TrainSubjectLoRA.execute(
                model,
                clip,
                vae,
                photo,
                "A man with face, a dark coat",
                a.steps,
                32,
                1e-3,
                2,
                a.size,
                2,
                onepose.BLOCK_WEIGHTS[0],
                1.0,
                0,
                f"fullsize_{kind}",
                gradient_checkpointing=kind == "sdxl",
            ).result
            report = json.loads(trained[3])
            lora = comfy.utils.load_torch_file(
                str(models / "loras" / report["lora_file"]), safe_load=True
            )
            key_map = comfy.lora.model_lora_keys_unet(model.model, {})
            patches = comfy.lora.load_lora(lora, key_map, log_missing=False)
            loaded = set().union(*(getattr(p, "loaded_keys", set()) for p in patches.values()))
            modules = {k.rsplit(".lora_", 1)[0].removesuffix(".alpha") for k in lora}
            row.update(
                train_s=round(time.perf_counter() - t, 1),
                train_losses=report["losses"],
                lora_modules=len(modules),
                lora_modules_core_maps=len(patches),
                lora_keys_unmapped=len(set(lora) - loaded),
                layout_block_keys=sum(onepose.layout_block(model) in k for k in lora) // 3,
            )
            t = time.perf_counter()
            cv = comfy.clip_vision.load(str(clip_vision))
            vcm_out = onepose.VisualConsistency.execute(
                trained[0],
                clip,
                photo,
                "A man with face, a dark coat, raising both arms",
                files[kind]["ipadapter"],
                "ip-adapter.bin" if kind == "sdxl" else "none",
                "antelopev2",
                "face",
                1.0,
                0.4,
                0.0,
                1.0,
                clip_vision=cv,
            ).result
            info = json.loads(vcm_out[2])
            latent = {"samples": torch.zeros(1, 4, a.size // 8, a.size // 8)}
            negative = core.CLIPTextEncode().encode(clip, "low quality")[0]
            out = core.common_ksampler(
                vcm_out[0], 97, 2, 5.0, "euler", "normal", vcm_out[1], negative, latent
            )[0]
            image = vae.decode(out["samples"])
            row.update(
                vcm_s=round(time.perf_counter() - t, 1),
                vcm=info,
                image=list(image.shape),
                image_finite=bool(torch.isfinite(image).all()),
            )
        row["peak_rss_gb"] = round(peak_gb(), 2)
        print(json.dumps(row), flush=True)
        results.append(row)
        del model, clip, vae, trained, vcm_out, cv
        mm.unload_all_models()
        mm.soft_empty_cache()
    ok = all(
        r["lora_modules"] == r["lora_modules_core_maps"]
        and not r["lora_keys_unmapped"]
        and r["image_finite"]
        for r in results
    )
    print("all checks passed" if ok else "CHECK FAILED", flush=True)


if __name__ == "__main__":
    main()
