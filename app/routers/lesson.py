"""Lesson mode: the syllabus as a sequence of steps, each with its live figure (/lesson).

The steps come from templates/lesson.toml (``app.lesson``), read and validated when this module
is imported, so a broken lesson file stops the app at startup with a message naming the step.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from gradient_flow_lab.app.lesson import (
    Lesson,
    Step,
    check_url,
    lesson,
    link_state,
    race_state,
    step_state,
)
from gradient_flow_lab.app.resources import static_dir
from gradient_flow_lab.app.routers.pages import page_fields
from gradient_flow_lab.app.templating import templates

router = APIRouter(tags=["lesson"])

LESSON: Lesson = lesson()  # at import: a bad file refuses to start, naming the step and field

# Fields shown as a number box rather than a slider: their range is too wide to slide through.
NUMBER_FIELDS = frozenset({"clip", "seed", "lr", "steps"})
# Short labels for the controls a step shows (a field not listed is labelled by its description).
LABELS = {"weight_scale": "Weight scale σ_max of W", "seq_len": "Sequence length T",
          "nonlinearity": "Activation φ (RNN)", "input_scale": "Input scale",
          "clip": "Clip the gradient norm at (0 = off)", "forget_bias": "Forget-gate bias b_f",
          "truncation": "Truncation k (0 = full BPTT)", "loss_at": "Loss at",
          "depth": "Chain length n", "x0": "Starting point x₀", "hidden_size": "Hidden units H"}
LINK_NAMES = {"explore": "the explorer", "activations": "the activations page",
              "bptt": "the BPTT page", "cells": "the cells page", "compare": "the comparison",
              "train": "the training lab"}


def _href(page: str, state: dict) -> str:
    return f"/{page}?{urlencode(state)}"


def _control(spec: dict, value) -> dict:
    """The field's spec with the step's value as the control's starting value, and the kind of
    control (range, select or number) the template renders for it."""
    if "choices" in spec:
        kind = "select"
    elif spec["name"] in NUMBER_FIELDS or "max" not in spec or "min" not in spec:
        kind = "number"
    else:
        kind = "range"
    label = LABELS.get(spec["name"]) or (spec["description"] or spec["name"]).rstrip(".")
    return {**spec, "default": value, "kind": kind, "label": label}


def diagram_svg(name: str | None) -> str | None:
    """The step's drawing, inlined (static/img/<name>.svg) so that its text scales with the
    page and its title and description are read by screen readers."""
    if name is None:
        return None
    return (static_dir() / "img" / f"{name}.svg").read_text(encoding="utf-8")


def step_context(step: Step) -> dict:
    fields = page_fields(step.page)
    state = step_state(step)
    link_page, link = link_state(step)
    return {
        "step": step,
        "paragraphs": step.paragraphs,
        "mathml": step.mathml,
        "controls": [_control(fields[name], state[name]) for name in step.controls],
        "link_href": _href(link_page, link),
        "link_text": f"Open in {LINK_NAMES[link_page]}",
        "diagram": diagram_svg(step.diagram),
        "data": {"page": step.page, "state": state, "controls": step.controls,
                 "figures": step.figures, "check": step.check, "link_page": link_page,
                 "link_state": link, "link_follows": step.link is None,
                 "diagram": step.diagram, "race": race_state(step)},
    }


def _render(request: Request, number: int) -> HTMLResponse:
    steps = [step_context(step) for step in LESSON.steps]
    pages = sorted({step.page for step in LESSON.steps}
                   | ({"train"} if any(step.race for step in LESSON.steps) else set()))
    context = {
        "active_path": "/lesson",
        "lesson": LESSON,
        "steps": steps,
        "current": number,
        "notes": request.query_params.get("notes") == "1",
        "printing": request.query_params.get("print") == "1",
        "lesson_data": {"title": LESSON.title, "steps": [s["data"] for s in steps],
                        "tables": {page: page_fields(page) for page in pages}},
    }
    return templates.TemplateResponse(request, "lesson.html", context)


@router.get("/lesson", response_class=HTMLResponse)
def lesson_start(request: Request) -> HTMLResponse:
    """The lesson at its first step (with ``?print=1``, every step for the handout)."""
    return _render(request, 1)


@router.get("/lesson/{number}", response_class=HTMLResponse)
def lesson_step(request: Request, number: int) -> HTMLResponse:
    """The lesson at step ``number`` (from 1)."""
    if not 1 <= number <= len(LESSON.steps):
        raise HTTPException(404, f"the lesson has steps 1 to {len(LESSON.steps)}")
    return _render(request, number)


@router.get("/api/lesson")
def lesson_json() -> dict:
    """The lesson as data: every step with its full state, its equation as MathML, its check
    (the id of the paper check that proves its answer) and ``check_url``, the API address
    whose ``checks`` list holds that check for the step's own state."""
    return {"title": LESSON.title,
            "steps": [{**step.model_dump(), "number": number, "mathml": step.mathml,
                       "state": step_state(step), "check_url": check_url(step),
                       "race_state": race_state(step)}
                      for number, step in enumerate(LESSON.steps, 1)]}
