"""Arrays become JSON here, and only here, in strict JSON: no NaN or Infinity tokens (a browser's
JSON.parse rejects them). A non-finite number becomes null, and every array that had one is also
*reported*, so overflow is shown to the user, never silently turned into a gap or a zero."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np


def _typed_array(value: dict) -> np.ndarray | None:
    """plotly.py (>= 6) stores NumPy arrays as {"dtype", "bdata", "shape"}; decode them, so that
    their non-finite values are nulled and reported like any other, and CSV exports see numbers."""
    if not (isinstance(value, dict) and "bdata" in value and "dtype" in value):
        return None
    array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    shape = value.get("shape")
    if shape:
        dims = [int(d) for d in str(shape).split(",")] if isinstance(shape, str) else shape
        array = array.reshape(dims)
    return array


def _clean(value: Any, path: str, nonfinite: dict[str, int]) -> Any:
    decoded = _typed_array(value)
    if decoded is not None:
        value = decoded
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "c":
            return {"re": _clean(value.real, path + ".re", nonfinite),
                    "im": _clean(value.imag, path + ".im", nonfinite)}
        if value.dtype.kind == "O":  # numbers with None gaps (see app.figures.common)
            return _clean(value.tolist(), path, nonfinite)
        if value.dtype.kind == "f":
            bad = ~np.isfinite(value)
            if bad.any():
                nonfinite[path] = int(bad.sum())
                return np.where(bad, None, value).tolist()
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _clean(v, f"{path}.{k}" if path else str(k), nonfinite)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        if value and _is_series(value):
            # A series or a grid of them, as figures build them: None is a deliberate gap (such
            # as an exact 0 on a log axis) and is not reported; non-finite numbers are nulled
            # and counted under the series' path.
            counter = [0]
            clean = _clean_series(value, counter)
            if counter[0]:
                nonfinite[path] = counter[0]
            return clean
        return [_clean(v, f"{path}[{i}]", nonfinite) for i, v in enumerate(value)]
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            nonfinite[path] = 1
            return None
        return float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _is_series(values: list | tuple) -> bool:
    first = values[0]
    if isinstance(first, list):
        return all(isinstance(row, list) and (not row or _is_series(row)) for row in values)
    return all(v is None or type(v) is float for v in values)


def _clean_series(values: list | tuple, counter: list[int]) -> list:
    if values and isinstance(values[0], list):
        return [_clean_series(row, counter) for row in values]
    out = []
    for v in values:
        if v is not None and not math.isfinite(v):
            counter[0] += 1
            v = None
        out.append(v)
    return out


def to_strict(value: Any) -> tuple[Any, dict[str, int]]:
    """(JSON-ready copy of value, {path: count of non-finite numbers replaced by null})."""
    nonfinite: dict[str, int] = {}
    return _clean(value, "", nonfinite), nonfinite


def dumps(value: Any) -> str:
    """Strict JSON text; raises if a non-finite number slipped through."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def event_text(data: dict[str, Any]) -> str:
    """The data line of a Server-Sent Event: ``data`` in strict JSON, with ``nonfinite`` listing
    the nulled values (app/sse.py; the engine's processes make these texts too)."""
    clean, nonfinite = to_strict(data)
    if nonfinite:
        clean["nonfinite"] = nonfinite
    return dumps(clean)
