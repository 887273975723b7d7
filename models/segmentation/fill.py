"""Background fill (classical inpainting of a person's region) and feathered compositing."""

from __future__ import annotations

import cv2
import numpy as np

METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def _as_binary(mask: np.ndarray, shape: tuple[int, int], what: str = "mask") -> np.ndarray:
    mask = np.asarray(mask, np.float32)
    if mask.shape != shape:
        raise ValueError(
            f"{what} has shape {mask.shape} but the image is {shape[1]}x{shape[0]} (H, W = {shape}): resize the mask to the image"
        )
    return np.nan_to_num(mask) > 0.5


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Boolean mask grown by ``pixels`` with a round kernel."""
    mask = np.asarray(mask).astype(bool)
    if pixels <= 0 or not mask.any():
        return mask
    # a distance transform costs the same for any radius; cv2.dilate with a large round
    # kernel costs radius^2 per pixel (seconds for the 100-px reaches of a 720p person)
    return (
        cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        <= pixels
    )


def fill_background(
    image: np.ndarray,
    mask: np.ndarray,
    method: str = "telea",
    dilation: int = 12,
    radius: int = 5,
    max_side: int = 512,
) -> np.ndarray:
    """Inpaint the (dilated) masked region of an RGB uint8 image with OpenCV.

    Inpainting cost grows with the number of masked pixels times the radius squared, so the
    image is inpainted at most ``max_side`` pixels on its long side and only the filled region
    is upsampled back; the unmasked pixels keep full resolution. ``max_side=0`` works at full
    size. The dilation covers the halo of person-coloured pixels segmentation leaves behind.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}"
        )
    if method not in METHODS:
        raise ValueError(f"unknown fill method {method!r}: use one of {sorted(METHODS)}")
    H, W = image.shape[:2]
    region = dilate(_as_binary(mask, (H, W)), int(dilation))
    if not region.any():
        return image.copy()
    if region.all():
        raise ValueError(
            "the mask covers the whole image, so there is no background to fill from; check that the mask is not inverted"
        )
    scale = 1.0 if max_side <= 0 else min(1.0, max_side / max(H, W))
    if scale < 1.0:
        w, h = max(int(round(W * scale)), 1), max(int(round(H * scale)), 1)
        small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        # any overlap counts, so no person pixel is averaged into the small image's border
        small_region = cv2.resize(region.astype(np.uint8), (w, h), interpolation=cv2.INTER_AREA) > 0
        small_region = dilate(small_region, 1)
        filled = cv2.inpaint(
            small,
            small_region.astype(np.uint8),
            max(int(round(radius * scale)), 1),
            METHODS[method],
        )
        filled = cv2.resize(filled, (W, H), interpolation=cv2.INTER_CUBIC)
    else:
        filled = cv2.inpaint(image, region.astype(np.uint8), int(radius), METHODS[method])
    out = image.copy()
    out[region] = filled[region]
    return out


def feather_alpha(mask: np.ndarray, feather: float) -> np.ndarray:
    """Float32 alpha in [0, 1]: the mask blurred with a Gaussian of sigma ``feather`` pixels."""
    alpha = np.clip(np.nan_to_num(np.asarray(mask, np.float32)), 0.0, 1.0)
    if feather > 0:
        alpha = cv2.GaussianBlur(
            alpha, (0, 0), sigmaX=float(feather), borderType=cv2.BORDER_REPLICATE
        )
    return np.clip(alpha, 0.0, 1.0)


def composite(
    foreground: np.ndarray, mask: np.ndarray, background: np.ndarray, feather: float = 3.0
) -> np.ndarray:
    """Paste ``foreground`` over ``background`` where ``mask`` is set, with feathered edges.

    Images are ``(H, W, 3)`` uint8 or float in [0, 1]; the result has the background's dtype.
    """
    fg = np.asarray(foreground)
    bg = np.asarray(background)
    if fg.shape != bg.shape or fg.ndim != 3:
        raise ValueError(
            f"foreground {fg.shape} and background {bg.shape} must be images of the same size: resize one to the other first"
        )
    m = np.asarray(mask)
    if m.shape != fg.shape[:2]:
        raise ValueError(
            f"mask {m.shape} does not match the images' size {fg.shape[:2]}: resize the mask to the images"
        )
    alpha = feather_alpha(m, feather)[:, :, None]
    f = fg.astype(np.float32) / (255.0 if fg.dtype == np.uint8 else 1.0)
    b = bg.astype(np.float32) / (255.0 if bg.dtype == np.uint8 else 1.0)
    out = f * alpha + b * (1.0 - alpha)
    if bg.dtype == np.uint8:
        return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out.astype(bg.dtype)
