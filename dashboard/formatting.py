"""How values look on the pages: times, durations, counts, JSON. Pure functions (unit-tested);
templates reach them as `fmt`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from markupsafe import escape

from jobq_core.job import JSON_ERRORS

PREVIEW_CHARS = 20_000  # payloads above this are cut on the job page, with a link to all


@dataclass(frozen=True)
class Shown:
    """A possibly long text cut for display; `size` is the full length in characters."""

    text: str
    truncated: bool
    size: int


@dataclass(frozen=True)
class Stamp:
    """A time shown relative to now ('3 min ago') with the absolute UTC time on hover; renders
    itself as a <time> element (markupsafe's __html__), which is much cheaper per row of a
    200-row list than a template macro."""

    ms: int | float | None
    now_ms: int | float

    def __html__(self) -> str:
        if not self.ms:
            return "—"
        f = Formatter
        return (f'<time datetime="{escape(f.iso(self.ms))}" title="{escape(f.ts(self.ms))}">'
                f"{escape(f.ago(self.ms, self.now_ms))}</time>")


class Formatter:
    @staticmethod
    def ts(ms: int | float | None) -> str:
        """Absolute UTC time with milliseconds, e.g. 2026-11-22 10:21:06.407 UTC."""
        if not ms:
            return "—"
        dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
        return dt.strftime("%Y-%m-%d %H:%M:%S.") + f"{int(ms) % 1000:03d} UTC"

    @staticmethod
    def local(ms: int | float | None, timezone: str) -> str:
        """Wall-clock time in `timezone` (an IANA name), e.g. 2026-11-24 03:00 CET; '' when
        the zone is unknown or UTC (the pages show UTC anyway)."""
        if not ms or not timezone or timezone == "UTC":
            return ""
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return ""
        return datetime.fromtimestamp(ms / 1000, tz=zone).strftime("%Y-%m-%d %H:%M %Z")

    @staticmethod
    def iso(ms: int | float | None) -> str:
        if not ms:
            return ""
        return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")

    @staticmethod
    def clock(ms: int | float | None) -> str:
        if not ms:
            return "—"
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S")

    @staticmethod
    def stamp(ms: int | float | None, now_ms: int | float) -> Stamp:
        """`ms` as a <time> element: relative to `now_ms`, absolute on hover."""
        return Stamp(ms, now_ms)

    @classmethod
    def ago(cls, ms: int | float | None, now_ms: int | float) -> str:
        """'3 min ago' or 'in 5 s' relative to now_ms."""
        if not ms:
            return "—"
        delta = now_ms - ms
        text = cls.duration(abs(delta))
        return f"{text} ago" if delta >= 0 else f"in {text}"

    @staticmethod
    def duration(ms: int | float | None) -> str:
        if ms is None:
            return "—"
        ms = max(0, ms)
        if ms < 1000:
            return f"{int(ms)} ms"
        s = ms / 1000
        if s < 60:
            return f"{s:.1f} s"
        if s < 3600:
            return f"{int(s // 60)} min {int(s % 60)} s"
        if s < 86400:
            return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"
        return f"{int(s // 86400)} d {int(s % 86400 // 3600)} h"

    @staticmethod
    def runtime(ms: int | float | None) -> str:
        """A run time (a percentile of the run-time histograms): "< 1 ms" inside the first
        bucket, where the histogram cannot tell more; tenths of a ms below 10 ms; else as
        duration()."""
        if ms is None:
            return "—"
        if ms <= 1:
            return "< 1 ms"
        return f"{ms:.1f} ms" if ms < 10 else Formatter.duration(ms)

    @staticmethod
    def num(n: int | float | None) -> str:
        return "—" if n is None else f"{int(n):,}"

    @staticmethod
    def error_line(error: str) -> str:
        """The line that names the exception: the last non-empty line of a traceback."""
        lines = [ln for ln in (error or "").strip().splitlines() if ln.strip()]
        return lines[-1].strip() if lines else ""

    @staticmethod
    def pretty(raw: str | None, limit: int = PREVIEW_CHARS) -> Shown:
        """Indented JSON of a stored JSON text (or the text itself if it is not JSON)."""
        if raw is None or raw == "":
            return Shown("", False, 0)
        try:
            text = json.dumps(json.loads(raw), indent=2, ensure_ascii=False, sort_keys=False)
        except JSON_ERRORS:
            text = raw
        if len(text) > limit:
            return Shown(text[:limit], True, len(text))
        return Shown(text, False, len(text))

    @staticmethod
    def cut(text: str | None, limit: int = PREVIEW_CHARS) -> Shown:
        text = text or ""
        return Shown(text[:limit], len(text) > limit, len(text))

    @staticmethod
    def json_value(value: Any) -> str:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
