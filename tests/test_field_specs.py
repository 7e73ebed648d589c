"""One schema drives the browser: every control's bounds, step, choices and default on every
page, and the JSON block the page's script reads, equal the pydantic models' own."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from gradient_flow_lab.app.fieldspecs import field_specs, options
from gradient_flow_lab.app.figures.bptt import unrolled_columns
from gradient_flow_lab.app.routers.activations import ActivationsQuery
from gradient_flow_lab.app.schemas import (
    CELL_NAMES,
    SimulationConfig,
    SimulationQuery,
    TrainingConfig,
)
from gradient_flow_lab.app.views.bptt import DEFAULT_TRUNCATION

# Each page, the model its controls set, and the defaults the page chooses on purpose.
PAGES = {
    "/explore": (SimulationConfig, {}),
    "/activations": (ActivationsQuery, {}),
    "/bptt": (SimulationConfig, {"loss_at": "all", "truncation": DEFAULT_TRUNCATION}),
    "/cells": (SimulationConfig, {"cell": "lstm"}),
    "/compare": (SimulationConfig, {}),
    "/chaos": (SimulationConfig, {"seq_len": 100}),
    "/train": (TrainingConfig, {}),
}
VIEW_ONLY = {"hidden_layer"}  # /explore's layer menu: in the URL, never sent to the API


def bounds(field) -> tuple[float | None, float | None]:
    low = high = None
    for meta in field.metadata:
        for name in ("ge", "gt"):
            low = getattr(meta, name, None) if getattr(meta, name, None) is not None else low
        for name in ("le", "lt"):
            high = getattr(meta, name, None) if getattr(meta, name, None) is not None else high
    return low, high


class Controls(HTMLParser):
    """Every [data-param] input and select: its attributes, options and selected option; the
    checked cell boxes; the #field-specs JSON block."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: dict[str, dict] = {}
        self.checked_cells: list[str] = []
        self.cell_boxes: list[str] = []
        self.specs_text: str | None = None
        self._select: str | None = None
        self._in_specs = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("id") == "field-specs":
            assert attrs.get("type") == "application/json", "a data block, not a script"
            self._in_specs = True
            self.specs_text = ""
        elif tag in ("input", "select") and "data-param" in attrs:
            name = attrs["data-param"]
            assert name not in self.controls, f"two controls for {name}"
            self.controls[name] = {"tag": tag, **attrs, "options": [], "selected": None}
            if tag == "select":
                self._select = name
        elif tag == "option" and self._select:
            control = self.controls[self._select]
            control["options"].append(attrs["value"])
            if "selected" in attrs:
                control["selected"] = attrs["value"]
        elif tag == "input" and "cell-box" in attrs.get("class", ""):
            self.cell_boxes.append(attrs["value"])
            if "checked" in attrs:
                self.checked_cells.append(attrs["value"])

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        if tag == "script":
            self._in_specs = False

    def handle_data(self, data):
        if self._in_specs:
            self.specs_text += data


def parse(client, path: str) -> Controls:
    response = client.get(path)
    assert response.status_code == 200
    parser = Controls()
    parser.feed(response.text)
    return parser


def same_number(text: str, value) -> bool:
    return float(text) == float(value)


@pytest.mark.parametrize("path", PAGES)
def test_every_control_takes_its_bounds_and_default_from_the_schema(client, path):
    model, page_defaults = PAGES[path]
    page = parse(client, path)
    assert page.controls, f"{path} has no controls"
    for name, control in page.controls.items():
        if name in VIEW_ONLY:
            continue
        assert name in model.model_fields, f"{path}: control {name} is no field of {model}"
        field = model.model_fields[name]
        default = page_defaults.get(name, field.default)
        if control["tag"] == "select":
            choices = list(field.annotation.__args__)
            assert control["options"] and set(control["options"]) <= set(choices), name
            assert control["selected"] == default, f"{path}: {name} selects {control['selected']}"
            continue
        low, high = bounds(field)
        assert same_number(control["min"], low), f"{path}: {name} min {control['min']} != {low}"
        assert same_number(control["max"], high), f"{path}: {name} max {control['max']} != {high}"
        assert same_number(control["value"], default), f"{path}: {name} value {control['value']}"
        step = control["step"]
        if field.annotation is int:
            assert step == "1", f"{path}: {name} step {step}"
        else:
            assert step == "any" or 0 < float(step) <= high - low, f"{path}: {name} step {step}"


@pytest.mark.parametrize("path", PAGES)
def test_the_page_script_gets_the_same_specs(client, path):
    model, page_defaults = PAGES[path]
    page = parse(client, path)
    specs = json.loads(page.specs_text)
    shown = set(page.controls) | ({"cells"} if page.cell_boxes else set())
    assert shown <= set(specs), f"{path}: a control without a spec"
    for name, spec in specs.items():
        if name in VIEW_ONLY:
            continue
        field = model.model_fields[name]
        assert spec["default"] == page_defaults.get(name, field.default), name
        low, high = bounds(field)
        assert spec.get("min") == low and spec.get("max") == high, name
        assert spec["type"] == ("str" if hasattr(field.annotation, "__args__")
                                else field.annotation.__name__), name


def test_train_cell_boxes_follow_the_schema(client):
    page = parse(client, "/train")
    assert page.cell_boxes == list(CELL_NAMES)
    assert ",".join(page.checked_cells) == TrainingConfig.model_fields["cells"].default


def test_field_specs_read_the_model_metadata():
    specs = field_specs(TrainingConfig)
    assert specs["lr"]["min"] == 0 and specs["lr"]["min_exclusive"] is True
    assert specs["lag"] == {"name": "lag", "type": "int", "default": 40, "min": 2, "max": 200,
                            "step": 1,
                            "description": TrainingConfig.model_fields["lag"].description}
    assert specs["optimizer"]["choices"] == ["sgd", "momentum", "adam"]
    assert field_specs(SimulationQuery)["view"]["choices"] == ["explore", "bptt", "cells",
                                                               "compare", "chaos"]
    x0 = field_specs(ActivationsQuery)["x0"]
    assert (x0["type"], x0["min"], x0["max"], x0["default"]) == ("float", -5.0, 5.0, 0.5)


def test_a_page_default_outside_the_bounds_is_refused():
    with pytest.raises(ValueError):
        field_specs(SimulationConfig, defaults={"seq_len": 5000})


def test_a_select_label_that_is_no_choice_is_refused():
    spec = field_specs(SimulationConfig)["cell"]
    with pytest.raises(ValueError, match="cell"):
        options(spec, [("transformer", "Transformer")])
    assert options(spec, [("gru", "GRU")]) == [("gru", "GRU"), ("rnn", "rnn"), ("lstm", "lstm")]


def test_the_bptt_stream_sends_the_columns_it_draws(client):
    with client.stream("GET", "/api/simulate/stream",
                       params={"view": "bptt", "seq_len": 500}) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(lines) == "event: meta"
        meta = json.loads(next(lines).removeprefix("data: "))
    assert meta["unrolled_steps"] == unrolled_columns(500).tolist()
