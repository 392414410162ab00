"""The app factory, the mountable blueprint, and what runs around every request:
authentication, roles, CSRF, security headers and error pages."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import Forbidden, HTTPException, Unauthorized
from werkzeug.wrappers.response import Response as BaseResponse

from jobq_core import (
    ConfigError,
    InvalidState,
    JobNotFound,
    JobqError,
    PayloadError,
    RedisUnavailable,
    ScheduleNotFound,
    Settings,
)
from jobq_core.admin import Admin
from jobq_core.connection import connect
from jobq_core.inspect import Inspector

from . import csrf
from .auth import ADMIN, Accounts, User, basic_credentials, local_request
from .formatting import Formatter
from .htmx import hx_redirect, is_htmx

log = logging.getLogger("jobq.dashboard")
EXTENSION = "jobq_dashboard"
SESSION_USER = "jobq_user"
PUBLIC_ENDPOINTS = frozenset({"jobq.session.login", "jobq.metrics.healthz", "jobq.static"})
POLL_S = 3  # how often live fragments refresh

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def asset_dir(name: str) -> Path:
    """templates/ or static/: inside the installed package (wheel), else the repo top level."""
    here = Path(__file__).resolve().parent
    for candidate in (here / name, here.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"dashboard {name}/ not found next to {here}; reinstall jobq")


@dataclass(frozen=True)
class Engine:
    """The dashboard's handles on jobq: one Redis client (and pool) per app."""

    settings: Settings
    inspector: Inspector
    admin: Admin
    accounts: Accounts


def engine() -> Engine:
    eng: Engine = current_app.extensions[EXTENSION]
    return eng


def current_user() -> User:
    user: User = g.jobq_user
    return user


def make_blueprint(settings: Settings | None = None) -> Blueprint:
    """The whole dashboard as one blueprint, to mount in a host app under a URL prefix:

        host.register_blueprint(make_blueprint(settings), url_prefix="/jobq")

    The host's secret key signs the session (login and CSRF token)."""
    from .views import BLUEPRINTS

    s = settings or Settings.from_env()
    accounts = Accounts(s)  # validates the credential settings before anything starts
    bp = Blueprint("jobq", __name__, static_folder=str(asset_dir("static")),
                   static_url_path="/static", template_folder=str(asset_dir("templates")))
    for child in BLUEPRINTS:
        bp.register_blueprint(child)

    @bp.record_once
    def _setup(state: Any) -> None:
        client = connect(s)
        state.app.extensions[EXTENSION] = Engine(
            s, Inspector(s, redis=client), Admin(s, redis=client), accounts)

    bp.before_request(_authenticate)
    bp.after_request(_security_headers)
    bp.context_processor(_template_context)
    bp.register_error_handler(HTTPException, _http_error)
    bp.register_error_handler(JobqError, _engine_error)
    return bp


def create_app(settings: Settings | None = None) -> Flask:
    """The standalone dashboard app (gunicorn `dashboard.wsgi:app`, `jobq dashboard`).

    Raises ConfigError when the credential settings are inconsistent."""
    s = settings or Settings.from_env()
    app = Flask("dashboard", static_folder=None, template_folder=None)
    app.config.update(SESSION_COOKIE_NAME="jobq_session", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", PERMANENT_SESSION_LIFETIME=12 * 3600,
                      MAX_CONTENT_LENGTH=1024 * 1024)
    app.register_blueprint(make_blueprint(s))
    app.secret_key = s.dashboard_secret_key or _shared_secret(app)
    # Requests that match no route never reach the blueprint: same pages for them.
    app.register_error_handler(HTTPException, _http_error)
    app.context_processor(_template_context)
    app.after_request(_security_headers)
    return app


def _shared_secret(app: Flask) -> str:
    try:
        return app.extensions[EXTENSION].admin.shared_secret("dashboard")  # type: ignore[no-any-return]
    except JobqError as exc:
        log.warning("cannot read the shared session key from Redis (%s); using a per-process "
                    "key: logins will not carry across processes. Set JOBQ_DASHBOARD_SECRET_KEY.",
                    exc)
        return secrets.token_urlsafe(32)


def _identify(eng: Engine) -> User | None:
    if not eng.accounts.configured:
        return User("local", ADMIN, "loopback") if local_request() else None
    creds = basic_credentials()
    if creds is not None:
        account = eng.accounts.verify(*creds)
        return User(account.name, account.role, "basic") if account else None
    stored = session.get(SESSION_USER)
    if isinstance(stored, dict):
        account = eng.accounts.by_name(str(stored.get("name", "")))
        if account is not None and stored.get("fp") == account.fingerprint:
            return User(account.name, account.role, "session")
    return None


def _authenticate() -> BaseResponse | None:
    eng = engine()
    user = _identify(eng)
    g.jobq_user = user
    endpoint = request.endpoint or ""
    if user is None and endpoint not in PUBLIC_ENDPOINTS:
        if not eng.accounts.configured:
            raise Forbidden("This dashboard has no login configured, so it only answers "
                            "requests made on this machine. Set JOBQ_DASHBOARD_USER and "
                            "JOBQ_DASHBOARD_PASSWORD_HASH (python -m dashboard.hashpw).")
        if _machine_client() or basic_credentials() is not None:
            raise Unauthorized("log in (HTTP Basic auth with a dashboard account)")
        login = url_for("jobq.session.login", next=_safe_next(request.full_path))
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


def _machine_client() -> bool:
    """API, metrics and other non-browser callers get 401 + Basic, not a login redirect."""
    endpoint = request.endpoint or ""
    return endpoint.startswith(("jobq.api.", "jobq.metrics.")) or (
        request.accept_mimetypes.best == "application/json")


def _safe_next(path: str) -> str:
    path = path.rstrip("?")
    return path if path.startswith("/") and not path.startswith("//") and len(path) < 2000 \
        else "/"


def _security_headers(resp: Response) -> Response:
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


def _template_context() -> dict[str, Any]:
    user = g.get("jobq_user")
    return {"user": user, "csrf_token": csrf.token, "fmt": Formatter(),
            "poll_s": POLL_S}


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


def _http_error(exc: HTTPException) -> Response:
    code = exc.code or 500
    return render_error(code, exc.name, exc.description or exc.name)


def _engine_error(exc: JobqError) -> Response:
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
