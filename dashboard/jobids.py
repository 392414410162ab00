"""A job id as one path segment of a URL, whatever characters another client gave it.

Ids jobq makes (keys.JOB_ID_RE: letters, digits, '_', '.', ':', '-') are written as they are.
Any other character is written as '~' and two hex digits per UTF-8 byte ('/' -> '~2F'). Not
'%': WSGI servers decode '%2F' to '/' before routing, so a percent-encoded '/' would still
split the segment. '~' is not in JOB_ID_RE, so an id written plainly never holds one, and
"." and ".." (which browsers resolve away as dot-segments) are escaped too.
"""

from __future__ import annotations

import re
from typing import Any

from werkzeug.routing import BaseConverter

from jobq_core.keys import JOB_ID_CHARS, valid_job_id

_PLAIN = frozenset(JOB_ID_CHARS)  # written as they are, in any id
_ESCAPE = re.compile(r"~([0-9A-Fa-f]{2})")


def job_id_to_url(job_id: str) -> str:
    """`job_id` as a path segment (reversed by job_id_from_url)."""
    if not job_id.strip("."):
        return "~2E" * len(job_id)
    if valid_job_id(job_id):
        return job_id
    return "".join(c if c in _PLAIN else "".join(f"~{b:02X}" for b in c.encode(
        "utf-8", "surrogatepass")) for c in job_id)


def job_id_from_url(segment: str) -> str:
    """The job id a path segment names: '~XX' escapes decoded, bytes that are not UTF-8
    replaced (no stored id holds them: jobq's clients decode with errors="replace")."""
    if "~" not in segment:
        return segment
    parts = _ESCAPE.split(segment)  # literal, hex, literal, hex, ..., literal
    raw = bytearray()
    for i, part in enumerate(parts):
        raw += bytes([int(part, 16)]) if i % 2 else part.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


class JobIdConverter(BaseConverter):
    """`<jobid:job_id>` in a route: url_for writes any id so that it routes back to itself."""

    def to_python(self, value: str) -> str:
        return job_id_from_url(value)

    def to_url(self, value: Any) -> str:
        return job_id_to_url(str(value))
