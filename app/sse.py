"""Data becomes a Server-Sent Event here, for every stream of the app, in strict JSON.

A non-finite number (an overflowing gradient, a diverged loss) becomes null, and the event says
where under ``nonfinite``, so the page shows it instead of drawing a gap or a zero."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi.sse import ServerSentEvent, format_sse_event

from gradient_flow_lab.app import jsonsafe


def event(name: str, data: dict[str, Any]) -> ServerSentEvent:
    """``event: name`` with ``data`` as strict JSON; ``nonfinite`` lists the nulled values."""
    return ServerSentEvent(event=name, raw_data=jsonsafe.event_text(data))


def raw_event(name: str, document: str) -> ServerSentEvent:
    """``event: name`` carrying a document that is already strict JSON text."""
    return ServerSentEvent(event=name, raw_data=document)


def encode(events: Iterable[ServerSentEvent]) -> bytes:
    """The bytes an EventSourceResponse writes for ``events`` (FastAPI's own ``format_sse_event``,
    as its routing calls it for an event with ``raw_data``), for a body sent in one piece."""
    return b"".join(format_sse_event(data_str=item.raw_data, event=item.event, id=item.id,
                                     retry=item.retry, comment=item.comment) for item in events)
