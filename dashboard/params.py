"""Bounded request parameters: every bad value is a 400 with a clear message, never a 500."""

from __future__ import annotations

import re
from collections.abc import Sequence

from flask import request
from werkzeug.exceptions import BadRequest, NotFound

from jobq_core.job import STATES
from jobq_core.keys import QUEUE_NAME_RE, STORED_JOB_ID_RULE, checked_job_id, stored_job_id
from jobq_core.schedule import SCHEDULE_NAME_RE

ALL_QUEUES = "all"
PER_PAGE_CHOICES = (10, 25, 50, 100, 200)
MAX_PAGE = 10_000_000
MAX_TEXT = 200
# ASCII digits only: str.isdigit() accepts "²" (which int() then rejects: a 500) and other
# scripts' digits (which int() reads as a number no one typed in ASCII).
WHOLE_NUMBER = re.compile(r"[0-9]{1,12}")
MS_NUMBER = re.compile(r"[0-9]{1,16}(?:\.[0-9]{1,6})?")
MAX_COUNT = 10**12  # counts a form or body may carry back (jobs done so far, ...)


def _short(value: str) -> str:
    # Never echo megabytes of attacker input into a page or a log.
    return value if len(value) <= 60 else value[:60] + "…"


def int_arg(name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter from lo to hi (400 otherwise); default when absent."""
    raw = request.args.get(name, "").strip()
    if raw == "":
        return default
    if not WHOLE_NUMBER.fullmatch(raw) or not lo <= int(raw) <= hi:
        raise BadRequest(f"{name} must be a whole number from {lo} to {hi:,}, "
                         f"not {_short(raw)!r}")
    return int(raw)


def form_int(name: str, default: int) -> int:
    """A whole number from the posted form (400 when malformed); default when absent."""
    raw = request.form.get(name, "").strip()
    if raw == "":
        return default
    if not WHOLE_NUMBER.fullmatch(raw):
        raise BadRequest(f"{name} must be a whole number, not {_short(raw)!r}")
    return int(raw)


def form_ms(name: str) -> float | None:
    """A time in ms from the posted form as the page wrote it ("1765000000123" or
    "1765000000123.0"; 400 for anything else, nan and inf included); None when absent."""
    raw = request.form.get(name, "").strip()
    if raw == "":
        return None
    if not MS_NUMBER.fullmatch(raw):
        raise BadRequest(f"{name} must be a time in ms, not {_short(raw)!r}")
    return float(raw)


def choice_arg(name: str, default: str, choices: Sequence[str]) -> str:
    raw = request.args.get(name, "").strip()
    if raw == "":
        return default
    if raw not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}, not {_short(raw)!r}")
    return raw


def text_arg(name: str, source: str = "args") -> str:
    """A free-text filter of at most MAX_TEXT characters."""
    values = request.args if source == "args" else request.form
    raw = values.get(name, "").strip()
    if len(raw) > MAX_TEXT:
        raise BadRequest(f"{name} is limited to {MAX_TEXT} characters")
    return raw


def per_page_arg(default: int = 25) -> int:
    raw = request.args.get("per_page", "").strip()
    if raw == "":
        return default
    if not WHOLE_NUMBER.fullmatch(raw) or int(raw) not in PER_PAGE_CHOICES:
        raise BadRequest(f"per_page must be one of {', '.join(map(str, PER_PAGE_CHOICES))}, "
                         f"not {_short(raw)!r}")
    return int(raw)


def state_or_404(state: str) -> str:
    if state not in STATES:
        raise NotFound(f"there is no job state {_short(state)!r}; states are "
                       f"{', '.join(STATES)}")
    return state


def queue_name(raw: str, known: Sequence[str], *, allow_all: bool = False) -> str:
    """A queue name that exists (404 if unknown, 400 if malformed); 'all' when allowed."""
    if allow_all and raw in ("", ALL_QUEUES):
        return ALL_QUEUES
    if not QUEUE_NAME_RE.fullmatch(raw):
        raise BadRequest(f"malformed queue name {_short(raw)!r}: queue names are 1-64 letters, "
                         "digits, '_', '.', '-'")
    if raw not in known:
        raise NotFound(f"no queue named {raw!r}")
    return raw


def job_id(raw: str) -> str:
    """A job id as a stored job may carry it (keys.stored_job_id: another client may have
    written any characters but control characters), 400 otherwise; whether it exists is the
    caller's check."""
    return checked_job_id(raw, stored_job_id, STORED_JOB_ID_RULE, BadRequest, "malformed")


def schedule_name(raw: str) -> str:
    """A well-formed schedule name (400 otherwise); whether it exists is the caller's check."""
    if not SCHEDULE_NAME_RE.fullmatch(raw):
        raise BadRequest(f"malformed schedule name {_short(raw)!r}: schedule names are 1-64 "
                         "letters, digits, '_', '.', '-'")
    return raw
