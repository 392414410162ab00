"""Jobs as data: the states, what enqueue writes, what a worker claims, and the JSON codec.

No Redis here; `Job` reaches Redis only through the Queue that made it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from json.scanner import make_scanner
from typing import TYPE_CHECKING, Any

from .errors import JobFailed, JobNotFound, PayloadError, Timeout

if TYPE_CHECKING:
    from .queue import Queue

PENDING = "pending"
SCHEDULED = "scheduled"
PROCESSING = "processing"
COMPLETED = "completed"
FAILED = "failed"
DEAD = "dead"
CANCELLED = "cancelled"
STATES: tuple[str, ...] = (PENDING, SCHEDULED, PROCESSING, COMPLETED, FAILED, DEAD, CANCELLED)
FINAL_STATES = frozenset({COMPLETED, FAILED, DEAD, CANCELLED})
# What json.loads raises on stored text jobq did not write: not JSON (JSONDecodeError, a
# ValueError), an integer past Python's 4300 digits (ValueError), or nesting deeper than the
# interpreter's stack (RecursionError). Readers of stored JSON catch all three.
JSON_ERRORS = (ValueError, RecursionError)
# States an operator may requeue from, and purge.
REQUEUE_STATES = frozenset({FAILED, DEAD, CANCELLED, COMPLETED})
PURGE_STATES = frozenset({PENDING, SCHEDULED, COMPLETED, FAILED, DEAD, CANCELLED})

MIN_PRIORITY, MAX_PRIORITY = -100, 100
# Pending scores are (100 - priority) * PRIORITY_BAND + seq (lua/_lib.lua), so score mod the
# band is the job's place in the queue's FIFO counter.
PRIORITY_BAND = 10_000_000_000_000

# A scheduled job whose score is at least DEFERRED_MS (2**52 ms, far beyond any due time) is
# *deferred*: it waits for its dependencies, and its score is DEFERRED_MS + the time they are
# next checked. Its status stays "scheduled"; lua/_lib.lua has the same constant.
DEFERRED_MS = 2**52
# JobSpec.delay_ms of a job that starts deferred.
DEFER = -1


# Job ids are cut from one read of the OS's CSPRNG per _ID_BATCH ids. A read per id was a
# syscall per enqueue that also released the GIL: with threads enqueueing at once, each
# enqueue handed the GIL to another thread and waited to get it back (a context switch).
_ID_BATCH = 256
_ids: list[str] = []  # ids not handed out yet; list.pop is atomic, so threads share it
# The process whose read filled _ids. A forked child must not hand out the ids its parent
# still holds (the same id twice is one job: enqueue.lua writes nothing for an id it has),
# and a fork need not run Python's at-fork hooks (uWSGI's workers do not by default), so
# the pid is compared on every call: a syscall, but one that keeps the GIL.
_ids_pid = 0


def new_job_id() -> str:
    """A random 16-hex-digit id (64 bits), from the OS's CSPRNG as `secrets` does."""
    if _ids_pid == os.getpid():
        try:
            return _ids.pop()
        except IndexError:
            pass
    return _refill_ids()


def _refill_ids() -> str:
    """Read a batch of ids; one for the caller, the rest into _ids (a new list in a forked
    child, the parent's left ones dropped)."""
    global _ids, _ids_pid
    raw = os.urandom(8 * _ID_BATCH).hex()
    fresh = [raw[i:i + 16] for i in range(0, len(raw), 16)]
    mine = fresh.pop()  # ours before any other thread can take it
    pid = os.getpid()
    if _ids_pid != pid:
        _ids = fresh  # first, so a thread that sees our pid pops from the new list
        _ids_pid = pid
    else:
        _ids.extend(fresh)
    return mine


def _drop_ids_after_fork() -> None:
    # Besides the pid check: a pid names one process only while it runs. A child that never
    # drew an id keeps the filler's pid in _ids_pid; once the filler has exited, a fork of
    # that child may be given the same pid back, and two such forks would hand out one id.
    global _ids, _ids_pid
    _ids, _ids_pid = [], 0


