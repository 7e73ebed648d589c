"""Reading responses as a browser does: JSON.parse rejects NaN and Infinity, so these helpers do
too. Server-Sent Events are split by httpx-sse; each event's data is parsed strictly."""

from __future__ import annotations

import json

import httpx
from httpx_sse import EventSource

from gradient_flow_lab.app import lean


def strict_loads(text: str):
    """json.loads that refuses NaN and Infinity tokens, with the arrays a result shares
    (``{"$ref": pointer}``, see app/lean.py) expanded, as the page's script does."""
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")
    return lean.expand(json.loads(text, parse_constant=refuse))


def strict_json(response: httpx.Response, status: int = 200):
    """The body of ``response``, parsed strictly, after checking its status (the status first,
    so a failure shows the server's message rather than a parse error)."""
    assert response.status_code == status, (
        f"expected HTTP {status}, got {response.status_code}: {response.text[:1000]}")
    return strict_loads(response.text)


def post_json(client, url: str, body: dict | None = None, status: int = 200, **kwargs):
    """POST ``body`` as JSON; the status must be ``status``; the answer parsed strictly."""
    return strict_json(client.post(url, json=body if body is not None else {}, **kwargs), status)


def sse_events(response: httpx.Response | str) -> list[tuple[str, object]]:
    """(event name, strictly parsed data) for every Server-Sent Event of a response (or of a
    response body given as text). The content type must be text/event-stream."""
    if isinstance(response, str):
        response = httpx.Response(200, headers={"content-type": "text/event-stream"},
                                  text=response)
    return [(event.event, strict_loads(event.data))
            for event in EventSource(response).iter_sse()]
