"""Rendering shared by every view: a page or its htmx fragment, and errors as JSON, a
fragment or a page. Error handlers map engine errors to the HTTP status an operator expects."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, jsonify, make_response, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from jobq_core import (
    ConfigError,
    InvalidState,
    JobNotFound,
    JobqError,
    PayloadError,
    RedisUnavailable,
    ScheduleNotFound,
)

from .htmx import is_htmx

log = logging.getLogger("jobq.dashboard")


def page(full: str, partial: str, **context: Any) -> Response:
    """The whole page for a browser, only its live fragment for an htmx poll.

    Both share `partial` (the page includes it), so they never drift apart."""
    return make_response(render_template(partial if is_htmx() else full, **context))


def wants_json() -> bool:
    return (request.path.startswith(_api_prefix()) or request.is_json
            or request.accept_mimetypes.best == "application/json")


def _api_prefix() -> str:
    try:
        return url_for("jobq.api.index")
    except Exception:  # outside the dashboard's blueprint (no route matched)
        return "/api/"


def render_error(code: int, title: str, message: str) -> Response:
    """An error as JSON (API), a fragment (htmx) or a page with navigation (browsers)."""
    if wants_json():
        resp = jsonify({"error": title, "message": message, "status": code})
    else:
        template = "jobq/_error.html" if is_htmx() else "jobq/error.html"
        resp = make_response(render_template(template, code=code, title=title,
                                             message=message))
    resp.status_code = code
    if code == 401:
        resp.headers["WWW-Authenticate"] = 'Basic realm="jobq dashboard", charset="UTF-8"'
    return resp


def http_error(exc: HTTPException) -> Response:
    """Werkzeug's HTTP errors (4xx raised by views and params) with their message."""
    code = exc.code or 500
    resp = render_error(code, exc.name, exc.description or exc.name)
    for name, value in exc.get_headers():
        if name.lower() == "retry-after":  # 429 and 503 say when to come back
            resp.headers[name] = value
    return resp


def engine_error(exc: JobqError) -> Response:
    """Engine errors: 404 gone, 409 not possible in this state, 400 bad value, 503 Redis."""
    if isinstance(exc, RedisUnavailable):
        log.warning("Redis unavailable: %s", exc)
        return render_error(503, "Redis unreachable", str(exc))
    if isinstance(exc, ScheduleNotFound):
        return render_error(404, "Not found", f"{exc}. It may have been deleted meanwhile.")
    if isinstance(exc, JobNotFound):
        return render_error(404, "Not found", f"{exc}. It may have expired after its "
                            "retention time or been purged.")
    if isinstance(exc, InvalidState):
        return render_error(409, "Not possible now", str(exc))
    if isinstance(exc, ConfigError | PayloadError):
        return render_error(400, "Bad request", str(exc))
    log.error("engine error: %s", exc)
    return render_error(503, "Engine error", str(exc))
