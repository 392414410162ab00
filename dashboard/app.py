"""The app factory and the mountable blueprint: they wire the engine handle, the request
guard (guard.py), the error pages (render.py) and the views together."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

import redis
from flask import Blueprint, Flask, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from jobq_core import JobqError, Settings
from jobq_core.admin import Admin
from jobq_core.connection import connect, translated
from jobq_core.inspect import Inspector
from jobq_core.layout import ensure_layout

from .auth import Accounts
from .engine import EXTENSION, Engine
from .guard import authenticate, security_headers, template_context
from .jobids import JobIdConverter, job_id_to_url
from .render import engine_error, http_error
from .sessions import SessionStore
from .throttle import LoginThrottle

log = logging.getLogger("jobq.dashboard")
SESSION_LIFETIME_S = 12 * 3600


def asset_dir(name: str) -> Path:
    """templates/ or static/: inside the installed package (wheel), else the repo top level."""
    here = Path(__file__).resolve().parent
    for candidate in (here / name, here.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"dashboard {name}/ not found next to {here}; reinstall jobq")


def make_blueprint(settings: Settings | None = None) -> Blueprint:
    """The whole dashboard as one blueprint, to mount in a host app under a URL prefix:

        host.register_blueprint(make_blueprint(settings), url_prefix="/jobq")

    The host's secret key signs the session (login and CSRF token)."""
    from .views import BLUEPRINTS

    s = settings or Settings.from_env()
    accounts = Accounts(s)  # validates the credential settings before anything starts
    bp = Blueprint("jobq", __name__, static_folder=str(asset_dir("static")),
                   static_url_path="/static", template_folder=str(asset_dir("templates")))
    # Before the children's routes: Flask registers a blueprint's own setup first.
    bp.record_once(lambda state: state.app.url_map.converters.update(jobid=JobIdConverter))
    bp.add_app_template_filter(job_id_to_url, "jobq_url_id")
    for child in BLUEPRINTS:
        bp.register_blueprint(child)

    @bp.record_once
    def _setup(state: Any) -> None:
        client = connect(s)
        _check_layout(client, s)
        state.app.extensions[EXTENSION] = Engine(
            s, Inspector(s, redis=client), Admin(s, redis=client), accounts,
            SessionStore(s, client, SESSION_LIFETIME_S), LoginThrottle(s, client))

    bp.before_request(authenticate)
    bp.after_request(security_headers)
    bp.context_processor(template_context)
    bp.register_error_handler(HTTPException, http_error)
    bp.register_error_handler(JobqError, engine_error)
    return bp


def create_app(settings: Settings | None = None) -> Flask:
    """The standalone dashboard app (gunicorn `dashboard.wsgi:app`, `jobq dashboard`).

    Raises ConfigError when the credential settings are inconsistent."""
    s = settings or Settings.from_env()
    app = Flask("dashboard", static_folder=None, template_folder=None)
    app.config.update(SESSION_COOKIE_NAME="jobq_session", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME_S,
                      MAX_CONTENT_LENGTH=1024 * 1024)
    app.session_interface = _SessionCookie()
    if s.dashboard_trusted_proxies:
        n = s.dashboard_trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n)
    app.register_blueprint(make_blueprint(s))
    app.secret_key = s.dashboard_secret_key or _shared_secret(app)
    # Requests that match no route never reach the blueprint: same pages for them.
    app.register_error_handler(HTTPException, http_error)
    app.context_processor(template_context)
    app.after_request(security_headers)
    return app


class _SessionCookie(SecureCookieSessionInterface):
    """The signed session cookie, marked Secure whenever the request came over https:
    directly, or through a trusted proxy's X-Forwarded-Proto (dashboard_trusted_proxies)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def _check_layout(client: redis.Redis, settings: Settings) -> None:
    """Move an older jobq's global keys (sessions, secret, audit log) before serving."""
    try:
        with translated(settings.redis_url):
            ensure_layout(client, settings.prefix)
    except JobqError as exc:
        log.warning("cannot check the key layout in Redis (%s); the first worker or scheduler "
                    "of this version moves an older jobq's keys", exc)


def _shared_secret(app: Flask) -> str:
    try:
        return app.extensions[EXTENSION].admin.shared_secret("dashboard")  # type: ignore[no-any-return]
    except JobqError as exc:
        log.warning("cannot read the shared session key from Redis (%s); using a per-process "
                    "key: logins will not carry across processes. Set JOBQ_DASHBOARD_SECRET_KEY.",
                    exc)
        return secrets.token_urlsafe(32)
