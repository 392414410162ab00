"""Helpers the views share: rendering a page or its fragment, the audit trail, redirects."""

from __future__ import annotations

from typing import Any

from flask import Response, flash, make_response, render_template, request, url_for

from ..app import current_user, engine
from ..htmx import is_htmx


def page(full: str, partial: str, **context: Any) -> Response:
    """The whole page for a browser, only its live fragment for an htmx poll.

    Both share `partial` (the page includes it), so they never drift apart."""
    return make_response(render_template(partial if is_htmx() else full, **context))


def known_queues() -> list[str]:
    return engine().inspector.queues()


def audit(action: str, *, queue: str = "", state: str = "", count: int = 0,
          detail: str = "") -> None:
    """Write what the current user did to the audit log."""
    user = current_user()
    engine().admin.record(f"{user.name} ({user.via})", action, queue=queue, state=state,
                          count=count, detail=detail)


def notify(message: str, category: str = "ok") -> None:
    flash(message, category)


def back_to_list(state: str, queue: str) -> str:
    """Where to return after an action on a list: the same list (only known params)."""
    args: dict[str, Any] = {k: v for k, v in request.form.items()
            if k in ("order", "per_page", "task", "text") and v and len(v) <= 200}
    return url_for("jobq.jobs.listing", state=state, queue=queue, **args)
