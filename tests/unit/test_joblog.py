"""Per-job log capture without a server: the buffer's cap and stored form, and what
install() changes in the process (streams, records) and what it must leave alone."""

from __future__ import annotations

import contextvars
import io
import logging
import sys

from jobq_core import joblog
from jobq_core.joblog import Capture, LogBuffer, capturing, parse


def test_lines_keep_their_order_and_stream_and_partial_lines_wait_for_their_end() -> None:
    buf = LogBuffer(100, 10_000)
    buf.write("o", "a")
    buf.record("WARNING x: r1\nsecond line")
    buf.write("o", "b\n")
    buf.write("e", "err\nhalf")
    assert buf.take() == "lWARNING x: r1\nlsecond line\noab\neerr\n"
    assert buf.close() == "=ehalf\n"  # the partial line ends with the attempt
    assert [(ln.stream, ln.text) for ln in parse("oab\neerr\nlrec\nmnote\nocut")] == [
        ("stdout", "ab"), ("stderr", "err"), ("log", "rec"), ("jobq", "note")]


def test_the_cap_keeps_the_first_lines_and_counts_the_rest() -> None:
    buf = LogBuffer(3, 10_000)
    for i in range(10):
        buf.write("o", f"line {i}\n")
    assert buf.close() == "=oline 0\noline 1\noline 2\nm[... 7 lines / 42 bytes dropped]\n"
    small = LogBuffer(1000, 300)
    small.write("o", "x" * 1000)  # a line that never ends is cut, not kept growing
    assert len(small.close()) < 400


def test_nothing_captured_means_no_log_to_touch_and_a_later_attempt_is_marked() -> None:
    assert LogBuffer(10, 1000).close() == ""
    buf = LogBuffer(10, 1000, attempt=2)
    buf.write("o", "again\n")
    assert buf.close() == "=mattempt 2\noagain\n"


def test_install_routes_by_context_and_leaves_logging_handlers_alone() -> None:
    root = logging.getLogger()
    handlers, factory = list(root.handlers), logging.getLogRecordFactory()
    real = io.StringIO()
    saved = sys.stdout
    sys.stdout = real  # type: ignore[assignment]
    try:
        joblog.install()
        # No handler joins the root logger: libraries that add their own handler only when
        # none is configured (werkzeug's "Running on ..."), and Python's last resort, still do.
        assert root.handlers == handlers
        buf = LogBuffer(100, 10_000, echo=False)
        with capturing(buf):
            print("in the job")
            logging.getLogger("tests.joblog").warning("a %s", "record")
        print("outside")
        assert buf.take() == "oin the job\nlWARNING tests.joblog: a record\n"
        assert real.getvalue() == "outside\n"  # echo off: the job's print stayed out
    finally:
        joblog.uninstall()
        sys.stdout = saved
    assert sys.stdout is saved and logging.getLogRecordFactory() is factory


class _Opener:
    """A joblog.Opener that counts, and can play a late writer racing the block's end."""

    def __init__(self, end_meanwhile: bool = False) -> None:
        self.end_meanwhile = end_meanwhile
        self.opened = self.dropped = 0

    def open_buffer(self, capture: Capture) -> LogBuffer:
        self.opened += 1
        capture.buf = LogBuffer(100, 10_000, echo=False)
        if self.end_meanwhile:  # the job's block ends while this buffer is being made
            capture.closed = True
        return capture.buf

    def drop_buffer(self, capture: Capture) -> None:
        self.dropped += 1


def test_a_buffer_is_made_at_the_first_write_only_and_never_after_the_block() -> None:
    saved = sys.stdout
    sys.stdout = io.StringIO()  # type: ignore[assignment]
    joblog.install()
    try:
        quiet, chatty = _Opener(), _Opener()
        with Capture(quiet, "job 1"):
            pass
        with Capture(chatty, "job 2") as cap:
            late = contextvars.copy_context()  # as a thread the job leaves running has
            print("one")
            print("two")
        late.run(print, "after the job")
        assert (quiet.opened, chatty.opened) == (0, 1)
        assert cap.buf is not None and cap.buf.take() == "oone\notwo\n"
        racing = _Opener(end_meanwhile=True)
        with Capture(racing, "job 3") as cap3:
            print("lost in the race")
        assert (racing.opened, racing.dropped) == (1, 1)  # dropped, never left behind
        assert cap3.buffer() is None
    finally:
        joblog.uninstall()
        sys.stdout = saved