os.register_at_fork(after_in_child=_drop_ids_after_fork)


# One encoder: json.dumps with options builds a new JSONEncoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
# For a value holding a lone surrogate (what os.fsdecode gives a file name that is not UTF-8):
# UTF-8 cannot carry it, the \u escape can, and json.loads reads back the same str.
_ASCII_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def dumps(value: Any, what: str) -> str:
    """Encode `value` as compact JSON or raise PayloadError saying what could not be encoded."""
    if value is None:
        return "null"
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{what} must be JSON-serialisable (str, int, float, bool, None, "
                           f"list, dict with str keys): {exc}") from None
    return text if text.isascii() or utf8_safe(text) else _ASCII_ENCODER.encode(value)


def utf8_safe(text: str) -> bool:
    """Whether UTF-8 can encode `text` (False for a lone surrogate), so it can go to Redis."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def utf8_text(text: str) -> str:
    """`text` with what UTF-8 cannot encode (lone surrogates) replaced by '?'."""
    if text.isascii() or utf8_safe(text):
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


def encode_args(args: Sequence[Any], kwargs: Mapping[str, Any], cap: int) -> tuple[str, str]:
    """Encode a call's args and kwargs; raise PayloadError if not JSON or above `cap` bytes."""
    if not isinstance(args, list | tuple):
        raise PayloadError(f"args must be a list or tuple, not {type(args).__name__}")
    if type(kwargs) is not dict and not isinstance(kwargs, Mapping):  # the common case first
        raise PayloadError("kwargs must be a dict with str keys")
    if not kwargs:
        if not args:
            return "[]", ""
        k = ""
    elif not all(isinstance(key, str) for key in kwargs):
        raise PayloadError("kwargs must be a dict with str keys")
    else:
        k = dumps(dict(kwargs), "kwargs")
    a = _flat_json(args) or dumps(list(args), "args")
    size = (len(a) if a.isascii() else len(a.encode())) + (len(k) if k.isascii() else
                                                            len(k.encode()))
    if size > cap:
        raise PayloadError(f"payload of {size} bytes is above the cap of {cap} bytes "
                           "(Settings.max_payload_bytes / JOBQ_MAX_PAYLOAD_BYTES); store large "
                           "data elsewhere and pass a reference")
    return a, k


def _flat_json(args: Sequence[Any]) -> str:
    """`args` as dumps() encodes them when each is a str, int, finite float, bool or None
    (most calls: the arguments of one enqueue), else '' (dumps then encodes them, or says
    what is wrong). Half of dumps' time per call, most of it after an idle spell (its
    JSONEncoder.iterencode builds an encoder object per call): every single enqueue pays it
    before its job is sent."""
    parts = []
    for a in args:
        t = type(a)
        if t is float:
            if a - a != 0.0:  # inf or nan: not JSON (allow_nan=False)
                return ""
            parts.append(float.__repr__(a))  # what the json module writes for a float
        elif t is str:
            if not (a.isascii() or utf8_safe(a)):  # a lone surrogate: dumps escapes it
                return ""
            parts.append(encode_basestring(a))
        elif t is int:
            if a.bit_length() > 4000:  # past Python's str() digit limit: dumps says so
                return ""
            try:
                parts.append(int.__repr__(a))
            except ValueError:  # past a digit limit the process lowered: dumps says so too
                return ""
        elif a is None:
            parts.append("null")
        elif t is bool:
            parts.append("true" if a else "false")
        else:  # a container, or a subclass (an IntEnum, a str enum) as dumps writes it
            return ""
    return "[" + ",".join(parts) + "]"


