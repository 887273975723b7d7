"""Stable-Pose: a pose-masked-attention ControlNet-style adapter for SD1.5 (docs/methods.md §C)."""
