"""Deformable GAN pose transfer (Siarohin et al., CVPR 2018).

networks.py   generator (two encoders, deformable skips via ``pose.parts.warp_parts``), discriminator, config
losses.py     adversarial BCE, nearest-neighbour loss (VGG19 block1_conv2 or pixels), pixel L1
dataset.py    dataset folders (Market-1501 / DeepFashion pose-transfer layout + metadata.jsonl), model inputs
checkpoint.py safetensors model files and resumable training states, written atomically
trainer.py    training loop, logs, samples, evaluation helpers
evaluate.py   held-out comparison with the identity and classical part-warp baselines
transfer.py   crop / generate / paste-back for photos of any size

Its synthetic paired data (shared with the IP2P and Stable-Pose trainers) is models/pose/synthetic.py.
"""
