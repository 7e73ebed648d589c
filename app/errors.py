"""422 answers that name the field and its allowed range, for people and for scripts."""

from __future__ import annotations

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.schemas import SimulationConfig

_FIELDS = SimulationConfig.model_fields


def _allowed(name: str) -> str | None:
    """'between 1 and 1000' or 'one of rnn, lstm, gru', read off the model's own bounds."""
    field = _FIELDS.get(name)
    if field is None:
        return None
    low = high = None
    for meta in field.metadata:
        low = getattr(meta, "ge", low)
        high = getattr(meta, "le", high)
    if low is not None and high is not None:
        return f"between {low:g} and {high:g}"
    choices = getattr(field.annotation, "__args__", None)
    if choices:
        return "one of " + ", ".join(map(str, choices))
    return None


def describe(error: dict) -> dict:
    loc = error.get("loc", ())
    name = str(loc[-1]) if loc else ""
    allowed = _allowed(name)
    message = error.get("msg", "invalid value")
    if allowed:
        message = f"{name} must be {allowed} (got {error.get('input')!r}): {message}"
    return {**error, "field": name or None, "msg": message}


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=422,
                        content=jsonable_encoder({"detail": [describe(e) for e in exc.errors()]}))
