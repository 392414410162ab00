"""A job id as one path segment of a URL, whatever characters another client gave it.

Ids jobq makes (keys.JOB_ID_RE: letters, digits, '_', '.', ':', '-') are written as they are.
Any other character is written as '~' and two hex digits per UTF-8 byte ('/' -> '~2F'). Not
'%': WSGI servers decode '%2F' to '/' before routing, so a percent-encoded '/' would still
split the segment. '~' is not in JOB_ID_RE, so an id written plainly never holds one, and
"." and ".." (which browsers resolve away as dot-segments) are escaped too. The escape itself
is jobq_core/escapes.py's, which also says how the other escapes of job ids differ.
"""

from __future__ import annotations

from typing import Any

from werkzeug.routing import BaseConverter

from jobq_core.escapes import escape, unescape
from jobq_core.keys import JOB_ID_CHARS, valid_job_id

_PLAIN = frozenset(JOB_ID_CHARS)  # written as they are, in any id


def job_id_to_url(job_id: str) -> str:
    """`job_id` as a path segment (reversed by job_id_from_url)."""
    if not job_id.strip("."):
        return "~2E" * len(job_id)
    if valid_job_id(job_id):
        return job_id
    return escape(job_id, _PLAIN.__contains__, "~")


def job_id_from_url(segment: str) -> str:
    """The job id a path segment names: '~XX' escapes decoded, bytes that are not UTF-8
    replaced (no stored id holds them: jobq's clients decode with errors="replace")."""
    return unescape(segment, "~")


class JobIdConverter(BaseConverter):
    """`<jobid:job_id>` in a route: url_for writes any id so that it routes back to itself."""

    def to_python(self, value: str) -> str:
        return job_id_from_url(value)

    def to_url(self, value: Any) -> str:
        return job_id_to_url(str(value))
