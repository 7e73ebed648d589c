"""Field specs: what a page needs to know about each query field, read off the pydantic models.

One function, ``field_specs``, turns a model's ``model_fields`` into plain dicts (name, type,
default, min/max, step, choices, description). The pages render them into their controls and
into a JSON block that the browser's URL state reads, so no bound or default is written twice.
"""

from __future__ import annotations

import types
from typing import Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel

# Slider steps for float fields (a presentation choice, not a bound): how far one arrow key
# moves the value. Float fields not listed take any value ("any"); int fields step by 1.
FLOAT_STEPS: dict[str, float] = {
    "weight_scale": 0.05,
    "input_scale": 0.05,
    "forget_bias": 0.5,
    "update_bias": 0.5,
    "noise": 0.05,
    "x0": 0.1,
}


def _type_name(annotation) -> tuple[str, list | None]:
    """("int" | "float" | "str" | "bool", Literal choices or None)."""
    origin = get_origin(annotation)
    if origin is Literal:
        choices = list(get_args(annotation))
        return "str", choices
    if origin in (Union, types.UnionType):  # Optional[X]: the non-None member
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        return _type_name(members[0])
    for kind in (bool, int, float, str):  # bool before int: bool is an int subclass
        if annotation is kind:
            return kind.__name__, None
    raise TypeError(f"no field spec for annotation {annotation!r}")


def field_spec(name: str, field) -> dict:
    kind, choices = _type_name(field.annotation)
    spec: dict = {"name": name, "type": kind, "default": field.default,
                  "description": field.description or ""}
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Ge):
            spec["min"] = meta.ge
        elif isinstance(meta, annotated_types.Gt):
            spec["min"], spec["min_exclusive"] = meta.gt, True
        elif isinstance(meta, annotated_types.Le):
            spec["max"] = meta.le
        elif isinstance(meta, annotated_types.Lt):
            spec["max"], spec["max_exclusive"] = meta.lt, True
    if kind == "int":
        spec["step"] = 1
    elif kind == "float":
        spec["step"] = FLOAT_STEPS.get(name, "any")
    if choices is not None:
        spec["choices"] = choices
    return spec


def field_specs(model: type[BaseModel], names=None, defaults: dict | None = None) -> dict:
    """{name: spec} for the fields of ``model`` (all, or ``names`` in that order), with a page's
    own ``defaults`` in place of the model's where given (each must pass the model's bounds)."""
    names = list(model.model_fields) if names is None else list(names)
    specs = {name: field_spec(name, model.model_fields[name]) for name in names}
    if defaults:
        model.model_validate(defaults)  # a page default outside the bounds is a bug: say so now
        for name, value in defaults.items():
            specs[name]["default"] = value
    return specs


def options(spec: dict, labels, complete: bool = True) -> list[tuple[str, str]]:
    """(value, label) pairs of a select: ``labels`` (pairs, in the order shown) must name only
    the spec's choices; with ``complete``, a choice without a label is listed after them under
    its own name (a page that offers a subset on purpose passes ``complete=False``)."""
    choices = spec["choices"]
    labelled = [(value, text) for value, text in labels]
    unknown = [value for value, _ in labelled if value not in choices]
    if unknown:
        raise ValueError(f"{spec['name']}: {unknown} are not among the choices {choices}")
    named = {value for value, _ in labelled}
    if not complete:
        return labelled
    return labelled + [(value, value) for value in choices if value not in named]
