"""Deformable GAN pose transfer (Siarohin et al., CVPR 2018) and its synthetic paired data.

networks.py   generator (two encoders, deformable skips via ``pose.parts.warp_parts``), discriminator, config
losses.py     adversarial BCE, nearest-neighbour loss (VGG19 block1_conv2 or pixels), pixel L1
synthetic.py  procedurally drawn people in pose pairs, exact keypoints, masks, instructions
dataset.py    dataset folders (Market-1501 / DeepFashion pose-transfer layout + metadata.jsonl), model inputs
checkpoint.py safetensors model files and resumable training states, written atomically
trainer.py    training loop, logs, samples, evaluation helpers
evaluate.py   held-out comparison with the identity and classical part-warp baselines
transfer.py   crop / generate / paste-back for photos of any size
"""
