"""What runs around every request of the dashboard: who is asking (accounts, sessions,
loopback mode), whether they may (roles, CSRF), and the security headers of every answer."""

from __future__ import annotations

import logging
import math
from typing import Any

from flask import Response, current_app, g, make_response, redirect, request, session, url_for
from werkzeug.exceptions import BadRequest, Forbidden, TooManyRequests, Unauthorized
from werkzeug.wrappers.response import Response as BaseResponse

from . import csrf
from .auth import ADMIN, Account, User, basic_credentials
from .engine import Engine, engine
from .exposure import allowed_hosts, host_name, loopback_refusal
from .formatting import Formatter
from .htmx import hx_redirect, is_htmx
from .redirects import safe_next

log = logging.getLogger("jobq.dashboard")
SESSION_USER = "jobq_user"
PUBLIC_ENDPOINTS = frozenset({"jobq.session.login", "jobq.metrics.healthz", "jobq.static"})
POLL_S = 3  # how often live fragments refresh
MAX_BODY_BYTES = 1024 * 1024  # largest request body, also when mounted in a host app

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def _identify(eng: Engine) -> User | None:
    if not eng.accounts.configured:
        return None if loopback_refusal(eng.settings) else User("local", ADMIN, "loopback")
    creds = basic_credentials()
    if creds is not None:
        name, password = creds
        # Same bounds as the login form's fields: a huge header costs one refused check.
        account = check_password(name[:200], password[:1000], via="basic")
        return User(account.name, account.role, "basic") if account else None
    stored = session.get(SESSION_USER)
    if isinstance(stored, dict):
        account = eng.accounts.by_name(str(stored.get("name", "")))
        if account is not None and eng.sessions.valid(str(stored.get("sid", "")), account):
            return User(account.name, account.role, "session")
    return None


def client_address() -> str:
    """The client's address: the peer, or what a trusted proxy said it was."""
    return request.remote_addr or "-"


def check_password(name: str, password: str, *, via: str) -> Account | None:
    """The account if the password is right, None if wrong. A 429 (with Retry-After)
    instead while this client, or the account, waits after too many failures (the password
    is then not checked), and for the failure that starts a wait, which is also logged and
    written to the audit log."""
    eng, client = engine(), client_address()
    wait = eng.throttle.wait_s(client, name)
    if wait > 0:
        log.info("dashboard login refused while %s waits %.1f s (account %r)", client, wait,
                 name[:64])
        raise _wait(wait)
    account = eng.accounts.verify(name, password)
    if account is not None:
        eng.throttle.succeeded(client, name)
        return account
    started = eng.throttle.failed(client, name)
    if not started:
        return None
    log.warning("dashboard logins throttled: failed %s login as %r from %s; the next "
                "attempt waits %g s", via, name[:64], client, started)
    eng.admin.record(f"{client} ({via})", "login throttled",
                     detail=f"failed logins as {name[:64]!r}; next attempt waits {started:g} s")
    raise _wait(started)


def _wait(seconds: float) -> TooManyRequests:
    whole = math.ceil(seconds)
    return TooManyRequests(f"Too many failed logins: try again in {whole} s.", retry_after=whole)


def authenticate() -> BaseResponse | None:
    """before_request: identify the user; refuse, challenge or redirect to the login page
    when there is none; check CSRF and the role on every state-changing request."""
    _bound_body()
    eng = engine()
    _check_host(eng)
    user = _identify(eng)
    g.jobq_user = user
    endpoint = request.endpoint or ""
    if user is None and endpoint not in PUBLIC_ENDPOINTS:
        if not eng.accounts.configured:
            raise Forbidden("This dashboard has no login configured, so it only answers "
                            "requests made on this machine and served only there; "
                            f"refused because {loopback_refusal(eng.settings)}. Set "
                            "JOBQ_DASHBOARD_USER and JOBQ_DASHBOARD_PASSWORD_HASH "
                            "(python -m dashboard.hashpw).")
        if _machine_client() or basic_credentials() is not None:
            raise Unauthorized("log in (HTTP Basic auth with a dashboard account)")
        login = url_for("jobq.session.login", next=safe_next(request.full_path))
        if is_htmx():
            return hx_redirect(make_response("", 401), login)
        return redirect(login)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.check(basic_auth=user is not None and user.via == "basic",
                   cookie_name=current_app.config["SESSION_COOKIE_NAME"])
        if user is not None and not user.can_act and endpoint != "jobq.session.logout":
            raise Forbidden(f"{user.name} has the read-only role: it sees everything and "
                            "changes nothing")
    return None


def _check_host(eng: Engine) -> None:
    """With a login and JOBQ_DASHBOARD_ALLOWED_HOSTS set, only those Host names (the no-login
    mode checks the Host header itself, with loopback names allowed too)."""
    allowed = allowed_hosts(eng.settings)
    if eng.accounts.configured and allowed and host_name(request.host) not in allowed:
        raise BadRequest(f"the Host header {host_name(request.host)[:80]!r} is not in "
                         "JOBQ_DASHBOARD_ALLOWED_HOSTS")


def _bound_body() -> None:
    """413 for a body over MAX_BODY_BYTES (or the app's lower limit), before anything reads
    it: a view that ignores its body must not accept megabytes unread."""
    app_limit = request.max_content_length
    request.max_content_length = min(app_limit or MAX_BODY_BYTES, MAX_BODY_BYTES)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        # Raises RequestEntityTooLarge from Content-Length alone, or once a chunked body
        # passes the limit; what is read is cached for the form and JSON parsers.
        request.get_data(cache=True)


def _machine_client() -> bool:
    """API, metrics and other non-browser callers get 401 + Basic, not a login redirect."""
    endpoint = request.endpoint or ""
    return endpoint.startswith(("jobq.api.", "jobq.metrics.")) or (
        request.accept_mimetypes.best == "application/json")


def security_headers(resp: Response) -> Response:
    """after_request: CSP, no sniffing, no framing, no caching of pages with job data."""
    h = resp.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.endpoint != "jobq.static":
        h.setdefault("Cache-Control", "no-store")
        resp.vary.add("HX-Request")
        resp.vary.add("Cookie")
    return resp


def template_context() -> dict[str, Any]:
    user = g.get("jobq_user")
    return {"user": user, "csrf_token": csrf.token, "fmt": Formatter(),
            "poll_s": POLL_S}
