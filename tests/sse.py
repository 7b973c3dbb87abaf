"""Reading a server-sent-event stream in tests: (event name, decoded JSON data) pairs as they come."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx


def iter_sse(resp: httpx.Response) -> Iterator[tuple[str, Any]]:
    """Each ``data:`` line's JSON with the ``event:`` name before it ("" until one is named)."""
    kind = ""
    for line in resp.iter_lines():
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            yield kind, json.loads(line[5:])
