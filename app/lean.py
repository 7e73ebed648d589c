"""No array is sent twice in one result: the second and later copies of a numeric array become
``{"$ref": "<JSON pointer to the first copy>"}``.

The first copy is the one place: the document lists ``series`` (the raw numbers a page or a
script reads) before ``figures``, so a figure that plots a series refers to it, and a figure
that repeats another figure's values (the layers x time heatmap holds the same log10 norms as
the line plot; every line of a plot shares its x) refers to the first. The page expands the
references once, when the result arrives (``expandRefs`` in static/js/api.js), so its scripts,
downloads and saved views see whole arrays; ``expand`` does the same in Python.

Only flat arrays of numbers (nulls allowed) of at least MIN_LENGTH items are shared: short ones
cost less than their reference. A decade axis's ``customdata`` ([text, value] per point, see
app/figures/common.py) is sent as its two columns, ``{"$pairs": [texts, values]}``, so that its
values (the series' numbers again) can be shared too.
"""

from __future__ import annotations

from typing import Any

MIN_LENGTH = 8


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _numeric(value: list) -> bool:
    return len(value) >= MIN_LENGTH and all(
        item is None or (isinstance(item, int | float) and not isinstance(item, bool))
        for item in value)


def _pairs(value: list) -> bool:
    return len(value) >= MIN_LENGTH and all(
        isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
        and (item[1] is None or (isinstance(item[1], int | float)
                                 and not isinstance(item[1], bool)))
        for item in value)


def share_arrays(document: Any) -> Any:
    """``document`` (strict-JSON-ready data) with every repeated numeric array replaced by a
    reference to its first occurrence, in document order. Returns a new structure."""
    seen: dict[tuple, str] = {}

    def walk(value: Any, pointer: str) -> Any:
        if isinstance(value, dict):
            return {key: walk(item, f"{pointer}/{_escape(str(key))}")
                    for key, item in value.items()}
        if isinstance(value, list):
            if _pairs(value):
                return {"$pairs": [[text for text, _ in value],
                                   walk([number for _, number in value], f"{pointer}/$pairs/1")]}
            if _numeric(value):
                # type-tagged, so that 1 and 1.0 (equal in JSON anyway) and True never mix
                signature = tuple((type(item).__name__, item) for item in value)
                first = seen.get(signature)
                if first is not None:
                    return {"$ref": first}
                seen[signature] = pointer
                return value
            return [walk(item, f"{pointer}/{index}") for index, item in enumerate(value)]
        return value

    return walk(document, "")


def _at(document: Any, pointer: str) -> Any:
    value = document
    for part in pointer.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def expand(document: Any) -> Any:
    """The inverse of ``share_arrays``: every ``{"$ref": pointer}`` replaced by a copy of the
    array it points to, every ``{"$pairs": [texts, values]}`` by its [text, value] pairs."""
    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 1 and isinstance(value.get("$ref"), str):
                return list(_at(document, value["$ref"]))
            if len(value) == 1 and isinstance(value.get("$pairs"), list):
                texts, numbers = value["$pairs"]
                return [[text, number] for text, number in zip(texts, walk(numbers), strict=True)]
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    return walk(document)
