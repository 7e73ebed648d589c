"""Parsing as a browser does: JSON.parse rejects NaN and Infinity, so these helpers do too."""

import json


def strict_loads(text: str):
    """json.loads that refuses NaN and Infinity tokens."""
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def sse_events(text: str) -> list[tuple[str, dict]]:
    """(event name, strictly parsed data) for every Server-Sent Event in a response body."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields["event"], strict_loads(fields["data"])))
    return events
