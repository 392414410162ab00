"""Log in (password form) and log out."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers.response import Response as BaseResponse

from ..engine import engine
from ..guard import SESSION_USER, check_password
from ..redirects import safe_next

bp = Blueprint("session", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | BaseResponse:
    eng = engine()
    accounts = eng.accounts
    target = safe_next(request.values.get("next", "/"))
    if not accounts.configured:
        return redirect(url_for("jobq.overview.index"))
    error = ""
    if request.method == "POST":
        name = request.form.get("username", "")[:200]
        account = check_password(name, request.form.get("password", "")[:1000], via="form")
        if account is not None:
            # A fresh session on login, CSRF token included: nothing a visitor could have
            # planted before (a cookie set via a sibling subdomain) carries into the login.
            session.clear()
            session[SESSION_USER] = {"name": account.name, "sid": eng.sessions.create(account)}
            session.permanent = True
            return redirect(target if target != "/" else url_for("jobq.overview.index"))
        error = "Wrong user name or password."
    resp = make_response(render_template("jobq/login.html", error=error, next=target))
    if error:
        resp.status_code = 401
    return resp


@bp.post("/logout")
def logout() -> BaseResponse:
    """End the session here and on the server: a copy of the cookie is refused after."""
    stored = session.get(SESSION_USER)
    if isinstance(stored, dict):
        engine().sessions.end(str(stored.get("sid", "")))
    session.clear()
    return redirect(url_for(".login"))
