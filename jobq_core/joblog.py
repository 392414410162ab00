"""Per-job log capture: what a task prints and logs, kept in a capped buffer per job.

While a job runs, a context variable holds its Capture. sys.stdout and sys.stderr are
replaced (once per process, see install) by proxies that write to the LogBuffer of the job
running in the calling thread or coroutine, if any, and through to the real stream (unless
the buffer says not to echo); a wrapped LogRecord factory adds the records created in a
job's context. So concurrent jobs of a thread or async pool never mix lines, and lines keep
their order across print and logging. The buffer is made at the job's first write: a job
that writes nothing costs one small object and a context-variable set and reset.

Stored form (LogBuffer.take, parse): one line per captured line, its first character the
stream it came from (o stdout, e stderr, l a logging record, m a note of jobq's own: an
attempt's start, lines dropped over the cap), then the text, then a newline.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

STDOUT, STDERR, RECORD, NOTE = "o", "e", "l", "m"
STREAMS = {STDOUT: "stdout", STDERR: "stderr", RECORD: "log", NOTE: "jobq"}
# The format of a captured logging record (the worker's own handlers keep theirs).
RECORD_FORMAT = "%(levelname)s %(name)s: %(message)s"

_current: contextvars.ContextVar[Capture | None] = contextvars.ContextVar(
    "jobq_log_capture", default=None)


class LogBuffer:
    """One attempt's captured output, capped at `max_lines` lines and `max_bytes` bytes
    (UTF-8) of stored text; what is past the cap is only counted, and close() adds a
    "[... N lines / B bytes dropped]" line. Thread-safe: the job writes, a flusher takes."""

    def __init__(self, max_lines: int, max_bytes: int, *, echo: bool = True,
                 attempt: int = 1, ref: Any = None) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.echo = echo  # also write through to the worker's stdout/stderr
        self.ref = ref  # what the owner needs to store it (queue, id, lease token)
        self.attempt = attempt
        self.lines = self.bytes = self.dropped_lines = self.dropped_bytes = 0
        self.stored = False  # some text was taken (written to Redis) before
        self.closed = False
        self._lock = threading.Lock()
        # Held by a flusher from take() until its write is done: close() waits for it, so
        # the final text is never written before text taken earlier.
        self.flushing = threading.Lock()
        self._out: list[str] = []
        self._partial: dict[str, str] = {}

    def write(self, stream: str, text: str) -> None:
        """Add output of `stream` (STDOUT, STDERR): whole lines now, a partial one later."""
        with self._lock:
            if self.closed:
                return
            if self.lines >= self.max_lines or self.bytes + 2 > self.max_bytes:
                self._drop(text)  # past the cap (a 10 MB print): count, keep nothing
                return
            head = self._partial.pop(stream, "")
            if text == "\n":  # print()'s end: the common case, no split needed
                self._add(stream, head)
                return
            parts = (head + text).split("\n")
            rest = parts.pop()
            for line in parts:
                self._add(stream, line)
            if len(rest) > self.max_bytes:  # a line that never ends: cut it
                self._add(stream, rest)
            elif rest:
                self._partial[stream] = rest

    def record(self, text: str) -> None:
        """Add a formatted logging record (one line per line of it)."""
        with self._lock:
            if not self.closed:
                for line in text.split("\n"):
                    self._add(RECORD, line)

    def _add(self, stream: str, line: str) -> None:
        if line.isascii():
            size = len(line) + 2
        else:  # a lone surrogate (undecodable bytes) would make the Redis write fail
            raw = line.encode("utf-8", "replace")
            line, size = raw.decode("utf-8"), len(raw) + 2
        if self.lines >= self.max_lines or self.bytes + size > self.max_bytes:
            self.dropped_lines += 1
            self.dropped_bytes += size - 2
            return
        if not self.lines and self.attempt > 1 and not self.stored:
            self._out.append(f"{NOTE}attempt {self.attempt}\n")
        self.lines += 1
        self.bytes += size
        self._out.append(f"{stream}{line}\n")

    def _drop(self, text: str) -> None:
        self.dropped_lines += text.count("\n")
        self.dropped_bytes += (len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
                               ) - text.count("\n")

    def take(self) -> str:
        """The complete lines added since the last take (stored form), and forget them."""
        with self._lock:
            out, self._out = self._out, []
        return "".join(out)

    def give_back(self, text: str) -> None:
        """Put back text take() gave whose write failed (it goes first next time)."""
        with self._lock:
            self._out.insert(0, text)

    def close(self) -> str:
        """End the attempt: partial lines and the dropped-lines note are added, and the rest
        is returned as the final write wants it: '' when nothing was ever captured (no key
        to touch), else '=' followed by the text not written yet (maybe none)."""
        with self.flushing, self._lock:
            self.closed = True
            for stream, rest in sorted(self._partial.items()):
                self._add(stream, rest)
            self._partial.clear()
            if self.dropped_lines or self.dropped_bytes:
                self._out.append(f"{NOTE}[... {self.dropped_lines:,} lines / "
                                 f"{self.dropped_bytes:,} bytes dropped]\n")
            out, self._out = self._out, []
        if not out and not self.stored:
            return ""
        return "=" + "".join(out)


@dataclass(frozen=True)
class LogLine:
    """One captured line: `stream` is stdout, stderr, log or jobq (a note of jobq's own)."""

    stream: str
    text: str


def parse(stored: str) -> list[LogLine]:
    """The lines of stored text (complete lines only: a cut last line is left out)."""
    lines = stored.split("\n")
    lines.pop()  # after the last newline: empty, or a line cut by an offset read
    return [LogLine(STREAMS.get(ln[:1], "stdout"), ln[1:]) for ln in lines if ln]


def tail(stored: str, offset: int) -> tuple[list[LogLine], int, int, int]:
    """The whole lines of a stored log from byte `offset` (UTF-8), the offset they start at,
    the offset after them (ask from there for newer lines) and the log's size in bytes. An
    offset past the end (the log was started afresh: requeued) reads from 0."""
    data = stored.encode("utf-8", "surrogateescape")
    if offset > len(data):
        offset = 0
    end = data.rfind(b"\n", offset) + 1 or offset  # a line being written is left for later
    return parse(data[offset:end].decode("utf-8", "replace")), offset, end, len(data)


class Opener(Protocol):
    """Who makes a Capture's buffer at its job's first write (worker/logship.py)."""

    def open_buffer(self, capture: Capture) -> LogBuffer:
        """Make `capture`'s buffer (set capture.buf, under a lock: two threads of one job
        may write first at once) and keep it to flush and finish; return it."""

    def drop_buffer(self, capture: Capture) -> None:
        """Forget the buffer open_buffer made for `capture`: its block had ended."""


class Capture:
    """One job's capture, the context variable's value inside `with capture:` (enter once).
    Its LogBuffer is made by `opener` at the job's first write (`ref`: what the opener needs
    for it), so a job that writes nothing costs this object and a context-variable set and
    reset: no buffer, no lock, no Redis write. Output after the block ends (a thread the job
    left running with a copy of its context) is not captured."""

    __slots__ = ("_token", "buf", "closed", "opener", "ref")

    # Made and entered once per job: no default arguments, no *args (each costs time).
    def __init__(self, opener: Opener | None, ref: Any) -> None:
        self.opener = opener
        self.ref = ref
        self.buf: LogBuffer | None = None
        self.closed = False

    def __enter__(self) -> Capture:
        self._token = _current.set(self)
        return self

    def __exit__(self, typ: object, exc: object, tb: object) -> None:
        self.closed = True  # first: buffer() checks it after making a buffer (see there)
        _current.reset(self._token)

    def end(self) -> None:
        """The job ended for its owner while the block may still run (an aborted sync job's
        thread runs on): nothing written from now on is captured, as after the block. The
        owner finishes the buffer after this, so one made later would be left behind."""
        self.closed = True

    def buffer(self) -> LogBuffer | None:
        """Where the job's output goes, made now if this is its first write; None once the
        block has ended (or for a Capture without buffer or opener: capture nothing)."""
        if self.closed:
            return None
        buf = self.buf
        if buf is not None or self.opener is None:
            return buf
        buf = self.opener.open_buffer(self)
        # A late writer racing the block's end: __exit__ sets `closed`, then the owner's
        # finish looks for the buffer; here the buffer is kept, then `closed` read. One of
        # the two sees the other's write, so the buffer is either finished or dropped here,
        # never left behind.
        if self.closed:
            self.opener.drop_buffer(self)
            return None
        return buf


def capturing(buffer: LogBuffer | None) -> Capture:
    """Route this thread's (or coroutine's) output to `buffer` inside `with` (None: nothing
    captured, as outside any job)."""
    capture = Capture(None, None)
    capture.buf = buffer
    return capture


def current() -> LogBuffer | None:
    """The buffer output goes to in this context (None: not inside a capturing job)."""
    cap = _current.get()
    return cap.buffer() if cap is not None else None


class _Stream:
    """sys.stdout/sys.stderr while capture is installed: a job's writes go to its buffer
    (and through, if it echoes), anything else straight through."""

    def __init__(self, real: TextIO, stream: str) -> None:
        self._real = real
        self._stream = stream

    def write(self, text: str) -> int:
        cap = _current.get()
        # A logging handler writing a record: the record itself is captured by the factory.
        if cap is not None and sys._getframe(1).f_code is not _EMIT:
            buf = cap.buffer()
            if buf is not None:
                buf.write(self._stream, str(text))
                if not buf.echo:
                    return len(text)
        return self._real.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._real.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, isatty, buffer ...
        return getattr(self._real, name)


_EMIT = logging.StreamHandler.emit.__code__


_FORMAT = logging.Formatter(RECORD_FORMAT)


def _record_factory(previous: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """A LogRecord factory: a record created in a job's context (one its logger lets through)
    also goes to the job's buffer. A factory, not a handler on the root logger: a handler
    there would change what the process's logging does outside jobs (Python's last resort
    for a process without handlers, and libraries such as werkzeug that add their own
    handler only when none is configured)."""

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        cap = _current.get()
        buf = cap.buffer() if cap is not None else None
        if buf is not None:
            try:
                buf.record(_FORMAT.format(record))
            except Exception:  # a record that does not format must not break the task
                buf.record(f"{record.levelname} {record.name}: {record.msg!r}")
        return record

    make.jobq_previous = previous  # type: ignore[attr-defined]
    return make


_install_lock = threading.Lock()
_users = 0
_factory: Callable[..., logging.LogRecord] | None = None  # ours, while installed


def install() -> None:
    """Capture from now on in this process (counted: uninstall() as many times undoes it).
    sys.stdout/sys.stderr become proxies and the LogRecord factory is wrapped; both pass
    everything through while no job captures."""
    global _users, _factory
    with _install_lock:
        _users += 1
        if not isinstance(sys.stdout, _Stream):
            sys.stdout = _Stream(sys.stdout, STDOUT)
        if not isinstance(sys.stderr, _Stream):
            sys.stderr = _Stream(sys.stderr, STDERR)
        if _factory is None:
            _factory = _record_factory(logging.getLogRecordFactory())
            logging.setLogRecordFactory(_factory)


def uninstall() -> None:
    """Undo one install(); the last one puts the real streams and factory back."""
    global _users, _factory
    with _install_lock:
        _users = max(0, _users - 1)
        if _users:
            return
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if isinstance(stream, _Stream):
                setattr(sys, name, stream._real)
        # A factory set since on top of ours keeps ours inside it (it passes records on).
        if _factory is not None and logging.getLogRecordFactory() is _factory:
            logging.setLogRecordFactory(_factory.jobq_previous)  # type: ignore[attr-defined]
            _factory = None
