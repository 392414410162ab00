"""Per-job logs (joblog.py, worker/logship.py): what a task prints and logs is kept with its
job, in order, capped, from every pool; concurrent jobs never mix lines."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from jobq_core import Queue, Settings
from jobq_core.inspect import Inspector
from jobq_core.keys import Keyspace
from jobq_core.worker.logship import LogShipper
from tests import tasks
from tests.helpers import drain, worker_thread

EXPECTED = [("log" if i % 3 == 2 else "stdout", f"t {i}") for i in range(15)]


def lines_of(settings: Settings, queue: str, job_id: str) -> list[tuple[str, str]]:
    got = Inspector(settings).logs(queue, job_id)
    assert got is not None
    return [(ln.stream, ln.text) for ln in got.lines]


@pytest.mark.parametrize(("pool", "fn"), [("thread", tasks.chatty), ("process", tasks.chatty),
                                          ("async", tasks.achatty), ("async", tasks.chatty)])
def test_prints_and_records_are_kept_in_order_in_every_pool(
        settings: Settings, queue: Queue, pool: str, fn: object) -> None:
    job = queue.enqueue(fn, "t")  # type: ignore[call-overload]
    drain(settings, pool=pool, concurrency=2)
    assert job.refresh().status == "completed"
    assert lines_of(settings, "default", job.id) == [
        (s, f"INFO tests.chatter: {t}" if s == "log" else t) for s, t in EXPECTED]
    # It expires with the job.
    r = queue.client
    keys = Keyspace(settings.prefix)
    assert 0 < r.pttl(keys.logs("default", job.id)) <= r.pttl(keys.job("default", job.id)) + 50


def test_a_job_that_prints_nothing_has_no_log_key(settings: Settings, queue: Queue) -> None:
    job = queue.enqueue(tasks.add, 1, 2)
    drain(settings)
    assert job.result(timeout_s=5) == 3
    assert not queue.client.exists(Keyspace(settings.prefix).logs("default", job.id))
    assert lines_of(settings, "default", job.id) == []


@pytest.mark.parametrize("pool", ["thread", "async"])
def test_jobs_that_print_nothing_start_no_log_thread(
        settings: Settings, queue: Queue, pool: str) -> None:
    # Issue 18's cost goal: capture is nearly free for a job that writes nothing (a buffer
    # and the flushing thread are made at a job's first write).
    before = {t for t in threading.enumerate() if t.name == "jobq-logs"}
    jobs = [queue.enqueue(tasks.add, i, 1) for i in range(20)]
    with worker_thread(settings, pool=pool, concurrency=2):
        assert [job.result(timeout_s=10) for job in jobs] == [i + 1 for i in range(20)]
        started = {t for t in threading.enumerate() if t.name == "jobq-logs"} - before
        assert not started, "a log-flushing thread started though no job wrote a line"
        chatty = queue.enqueue(tasks.chatty, "t", 3)
        chatty.result(timeout_s=10)
    assert lines_of(settings, "default", chatty.id) == [
        ("stdout", "t 0"), ("stdout", "t 1"), ("log", "INFO tests.chatter: t 2")]


@pytest.mark.parametrize("pool", ["thread", "async"])
def test_a_job_that_writes_nothing_never_reaches_the_shippers_finish(
        settings: Settings, queue: Queue, pool: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 18's cost goal, per job: while no running job has written, the pool skips
    # LogShipper.finish (a call and an id() per job); a job that wrote still gets it.
    finished: list[int] = []
    real = LogShipper.finish

    def spy(self: LogShipper, key: int) -> str:
        finished.append(key)
        return real(self, key)

    monkeypatch.setattr(LogShipper, "finish", spy)
    jobs = [queue.enqueue(tasks.add, i, 1) for i in range(20)]
    drain(settings, pool=pool, concurrency=2)
    assert [job.result(timeout_s=5) for job in jobs] == [i + 1 for i in range(20)]
    assert finished == []
    chatty = queue.enqueue(tasks.chatty, "t", 2)
    drain(settings, pool=pool, concurrency=2)
    assert len(finished) == 1
    assert lines_of(settings, "default", chatty.id) == [("stdout", "t 0"), ("stdout", "t 1")]


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_a_job_printing_10_mb_is_capped_and_the_next_job_runs(
        settings: Settings, queue: Queue, pool: str) -> None:
    s = settings.replace(log_echo=False)  # 10 MB on the test's own output helps no one
    flood = queue.enqueue(tasks.flood, 10)
    after = queue.enqueue(tasks.chatty, "t")
    drain(s, pool=pool, concurrency=1)
    assert flood.refresh().status == "completed" and after.refresh().status == "completed"
    got = Inspector(settings).logs("default", flood.id)
    assert got is not None
    kept = len(got.lines) - 1
    assert kept <= s.log_max_lines and got.size <= s.log_max_bytes
    marker = got.lines[-1]
    m = re.fullmatch(r"\[\.\.\. ([\d,]+) lines / ([\d,]+) bytes dropped\]", marker.text)
    assert marker.stream == "jobq" and m, marker
    # Every line is either kept or counted (the stderr line at the end was dropped too).
    assert kept + int(m[1].replace(",", "")) == 100_001
    assert 9_800_000 < int(m[2].replace(",", "")) < 10_000_000
    assert len(lines_of(settings, "default", after.id)) == 15


def test_two_concurrent_thread_jobs_never_mix_lines(settings: Settings, queue: Queue,
                                                     tmp_path: Path) -> None:
    meet = str(tmp_path / "meet")
    a = queue.enqueue(tasks.chatty, "a", 300, meet, 2)
    b = queue.enqueue(tasks.chatty, "b", 300, meet, 2)
    drain(settings, pool="thread", concurrency=2)
    for job, tag in ((a, "a"), (b, "b")):
        lines = lines_of(settings, "default", job.id)
        assert len(lines) == 300
        assert [t.rsplit(" ", 2)[-2:] for _, t in lines] == [[tag, str(i)] for i in range(300)]


def test_concurrent_coroutines_never_mix_lines(settings: Settings, queue: Queue,
                                               tmp_path: Path) -> None:
    meet = str(tmp_path / "meet")
    jobs = [queue.enqueue(tasks.achatty, tag, 60, meet, 3) for tag in "abc"]
    drain(settings, pool="async", concurrency=3)
    for job, tag in zip(jobs, "abc", strict=True):
        lines = lines_of(settings, "default", job.id)
        assert [t.rsplit(" ", 2)[-2:] for _, t in lines] == [[tag, str(i)] for i in range(60)]


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_a_running_jobs_lines_are_written_while_it_runs(settings: Settings, queue: Queue,
                                                        tmp_path: Path, pool: str) -> None:
    gate = tmp_path / "gate"
    s = settings.replace(log_flush_s=0.1)
    job = queue.enqueue(tasks.print_until, str(gate))
    insp = Inspector(settings)
    with worker_thread(s, pool=pool, concurrency=1):
        deadline = time.monotonic() + 15
        while True:
            got = insp.logs("default", job.id)
            if got is not None and len(got.lines) >= 3:
                break
            assert time.monotonic() < deadline, "no line of the running job was written"
            time.sleep(0.05)
        assert got.running and got.lines[0].text == "tick 0"
        # A tail from where that read ended gets only newer lines.
        time.sleep(0.3)
        newer = insp.logs("default", job.id, got.next_offset)
        assert newer is not None and newer.offset == got.next_offset
        assert newer.lines and newer.lines[0].text == f"tick {len(got.lines)}"
        gate.touch()
        job.result(timeout_s=10)
    final = lines_of(settings, "default", job.id)
    assert final[-1] == ("stdout", "done")
    assert [t for _, t in final[:-1]] == [f"tick {i}" for i in range(len(final) - 1)]


def test_capture_off_stores_nothing(settings: Settings, queue: Queue) -> None:
    job = queue.enqueue(tasks.chatty, "t")
    drain(settings, capture_logs=False)
    assert job.refresh().status == "completed"
    assert lines_of(settings, "default", job.id) == []


def test_purge_removes_the_log(
        settings: Settings, queue: Queue) -> None:
    job = queue.enqueue(tasks.chatty, "t", 3)
    drain(settings)
    keys = Keyspace(settings.prefix)
    assert queue.client.exists(keys.logs("default", job.id))
    from jobq_core.admin import Admin

    Admin(settings).purge("default", "completed", [job.id])
    assert not queue.client.exists(keys.logs("default", job.id))


def test_the_job_page_the_cli_and_the_api_show_the_15_lines_in_order(
        settings: Settings, queue: Queue) -> None:
    from click.testing import CliRunner

    from dashboard import create_app
    from jobq_core.cli import main

    job = queue.enqueue(tasks.chatty, "t")
    drain(settings, pool="thread")
    texts = [f"INFO tests.chatter: {t}" if s == "log" else t for s, t in EXPECTED]
    client = create_app(settings).test_client()
    page = client.get(f"/jobs/default/{job.id}").get_data(as_text=True)
    shown = page[page.index('id="job-log"'):]
    at = [shown.index(f">{t}</span>") for t in texts]
    assert at == sorted(at)
    assert "hx-get" not in page[page.index('id="job-logs"'):page.index('id="job-log"')]
    out = CliRunner().invoke(main, ["logs", job.id, "--url", settings.redis_url,
                                    "--prefix", settings.prefix])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == texts
    api = client.get(f"/api/jobs/default/{job.id}/logs").get_json()
    assert [ln["text"] for ln in api["lines"]] == texts and not api["running"]
    tail = client.get(f"/api/jobs/default/{job.id}/logs?offset={api['next_offset']}").get_json()
    assert tail["lines"] == [] and tail["next_offset"] == api["next_offset"]
    for bad in ("-1", "x", "1.5"):
        resp = client.get(f"/api/jobs/default/{job.id}/logs?offset={bad}")
        assert resp.status_code == 400 and "offset must be a whole number" in resp.get_json()[
            "message"]
    assert client.get("/api/jobs/default/nope/logs").status_code == 404


def test_the_page_escapes_output_and_polls_the_log_while_the_job_runs(
        settings: Settings, queue: Queue, tmp_path: Path) -> None:
    from dashboard import create_app

    job = queue.enqueue(tasks.echo, "<script>alert(1)</script>")
    keys = Keyspace(settings.prefix)
    r = queue.client
    r.hset(keys.job("default", job.id), "state", "processing")
    r.set(keys.logs("default", job.id), "o<script>alert(1)</script>\n")
    client = create_app(settings).test_client()
    part = client.get(f"/jobs/default/{job.id}/logs").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in part and "<script>" not in part
    assert 'hx-trigger="every 1s"' in part and 'id="logs-live"' in part
    r.hset(keys.job("default", job.id), "state", "completed")
    part = client.get(f"/jobs/default/{job.id}/logs").get_data(as_text=True)
    assert "hx-get" not in part  # the job ended: the poll stops with this swap


def test_jobq_logs_follow_prints_the_lines_of_a_running_job(
        settings: Settings, queue: Queue, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.helpers import ROOT

    gate = tmp_path / "gate"
    job = queue.enqueue(tasks.print_until, str(gate))
    with worker_thread(settings.replace(log_flush_s=0.1), pool="thread", concurrency=1):
        follow = subprocess.Popen(
            [sys.executable, "-m", "jobq_core", "logs", job.id, "--follow", "--url",
             settings.redis_url, "--prefix", settings.prefix],
            stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert follow.stdout is not None
        first = [follow.stdout.readline().strip() for _ in range(3)]
        assert first == ["tick 0", "tick 1", "tick 2"]  # seen while the job runs
        assert job.refresh().status == "processing"
        gate.touch()
        assert follow.wait(timeout=20) == 0  # it exits once the job has ended
    # The same file object: communicate() would read past what readline() buffered.
    lines = first + follow.stdout.read().splitlines()
    assert lines[-1] == "done"
    assert lines[:-1] == [f"tick {i}" for i in range(len(lines) - 1)]


def test_an_aborted_sync_jobs_late_output_is_not_kept_for_another_job(
        settings: Settings, queue: Queue, tmp_path: Path) -> None:
    # Async pool, sync task: it runs in a thread of its own, and an abort ends the job (its
    # outcome goes to the pool) while the thread may run on. On 4245703 the buffer was made
    # at the thread's first write after that, registered under the job's id() and never
    # finished: kept for ever, and handed as the logs of a later job whose object reuses
    # that address (finish(id(job))).
    started, gate = tmp_path / "started", tmp_path / "gate"
    job = queue.enqueue(tasks.print_when_stopped, str(started), str(gate))
    with worker_thread(settings, pool="async", concurrency=2) as w:
        deadline = time.monotonic() + 10
        while not started.exists():
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.01)
        w.pool.abort("default", job.id, "test")
        while any(e.job.id == job.id for e in w.pool.running()):
            assert time.monotonic() < deadline, "the abort never ended the job"
            time.sleep(0.01)
        gate.touch()  # now the thread prints
        name = f"jobq-sync-{job.id}"
        while any(t.name == name for t in threading.enumerate()):
            assert time.monotonic() < deadline, "the job's thread never ended"
            time.sleep(0.01)
        assert w.pool.logs.live == {}, "a buffer was left behind for a job that ended"