@dataclass(slots=True)
class JobSpec:
    """Everything enqueue writes for one new job (already validated and encoded). Treat as
    immutable; not frozen because a frozen dataclass's __init__ costs three times as much,
    which is a fifth of a bulk enqueue's client time per job."""

    id: str
    task: str
    args_json: str
    kwargs_json: str
    priority: int = 0
    delay_ms: int = 0  # DEFER (-1): deferred until the jobs in depends_on end
    ttl_ms: int = 0
    options: Mapping[str, str] = field(default_factory=dict)
    unique_key: str = ""  # "" = not unique
    unique_ms: int = 0  # how long the unique key may be held at most
    depends_on: tuple[str, ...] = ()  # 'queue/id' refs of the jobs this one waits for

    def fields(self, with_args: bool = True) -> list[str]:
        """Hash fields to store; empty or default values are left out to save memory (no
        args field means no positional args: 16 bytes less per pending job)."""
        out = ["task", self.task]
        if with_args and self.args_json != "[]":
            out += ["args", self.args_json]
        if self.kwargs_json:
            out += ["kwargs", self.kwargs_json]
        if self.priority:
            out += ["priority", str(self.priority)]
        for k, v in self.options.items():
            out += [k, v]
        return out

    def same_options(self, other: JobSpec) -> bool:
        """Whether this job is stored as `other` but for its id and args (never for a
        unique job: enqueue.lua then writes `other`'s fields with this id and args)."""
        return (self.task == other.task and self.kwargs_json == other.kwargs_json
                and self.priority == other.priority and self.delay_ms == other.delay_ms
                and self.ttl_ms == other.ttl_ms and not self.unique_key and not other.unique_key
                and (self.options is other.options or self.options == other.options))


@dataclass(slots=True)
class Claimed:
    """A job a worker holds a lease on: its id, queue, token and stored fields. Treat as
    immutable; not frozen (see JobSpec): one is made per job claimed, before it starts."""

    id: str
    queue: str
    token: str
    fields: Mapping[str, str]

    @property
    def task(self) -> str:
        return self.fields.get("task", "")

    def int_field(self, name: str, default: int) -> int:
        raw = self.fields.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            return default

    def float_field(self, name: str, default: float) -> float:
        raw = self.fields.get(name)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            return default


def decode_call(fields: Mapping[str, str]) -> tuple[list[Any], dict[str, Any]]:
    """Decode stored args/kwargs; raise PayloadError describing what is malformed."""
    try:
        args = _loads(fields["args"]) if "args" in fields else []
        raw_kwargs = fields.get("kwargs", "")
        kwargs = _loads(raw_kwargs) if raw_kwargs else {}
    except JSON_ERRORS as exc:  # malformed, not a crash to retry
        raise PayloadError(f"malformed payload: args/kwargs are not valid JSON "
                           f"({short_error(exc)})") from None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise PayloadError("malformed payload: args must be a JSON list and kwargs a JSON object")
    return args, kwargs


# json.loads' own decoder's scanner, called directly (see _loads). typeshed wants the
# scanner's context typed as a scanner: a decoder has every attribute it reads.
_scan = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _loads(text: str) -> Any:
    """json.loads(text): the same value, or the same error. Text as jobq writes it (compact,
    nothing around the value) is scanned at once, without loads' two whitespace regex
    matches around the scan: half its time, most of it after an idle spell, on every job
    between its claim and its task's first line. Anything else goes to json.loads."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:  # not a JSON value at 0 (maybe whitespace): loads says what
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def loads_or_raw(raw: str | None) -> Any:
    """A stored JSON field decoded; the raw text when it is not JSON; None when empty."""
    if raw is None or raw == "":
        return None
    try:
        return json.loads(raw)
    except JSON_ERRORS:
        return raw


def short_error(exc: BaseException) -> str:
    """An exception's message cut to one line of sane length (RecursionError's and the
    digit limit's run long)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


