"""The lesson: steps read from one TOML file a lecturer edits (templates/lesson.toml), validated
once at startup.

Each step names the page whose figure it shows, a preset of that page's fields, the few controls
it offers, the figures and the paper check it shows, a question with its answer, and speaker
notes. Everything is checked here: a preset must pass the page's own model (bounds, the work
budget), a control, figure or check must exist on that page, the LaTeX must convert to MathML. A
bad file stops the app with one message naming the step and the field.
"""

from __future__ import annotations

import os
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Literal

from latex2mathml.converter import convert as latex_to_mathml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gradient_flow_lab.app.resources import templates_dir
from gradient_flow_lab.app.routers.activations import ActivationsQuery
from gradient_flow_lab.app.schemas import SimulationQuery, TrainingConfig

Page = Literal["explore", "activations", "bptt", "cells", "compare", "train"]

# What each page can show inside a step: its figures (the names its API returns) and its paper
# checks (the ids its view computes; the activations checks are computed by static/js/lesson.js
# from /api/activations' summary, which has no checks of its own).
PAGE_FIGURES: dict[str, tuple[str, ...]] = {
    "explore": ("grad_norms", "layer_heatmap", "hidden_heatmap", "eigenvalues", "contributions"),
    "bptt": ("unrolled", "reach", "contributions", "grad_norms"),
    "cells": ("gates", "state", "gradients", "carry"),
    "compare": ("grad_norms", "retention"),
    "activations": ("curves", "iterates", "chain", "spread"),
}
_RATE_CHECKS = ("finite", "vanish", "growth", "bound", "clip")
PAGE_CHECKS: dict[str, tuple[str, ...]] = {
    "explore": _RATE_CHECKS,
    "bptt": (*_RATE_CHECKS, "truncation_reach", "update"),
    "cells": ("cec", "carry_path", "carry_bias", *_RATE_CHECKS),
    "compare": ("finite", "lstm_keeps_more", "gru_keeps_more"),
    "activations": ("chain_within_ceiling", "slope_ceilings"),
}

# latex2mathml writes f' as a superscript prime, which Chromium draws as a speck above the
# letter; a prime set beside the letter reads as it does in print.
_SUPERSCRIPT_PRIME = re.compile(
    r"<msup>(<mi>[^<]*</mi>)(?:<mrow>)?<mi>&#x02032;</mi>(?:</mrow>)?</msup>")


def _plain_primes(mathml: str) -> str:
    return _SUPERSCRIPT_PRIME.sub(r"\1<mo>&#x02032;</mo>", mathml)


# The drawings a step may show beside its live figure (static/img/<name>.svg).
DIAGRAMS = ("unrolled", "lstm", "gru")
MAX_PANELS = 2  # figures + diagram + race: what fits beside the text on a 1280 x 720 screen

LESSON_ENV = "GFL_LESSON_FILE"  # another lesson file, for a lecturer's own version


class LessonError(ValueError):
    """The lesson file is not usable; the message names the step and the field."""


class Notes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    say: str = Field(min_length=1, description="What the lecturer says over this step.")
    ask: str = Field(min_length=1, description="The question students usually ask here.")
    reply: str = Field(min_length=1, description="An answer to that question.")


class Link(BaseModel):
    """Where "open in ..." leads, when not to the step's own page and preset."""

    model_config = ConfigDict(extra="forbid")

    page: Page
    preset: dict = Field(default_factory=dict)


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1)
    explanation: str = Field(min_length=1, description="Plain paragraphs, blank-line separated.")
    equation: str | list[str] = Field(
        min_length=1, description="The key equation in LaTeX; a list shows one per line.")
    page: Literal["explore", "activations", "bptt", "cells", "compare"]
    preset: dict = Field(default_factory=dict)
    controls: list[str] = Field(default_factory=list, max_length=4)
    figures: list[str] = Field(min_length=1, max_length=2)
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    check: str
    notes: Notes
    link: Link | None = None
    diagram: Literal["unrolled", "lstm", "gru"] | None = Field(
        None, description="A drawing shown beside the live figure (static/img/<name>.svg).")
    race: dict | None = Field(
        None, description="A training race run inside the step: /train's fields.")

    @field_validator("equation")
    @classmethod
    def _converts(cls, latex: str | list[str]) -> str | list[str]:
        for line in [latex] if isinstance(latex, str) else latex:
            if not line.strip():
                raise ValueError("an equation is empty")
            try:
                latex_to_mathml(line)
            except Exception as error:  # latex2mathml raises many kinds
                raise ValueError(f"{line!r} does not convert to MathML: {error}") from None
        return latex

    @property
    def paragraphs(self) -> list[str]:
        return [" ".join(part.split()) for part in self.explanation.split("\n\n") if part.strip()]

    @property
    def equations(self) -> list[str]:
        return [self.equation] if isinstance(self.equation, str) else list(self.equation)

    @property
    def mathml(self) -> list[str]:
        """One <math display="block"> per equation."""
        return [_plain_primes(latex_to_mathml(line, display="block")) for line in self.equations]


