"""Model code and algorithms: plain PyTorch/NumPy, no ComfyUI imports (testable alone)."""
