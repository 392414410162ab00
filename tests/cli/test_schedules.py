"""`jobq schedules` and `jobq scheduler` against a real Redis and the real Scheduler: the
command's own output path (table and --json) over the ScheduleInfo the engine returns."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from jobq_core import Queue, Schedule, Scheduler, Settings
from tests import tasks
from tests.cli.conftest import Jobq
from tests.helpers import ROOT, worker_env, worker_thread


def _two(settings: Settings) -> Scheduler:
    sched = Scheduler(settings)
    assert sched.add(Schedule("tick", tasks.add, every_s=30, args=(1, 2)))
    assert sched.add(Schedule("nightly", "tests.tasks.echo", cron="0 3 * * *",
                              timezone="Europe/Berlin", queue="low"))
    return sched


def test_list_table_and_json(jobq: Jobq, settings: Settings) -> None:
    sched = _two(sched_settings := settings)
    # Make "tick" due and let one scheduler step fire it: a last job, fired=1 to show.
    info = sched.get("tick")
    assert info is not None and info.next_ms is not None
    due = info.next_ms - 30_000
    sched.client.hset(sched.keys.schedule("tick"), "next_ms", due)
    sched.client.zadd(sched.keys.schedules(), {"tick": due})
    sched.step()
    run = jobq("schedules")
    assert run.code == 0, run.err
    rows = {line.split()[0]: line for line in run.out.splitlines()[2:] if line.strip()}
    assert set(rows) == {"tick", "nightly"}
    assert "tests.tasks.add" in rows["tick"] and "every 30 s" in rows["tick"]
    assert "yes" in rows["tick"] and f"sched:tick:{due}" in rows["tick"]
    assert rows["tick"].split()[-2:] == ["1", "0"]  # fired, missed
    assert "tests.tasks.echo" in rows["nightly"] and "cron 0 3 * * *" in rows["nightly"]

    data = {d["name"]: d for d in jobq("schedules", "--json").json}
    info = Scheduler(sched_settings).get("tick")
    assert info is not None
    tick = data["tick"]
    assert tick["when"] == "every 30s" and tick["enabled"] is True
    assert tick["next_ms"] == info.next_ms and tick["last_job_id"] == f"sched:tick:{due}"
    assert (tick["fired"], tick["missed"], tick["last_tick_ms"]) == (1, 0, due)
    assert tick["schedule"]["task"] == "tests.tasks.add"
    assert tick["schedule"]["args"] == [1, 2] and tick["schedule"]["every_s"] == 30
    assert data["nightly"]["schedule"]["timezone"] == "Europe/Berlin"
    assert data["nightly"]["schedule"]["queue"] == "low"


def test_list_when_there_are_none(jobq: Jobq) -> None:
    assert jobq("schedules").out.strip() == "no schedules"
    assert jobq("schedules", "--json").json == []


def test_actions_change_the_stored_schedule(jobq: Jobq, settings: Settings) -> None:
    sched = _two(settings)
    assert jobq("schedules", "disable", "tick").out.strip() == "disabled schedule tick"
    info = sched.get("tick")
    assert info is not None and not info.enabled and info.next_ms is None
    assert jobq("schedules", "enable", "tick", "--json").json == {"schedule": "tick",
                                                                   "action": "enable"}
    info = sched.get("tick")
    assert info is not None and info.enabled and info.next_ms is not None

    run = jobq("schedules", "run", "nightly", "--json").json
    assert run["queue"] == "low" and run["id"].startswith("sched:nightly:")
    job = Queue("low", settings=settings).job(run["id"])
    assert job is not None and job.status == "pending"

    assert jobq("schedules", "delete", "tick", "--yes").code == 0
    assert sched.get("tick") is None and [i.name for i in sched.list()] == ["nightly"]
    missing = jobq("schedules", "delete", "nope", "--yes")
    assert missing.code == 1 and "no schedule named 'nope'" in missing.one_line_error()
    unknown = jobq("schedules", "run", "nope")
    assert unknown.code == 1 and "nope" in unknown.one_line_error()
    # Each change is in the audit log the dashboard writes, in the dashboard's words; the
    # refused delete and run are not.
    entries = jobq("audit", "--json").json["entries"]
    assert [(e["action"], e["detail"], e["count"]) for e in reversed(entries)] == [
        ("disable schedule", "tick", 0), ("enable schedule", "tick", 0),
        ("run schedule now", f"nightly: {run['id']}", 1), ("delete schedule", "tick", 0)]
    assert all(e["actor"].startswith("cli:") for e in entries)


def test_bad_usage(jobq: Jobq) -> None:
    assert jobq("schedules", "enable").code == 2
    assert jobq("schedules", "explode", "tick").code == 2


def test_scheduler_command_fires_declared_schedules(settings: Settings) -> None:
    # `jobq scheduler -i MODULE` imports a module that declares a schedule, leads, and fires
    # it; a worker runs the ticks. SIGTERM stops it cleanly.
    env = {**worker_env(settings), "JOBQ_SCHEDULER_LEASE_S": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "jobq_core", "scheduler", "-i",
                             "tests.cli.declared_schedule"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        sched = Scheduler(settings)
        with worker_thread(settings):
            deadline = time.monotonic() + 30
            info = sched.get("every-second")
            while (info is None or info.fired < 2) and time.monotonic() < deadline:
                assert proc.poll() is None, proc.communicate()[0]
                time.sleep(0.1)
                info = sched.get("every-second")
            assert info is not None and info.fired >= 2, info
            job = Queue("default", settings=settings).job(info.last_job_id)
            assert job is not None and job.result(timeout_s=10) == 5
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out
        assert "leads" in out and "scheduler stopping" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
