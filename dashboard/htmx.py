"""The few htmx request/response headers the dashboard uses (htmx 2.x)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Response, request


def is_htmx() -> bool:
    """True when htmx sent this request (it wants a fragment, not a whole page)."""
    return request.headers.get("HX-Request") == "true"


def hx_trigger(resp: Response, events: str | Mapping[str, Any]) -> Response:
    """Ask htmx to fire client-side events after the swap."""
    resp.headers["HX-Trigger"] = events if isinstance(events, str) else json.dumps(events)
    return resp


def hx_redirect(resp: Response, url: str) -> Response:
    """Tell htmx to load `url` as a full page (e.g. to the login page)."""
    resp.headers["HX-Redirect"] = url
    return resp
