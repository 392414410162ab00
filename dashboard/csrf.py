"""CSRF protection: a per-session token on every POST, plus an Origin / Sec-Fetch-Site check.

Forms carry the token in the `csrf_token` field; htmx sends it in the `X-CSRF-Token` header
(set once on <body hx-headers>). An API client authenticated by HTTP Basic auth, sending
JSON and no session cookie, needs no token: a cross-site page cannot send such a request
without a CORS preflight, which the dashboard never answers.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from flask import request, session
from werkzeug.exceptions import Forbidden

SESSION_KEY = "csrf"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


def token() -> str:
    """This session's CSRF token, created on first use."""
    value = session.get(SESSION_KEY)
    if not isinstance(value, str) or len(value) < 32:
        value = secrets.token_urlsafe(32)
        session[SESSION_KEY] = value
    return value


def check(*, basic_auth: bool, cookie_name: str) -> None:
    """Raise Forbidden unless this state-changing request is same-origin and carries the
    session's token (or is a JSON API call authenticated by Basic auth without a cookie)."""
    if request.headers.get("Sec-Fetch-Site", "") == "cross-site":
        raise Forbidden("cross-site request refused")
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise Forbidden("request from another origin refused")
    if origin == "null":
        raise Forbidden("request from an opaque origin refused")
    if basic_auth and request.is_json and cookie_name not in request.cookies:
        return
    sent = request.headers.get(HEADER) or request.form.get(FORM_FIELD, "")
    expected = session.get(SESSION_KEY)
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(
            sent.encode(), expected.encode()):
        raise Forbidden("missing or wrong CSRF token: reload the page and try again")
