"""Formatting and view models (no Redis)."""

from __future__ import annotations

from dashboard.formatting import Formatter as F
from dashboard.models import chart, schedule_rows, totals, worker_rows, worker_summary
from jobq_core.inspect import HistoryPoint, WorkerInfo


def test_times_and_durations() -> None:
    assert F.ts(0) == "—" and F.ts(None) == "—"
    assert F.ts(1_795_000_000_123) == "2026-11-18 11:06:40.123 UTC"
    assert F.duration(999) == "999 ms" and F.duration(1500) == "1.5 s"
    assert F.duration(61_000) == "1 min 1 s" and F.duration(3_660_000) == "1 h 1 min"
    assert F.duration(90_000_000) == "1 d 1 h"
    assert F.ago(1000, 4000) == "3.0 s ago" and F.ago(5000, 4000) == "in 1.0 s"
    assert F.num(1234567) == "1,234,567" and F.num(None) == "—"


def test_error_line_and_pretty() -> None:
    assert F.error_line("Traceback...\n  File x\nValueError: boom\n\n") == "ValueError: boom"
    assert F.error_line("") == ""
    shown = F.pretty('{"a": [1, 2]}')
    assert shown.text == '{\n  "a": [\n    1,\n    2\n  ]\n}' and not shown.truncated
    assert F.pretty("not json").text == "not json"
    big = F.pretty('"' + "x" * 100 + '"', limit=10)
    assert big.truncated and big.size == 102 and len(big.text) == 10


def test_chart_geometry() -> None:
    pts = [HistoryPoint(60_000 * i, i, 1 if i == 2 else 0) for i in range(4)]
    c = chart(pts, width=400, height=100)
    assert c.top == 3 and c.completed == 6 and c.failed == 1
    b = c.bars[2]
    assert b.ok_h == round(100 * 2 / 3, 2) and b.fail_y == 0 and b.x == 200
    assert chart([], width=10).bars == []
    # The time axis: a tick every 10 minutes (UTC), at the middle of that minute's bar; the
    # value shown on hover stays inside the plot at both ends.
    hour = [HistoryPoint(60_000 * (600 + i), i, 0) for i in range(25)]  # 10:00 .. 10:24
    c = chart(hour, width=500, height=100)
    assert [(t.x, t.label) for t in c.ticks] == [(10.0, "10:00"), (210.0, "10:10"),
                                                 (410.0, "10:20")]
    assert [b.tip_anchor for b in (c.bars[0], c.bars[12], c.bars[24])] == ["start", "middle",
                                                                          "end"]
    assert c.bars[12].label == "10:12 UTC: 12 completed, 0 failed"


def test_totals_and_workers() -> None:
    counts = {"a": {"pending": 2, "failed": 1}, "b": {"pending": 3}}
    assert totals(counts)["pending"] == 5 and totals(counts)["dead"] == 0
    rows = worker_rows([WorkerInfo("w1", True, {"state": "busy", "current": "q/j1,q/j2",
                                                "done": "4", "queues": "q,r"}),
                        WorkerInfo("w2", False, {})])
    assert rows[0].current == [("q", "j1"), ("q", "j2")] and rows[0].queues == ["q", "r"]
    assert rows[1].lost and worker_summary(rows) == {"busy": 1, "idle": 0, "lost": 1,
                                                     "other": 0}


def test_local_time_in_a_schedules_zone() -> None:
    assert F.local(1_795_000_000_123, "Europe/Berlin") == "2026-11-18 12:06 CET"
    assert F.local(1_795_000_000_123, "UTC") == "" and F.local(None, "Europe/Berlin") == ""
    assert F.local(1_795_000_000_123, "Nowhere/Atlantis") == ""


def test_schedule_rows() -> None:
    from jobq_core import Schedule
    from jobq_core.inspect import ScheduleInfo

    every = ScheduleInfo("ping", Schedule("ping", "t.ping", every_s=90, queue="high"), True,
                         next_ms=10_000, last_tick_ms=None, last_job_id="", last_fired_ms=None,
                         fired=0, missed=0)
    cron = ScheduleInfo("nightly", Schedule("nightly", "t.report", cron="0 3 * * *",
                                            timezone="Europe/Berlin"), False, None, 5, "j1", 5,
                        3, 1, fields={"last_run_now_job_id": "j2", "last_run_now_ms": "7"})
    broken = ScheduleInfo("broken", None, False, None, None, "", None, 0, 0, "bad def")
    rows = schedule_rows([every, cron, broken], ["high"], now_ms=30_000, failover_ms=16_000)
    assert rows[0].every == "every 90 s (1 min 30 s)" and not rows[0].cron
    assert rows[0].queue_known and rows[0].late  # 20 s past its tick, failover is 16 s
    assert rows[1].every == "0 3 * * *" and rows[1].cron and rows[1].timezone == "Europe/Berlin"
    assert not rows[1].late and not rows[1].queue_known and rows[1].queue == "default"
    assert rows[1].last_run_now_job_id == "j2" and rows[1].last_run_now_ms == 7
    assert rows[2].task == "" and rows[2].error == "bad def" and rows[2].every == "?"
    assert not schedule_rows([every], [], now_ms=20_000, failover_ms=16_000)[0].late


def test_stamp_renders_a_time_element() -> None:
    from markupsafe import escape

    html = str(escape(F.stamp(1_795_000_000_123, 1_795_000_003_123)))
    assert html == ('<time datetime="2026-11-18T11:06:40.123+00:00" '
                    'title="2026-11-18 11:06:40.123 UTC">3.0 s ago</time>')
    assert str(escape(F.stamp(None, 5))) == "—"
