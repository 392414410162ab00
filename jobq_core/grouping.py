"""Error signatures: which failed and dead jobs belong to one error group.

A group is (task, exception type, normalised message): numbers, hex ids, UUIDs and quoted
values of the message are masked, so "user 'bob' has 3 items" and "user 'amy' has 12
items" are one group. Pure: no Redis here; the worker computes the signature and fail.lua
records it with the failure (jobq_core/errorgroups.py reads the groups).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

MESSAGE_CHARS = 200  # of the normalised message kept and compared
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}\b")
_HEX = re.compile(r"\b0[xX][0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b")
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)*")
# "pkg.mod.SomeError: message" or "SomeError" alone, as a traceback's last line has it.
_EXC_LINE = re.compile(r"([A-Za-z_][\w.]*)(?::\s?(.*))?", re.DOTALL)


@dataclass(frozen=True)
class Signature:
    id: str  # 16 hex characters: the group's key
    task: str
    type: str  # the exception's class name ('' when the error is not a traceback)
    message: str  # normalised


def normalise(message: str) -> str:
    """The message with quoted values, UUIDs, hex ids and numbers masked."""
    text = _QUOTED.sub(lambda m: m.group(0)[0] + "…" + m.group(0)[0], message)
    text = _UUID.sub("<id>", text)
    text = _HEX.sub("<id>", text)
    text = _NUMBER.sub("<n>", text)
    return " ".join(text.split())[:MESSAGE_CHARS]


def signature(task: str, error: str, reason: str = "") -> Signature:
    """The group of a failure of `task` whose error text (a traceback, or a message) is
    `error`; `reason` stands in when there is no error text."""
    lines = [ln for ln in error.strip().splitlines() if ln.strip()]
    last = lines[-1].strip() if lines else reason.strip()
    match = _EXC_LINE.fullmatch(last)
    if match and (match.group(2) is not None or lines):
        etype, message = match.group(1).rsplit(".", 1)[-1], match.group(2) or ""
    else:
        etype, message = "", last
    norm = normalise(message)
    digest = hashlib.sha1(f"{task}\0{etype}\0{norm}".encode(), usedforsecurity=False)
    return Signature(digest.hexdigest()[:16], task, etype, norm)