class JobView:
    """A job's id and the last fields read from Redis, with their decoded properties: what
    Job and AsyncJob (the awaitable handle of an AsyncQueue) have in common.

    `created` is True on a handle enqueue returned for a job it wrote, False when enqueue
    found the job already there (its `job_id` or unique key was taken) and wrote nothing,
    and False on handles from lookups.
    """

    def __init__(self, job_id: str, fields: Mapping[str, str] | None = None,
                 *, created: bool = False):
        self.id = job_id
        self.fields: dict[str, str] = dict(fields or {})
        self.created = created

    @property
    def queue_name(self) -> str:
        """The name of the job's queue."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.id} {self.task} {self.status} "
                f"queue={self.queue_name}>")

    @property
    def status(self) -> str:
        return self.fields.get("state", "")

    @property
    def task(self) -> str:
        return self.fields.get("task", "")

    @property
    def args(self) -> Any:
        # A job without positional args is stored without the field (JobSpec.fields).
        return loads_or_raw(self.fields.get("args")) if "args" in self.fields else []

    @property
    def kwargs(self) -> Any:
        return loads_or_raw(self.fields.get("kwargs")) or {}

    @property
    def error(self) -> str:
        return self.fields.get("error", "")

    @property
    def reason(self) -> str:
        return self.fields.get("reason", "")

    @property
    def meta(self) -> Any:
        return loads_or_raw(self.fields.get("meta")) or {}

    @property
    def progress(self) -> Any:
        return loads_or_raw(self.fields.get("progress"))

    @property
    def retries(self) -> int:
        return int(self.fields.get("retries", "0") or 0)

    @property
    def return_value(self) -> Any:
        """The stored result of a completed job (None otherwise); does not wait."""
        return loads_or_raw(self.fields.get("result"))

    def outcome(self) -> Any:
        """The result of this (ended) job as read last; raises JobFailed when it ended
        failed, dead or cancelled, with the stored error text."""
        if self.status == COMPLETED:
            return self.return_value
        text = self.error or self.reason or ("cancelled" if self.status == CANCELLED else "")
        if self.status == DEAD and self.reason:
            text = f"{self.error}\n{self.reason}" if self.error else self.reason
        raise JobFailed(self.id, self.status, text)

    def not_found(self) -> JobNotFound:
        """The error for a handle whose job no longer exists (expired or purged)."""
        return JobNotFound(f"job {self.id} not found in queue {self.queue_name!r} (expired or "
                           "purged)")

    def wait_left(self, state: str | None, deadline: float, timeout_s: float) -> float | None:
        """One step of result()'s wait, given the state watch.lua answered (it registered the
        caller for the job's end notification unless the job had ended): None when the job
        has ended (read it again for its outcome), else the seconds left to wait for that
        notification before `deadline` (monotonic). Raises JobNotFound when the job is gone,
        Timeout (the handle's state updated) when `timeout_s` has run out."""
        if not state:
            raise self.not_found()
        if state in FINAL_STATES:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            self.fields["state"] = state
            raise Timeout(f"job {self.id} still {state} after {timeout_s} s")
        return left


class Job(JobView):
    """A handle on one job: its id and the last fields read from Redis.

    `status` and the other properties reflect the last read; call `refresh()` to read again.
    """

    def __init__(self, queue: Queue, job_id: str, fields: Mapping[str, str] | None = None,
                 *, created: bool = False):
        super().__init__(job_id, fields, created=created)
        self.queue = queue

    @property
    def queue_name(self) -> str:
        return self.queue.name

    def refresh(self) -> Job:
        """Read the job's fields again; raises JobNotFound if it no longer exists."""
        self.queue._refresh(self)
        return self

    def result(self, timeout_s: float = 5.0) -> Any:
        """Wait up to `timeout_s` for the job to end and return its result.

        Blocks on Redis (no polling). Raises JobFailed when the job ended failed, dead or
        cancelled (with the remote traceback text), Timeout when it has not ended in time.
        """
        return self.queue._wait_result(self, timeout_s)

    def cancel(self) -> bool:
        """Cancel this job if it is pending or scheduled; False if it is in another state."""
        return self.queue.cancel(self.id)
