"""Job ids in text that gives some characters a meaning: each character that may not stand
as it is becomes a mark and two hex digits per byte of its UTF-8 form.

Another client may store a job under any id (spaces, ',', '/', '%' ...), and jobq reads and
acts on it (keys.stored_job_id). Two formats escape such ids here, each with its own mark
and characters; neither may change (one is stored, one is in links already given out):

- dashboard/jobids.py: an id as one URL path segment. Mark '~', for every character outside
  keys.JOB_ID_CHARS: '%' would not do, WSGI servers decode '%2F' to '/' before routing.
- records.current_field: the jobs in a worker's registry 'current' field, ','-separated.
  Mark '%', for ',' and '%' only (written by the worker at every beat, so it stays short).

A third is in Lua, so it cannot live here: claim.lua's claim record keeps the ids of a claim
space-separated, with whitespace and '%' as '%XX'; only claim.lua writes and reads it.
"""

from __future__ import annotations

import re
from collections.abc import Callable


def escape(text: str, plain: Callable[[str], bool], mark: str) -> str:
    """`text` with each character `plain` refuses written as `mark` and two upper-case hex
    digits per byte of its UTF-8 form (a lone surrogate too). `plain(mark)` must be false,
    so that unescape() reverses it."""
    if all(map(plain, text)):
        return text
    return "".join(c if plain(c) else "".join(f"{mark}{b:02X}" for b in c.encode(
        "utf-8", "surrogatepass")) for c in text)


def unescape(text: str, mark: str) -> str:
    """escape() reversed: each `mark` and two hex digits is that byte; bytes that are not
    UTF-8 (a hand-written escape) read as U+FFFD, as jobq's clients decode what they read."""
    if mark not in text:
        return text
    parts = re.split(f"{re.escape(mark)}([0-9A-Fa-f]{{2}})", text)  # literal, hex, ..., literal
    raw = bytearray()
    for i, part in enumerate(parts):
        raw += bytes([int(part, 16)]) if i % 2 else part.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")
