"""Readable report images: a table of numbers and, where it helps, horizontal bars.

Drawn with PIL's bundled font (no matplotlib start-up, no font files needed), as ``uint8
(H, W, 3)`` RGB arrays that the nodes turn into IMAGE and the evaluate command saves as PNG.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..common.json_values import json_safe  # noqa: F401  (re-exported: reports are written with it)

_BG = (250, 250, 250)
_FG = (20, 20, 20)
_GRID = (210, 210, 210)
_HEAD = (228, 234, 244)
_BAR = (70, 120, 200)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


def fmt(value, digits: int = 4) -> str:
    """Numbers for people: inf as 'inf', NaN as 'n/a', floats to ``digits`` significant places."""
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    v = float(value)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v != 0 and abs(v) < 10**-digits:
        return f"{v:.2e}"
    return f"{v:.2f}" if abs(v) >= 100 else f"{v:.{digits}f}"


def render_table(
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence],
    bars: Sequence[tuple[str, float]] | None = None,
    bar_max: float | None = 1.0,
    note: str = "",
    font_size: int = 14,
) -> np.ndarray:
    """A titled table (first column left-aligned, numbers formatted with :func:`fmt`) and
    optional labelled bars below it (``bar_max``: the full-scale value, None = the largest)."""
    font, bold = _font(font_size), _font(font_size + 4)
    cells = [[str(h) for h in header]] + [
        [fmt(c) if not isinstance(c, str) else c for c in row] for row in rows
    ]
    ncol = max(len(r) for r in cells)
    cells = [r + [""] * (ncol - len(r)) for r in cells]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def width(text, f=font):
        return int(probe.textlength(text, font=f))

    pad, line = 10, font_size + 10
    col_w = [max(width(r[c]) for r in cells) + 2 * pad for c in range(ncol)]
    table_w = sum(col_w)
    bars = list(bars or [])
    label_w = max((width(lbl) for lbl, _ in bars), default=0) + 2 * pad
    bar_area = 260 if bars else 0
    img_w = (
        max(table_w, width(title, bold), width(note), label_w + bar_area + 80 if bars else 0)
        + 2 * pad
    )
    img_h = (
        pad
        + line
        + 6
        + len(cells) * line
        + (pad + len(bars) * line if bars else 0)
        + (line if note else 0)
        + pad
    )
    img = Image.new("RGB", (img_w, img_h), _BG)
    d = ImageDraw.Draw(img)
    y = pad
    d.text((pad, y), title, fill=_FG, font=bold)
    y += line + 6
    for r, row in enumerate(cells):
        x = pad
        if r == 0:
            d.rectangle([pad, y, pad + table_w, y + line], fill=_HEAD)
        for c, text in enumerate(row):
            tx = x + pad if c == 0 else x + col_w[c] - pad - width(text)  # numbers right-aligned
            d.text((tx, y + 4), text, fill=_FG, font=font)
            x += col_w[c]
        y += line
        d.line([pad, y, pad + table_w, y], fill=_GRID)
    if bars:
        y += pad
        finite = [v for _, v in bars if v is not None and math.isfinite(v)]
        full = bar_max if bar_max is not None else max(finite, default=1.0) or 1.0
        for lbl, v in bars:
            d.text((pad, y + 4), lbl, fill=_FG, font=font)
            x0 = pad + label_w
            ok = v is not None and math.isfinite(v)
            frac = min(max(v / full, 0.0), 1.0) if ok and full > 0 else 0.0
            d.rectangle([x0, y + 4, x0 + bar_area, y + line - 4], outline=_GRID)
            if frac > 0:
                d.rectangle([x0, y + 4, x0 + int(bar_area * frac), y + line - 4], fill=_BAR)
            d.text((x0 + bar_area + 6, y + 4), fmt(v), fill=_FG, font=font)
            y += line
    if note:
        d.text((pad, y + 4), note, fill=(90, 90, 90), font=font)
    return np.asarray(img)