class Lesson(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1)
    steps: list[Step] = Field(min_length=1)


def _model_for(page: str) -> type[BaseModel]:
    return {"activations": ActivationsQuery, "train": TrainingConfig}.get(page, SimulationQuery)


def _check_preset(page: str, preset: dict, fields: dict, where: str) -> dict:
    """The page's full state: its defaults with the preset over them, validated by its model."""
    unknown = [name for name in preset if name not in fields]
    if unknown:
        raise LessonError(f"{where}: {unknown} are not fields of /{page} (its fields: "
                          f"{', '.join(fields)})")
    state = {name: spec["default"] for name, spec in fields.items()} | preset
    payload = state | ({"view": page} if _model_for(page) is SimulationQuery else {})
    try:
        _model_for(page).model_validate(payload)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'preset'}: {e['msg']}"
                             for e in error.errors(include_url=False))
        raise LessonError(f"{where}: {problems}") from None
    return state


def _step_where(index: int, raw: dict) -> str:
    title = raw.get("title") if isinstance(raw, dict) else None
    return f"step {index + 1}" + (f" ({title!r})" if title else "")


def parse_lesson(data: dict, source: str = "the lesson file") -> Lesson:
    """The validated lesson from parsed TOML; LessonError naming the step and field if not."""
    from gradient_flow_lab.app.routers.pages import page_fields  # the pages' own field specs

    try:
        lesson = Lesson.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        loc = list(first["loc"])
        where = source
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            raw = data.get("steps", [])[loc[1]]
            where = f"{source}, {_step_where(loc[1], raw)}"
            loc = loc[2:]
        field = ".".join(map(str, loc)) or "(the whole entry)"
        raise LessonError(f"{where}, field {field!r}: {first['msg']}") from None
    for index, step in enumerate(lesson.steps):
        where = f"{source}, {_step_where(index, {'title': step.title})}"
        fields = page_fields(step.page)
        _check_preset(step.page, step.preset, fields, f"{where}, field 'preset'")
        for name in step.controls:
            if name not in fields:
                raise LessonError(f"{where}, field 'controls': {name!r} is not a field of "
                                  f"/{step.page}")
        for name in step.figures:
            if name not in PAGE_FIGURES[step.page]:
                raise LessonError(f"{where}, field 'figures': {name!r} is not a figure of "
                                  f"/{step.page} ({', '.join(PAGE_FIGURES[step.page])})")
        if step.check not in PAGE_CHECKS[step.page]:
            raise LessonError(f"{where}, field 'check': {step.check!r} is not a check of "
                              f"/{step.page} ({', '.join(PAGE_CHECKS[step.page])})")
        panels = len(step.figures) + (step.diagram is not None) + (step.race is not None)
        if panels > MAX_PANELS:
            raise LessonError(f"{where}, field 'figures': {panels} panels (figures, diagram and "
                              f"race together); a step shows at most {MAX_PANELS}")
        if step.race is not None:
            _check_preset("train", step.race, page_fields("train"), f"{where}, field 'race'")
        if step.link is not None:
            _check_preset(step.link.page, step.link.preset, page_fields(step.link.page),
                          f"{where}, field 'link.preset'")
    return lesson


def lesson_path() -> Path:
    return Path(os.environ.get(LESSON_ENV) or templates_dir() / "lesson.toml")


def load_lesson(path: Path) -> Lesson:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise LessonError(f"{path}: {error}") from None
    return parse_lesson(data, str(path))


@cache
def lesson() -> Lesson:
    """The lesson the app serves (read once)."""
    return load_lesson(lesson_path())


def step_state(step: Step) -> dict:
    """The step's full state on its page: the page's defaults with the preset over them."""
    from gradient_flow_lab.app.routers.pages import page_fields

    return {name: spec["default"] for name, spec in page_fields(step.page).items()} | step.preset


def race_state(step: Step) -> dict | None:
    """The full /train state of the step's race (its defaults with the race's fields over)."""
    from gradient_flow_lab.app.routers.pages import page_fields

    if step.race is None:
        return None
    return {name: spec["default"] for name, spec in page_fields("train").items()} | step.race


def check_url(step: Step, state: dict | None = None) -> str:
    """The API address whose JSON holds the step's check (in its ``checks`` list), for the
    step's state: /api/simulate?view=<page>&... (or /api/activations?... for that page)."""
    from urllib.parse import urlencode

    state = step_state(step) if state is None else state
    fields = {name: value for name, value in state.items() if value is not None}
    if step.page == "activations":
        return f"/api/activations?{urlencode(fields)}"
    return f"/api/simulate?{urlencode({'view': step.page, **fields})}"


def link_state(step: Step) -> tuple[str, dict]:
    """The page and full state that "open in ..." carries."""
    from gradient_flow_lab.app.routers.pages import page_fields

    if step.link is None:
        return step.page, step_state(step)
    fields = page_fields(step.link.page)
    return step.link.page, {name: spec["default"] for name, spec in fields.items()} \
        | step.link.preset
