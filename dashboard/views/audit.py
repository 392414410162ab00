"""The audit log: who did what to how many jobs, and when."""

from __future__ import annotations

from flask import Blueprint, Response
from werkzeug.exceptions import NotFound

from jobq_core.admin import AUDIT_MAX_ENTRIES

from .. import params
from ..engine import engine
from ..render import page

bp = Blueprint("audit", __name__)
PER_PAGE = 50


@bp.get("/audit")
def index() -> Response:
    page_no = params.int_arg("page", 1, 1, -(-AUDIT_MAX_ENTRIES // PER_PAGE))
    log = engine().inspector.audit((page_no - 1) * PER_PAGE, PER_PAGE)
    last = max(1, -(-log.total // PER_PAGE))
    if page_no > last:
        raise NotFound(f"page {page_no:,} is past the last page ({last:,}) of the audit log")
    return page("jobq/audit.html", "jobq/_audit.html", log=log, page_no=page_no,
                last_page=last)
