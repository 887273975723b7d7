"""Prompts made of ComfyUI's core nodes only, shared by the tests that check the pack's files
the way users' other nodes read them."""

from __future__ import annotations


def lora_sample_prompt(ckpt_name: str, lora_name: str, size: int, text: str = "a person") -> dict:
    """Checkpoint -> core LoraLoader (the given LoRA at strength 1) -> one Euler step of a
    ``size``² empty latent -> decode -> preview. Nodes: 1 checkpoint, 2 LoRA, 3 text,
    4 latent, 5 KSampler, 6 preview, 7 decode."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt_name}},
        "2": {
            "class_type": "LoraLoader",
            "inputs": {
                "model": ["1", 0],
                "clip": ["1", 1],
                "lora_name": lora_name,
                "strength_model": 1.0,
                "strength_clip": 1.0,
            },
        },
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 1], "text": text}},
        "4": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": size, "height": size, "batch_size": 1},
        },
        "5": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["2", 0],
                "positive": ["3", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "seed": 1,
                "steps": 1,
                "cfg": 1.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
    }
