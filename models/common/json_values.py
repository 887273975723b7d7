"""Values for JSON that every parser accepts: reports, summaries, node outputs.

Python's ``json`` writes NaN and Infinity, which are not JSON: a browser's ``JSON.parse`` and
strict parsers reject the whole document. Everything the pack writes goes through here.
"""

from __future__ import annotations

import json
import math

import numpy as np


def json_safe(obj):
    """Plain JSON values: numpy to lists/floats, inf to the string "inf" (JSON has no infinity,
    and a browser's JSON.parse rejects Python's 'Infinity'), NaN to null."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    return obj


def strict_json(obj, **kwargs) -> str:
    """``json.dumps`` of :func:`json_safe` values, refusing anything that is still not JSON."""
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs)
