"""enqueue, job, jobs, requeue, purge, cancel, pause, resume: exit codes, --json, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobq_core import Queue, Settings
from tests import tasks
from tests.cli.conftest import Jobq
from tests.helpers import drain, worker_thread


def test_enqueue_prints_the_job(jobq: Jobq, queue: Queue) -> None:
    run = jobq("enqueue", "tests.tasks.add", "[1, 2]")
    assert run.code == 0
    job_id = run.out.split()[1]
    assert run.out.startswith(f"enqueued {job_id} (tests.tasks.add) on default: pending")
    job = queue.job(job_id)
    assert job is not None and job.args == [1, 2]


def test_enqueue_json_and_options(jobq: Jobq, settings: Settings) -> None:
    run = jobq("enqueue", "tests.tasks.echo", '{"a": 1}', "--queue", "low", "--priority", "7",
               "--delay-s", "60", "--max-retries", "1", "--meta", '{"by": "cli"}', "--json")
    assert run.code == 0, run.err
    out = run.json
    assert out["queue"] == "low" and out["state"] == "scheduled"
    job = Queue("low", settings=settings).job(out["id"])
    assert job is not None
    assert job.kwargs == {"a": 1} and job.meta == {"by": "cli"}
    assert job.fields["priority"] == "7" and job.fields["max_retries"] == "1"


def test_enqueue_kwargs_option_and_import_defaults(jobq: Jobq, settings: Settings) -> None:
    run = jobq("enqueue", "tests.tasks.echo", "[1]", "--kwargs", '{"k": "v"}', "--json")
    assert run.json["queue"] == "default"
    job = Queue("default", settings=settings).job(run.json["id"])
    assert job is not None and (job.args, job.kwargs) == ([1], {"k": "v"})


@pytest.mark.parametrize(("args", "message"), [
    (["tests.tasks.add", "[1,"], "ARGS is not valid JSON"),
    (["tests.tasks.add", "5"], "ARGS must be a JSON array"),
    (["tests.tasks.add", "[1]", "--kwargs", "[2]"], "--kwargs must be a JSON object"),
    (["tests.tasks.add", "{}", "--kwargs", '{"a": 1}'], "pass one"),
    (["tests.tasks.add", "--meta", "nope"], "--meta is not valid JSON"),
    ([], "missing TASK"),
    (["tests.tasks.add", "[1]", "--priority", "x"], "Invalid value for '--priority'"),
    # JSON Python will not decode: a traceback before 2026-12-06 (first-day review)
    (["tests.tasks.add", "[" + "9" * 5000 + "]"], "ARGS is JSON jobq cannot take"),
    (["tests.tasks.add", "[1]", "--meta", '{"a": ' + "[" * 50_000 + "]" * 50_000 + "}"],
     "--meta is JSON jobq cannot take"),
])
def test_enqueue_bad_usage_exits_2(jobq: Jobq, queue: Queue, args: list[str],
                                   message: str) -> None:
    run = jobq("enqueue", *args)
    assert run.code == 2
    assert message in run.one_line_error()
    assert queue.count("pending") == 0


@pytest.mark.parametrize(("args", "message"), [
    (["not a task name"], "invalid task name"),
    (["tests.tasks.add", "--priority", "1000"], "priority must be"),
    (["tests.tasks.add", "--queue", "a{b}"], "invalid queue name"),
    (["tests.tasks.add", "--job-id", "bad id!"], "invalid job id"),
    (["tests.tasks.add", "-i", "no.such.module"], "cannot import no.such.module"),
])
def test_enqueue_refused_exits_1(jobq: Jobq, args: list[str], message: str) -> None:
    run = jobq("enqueue", *args)
    assert run.code == 1
    assert message in run.one_line_error()


def test_enqueue_wait_prints_the_result(jobq: Jobq, settings: Settings) -> None:
    with worker_thread(settings):
        run = jobq("enqueue", "tests.tasks.add", "[1, 2]", "--wait", "10")
        assert (run.code, run.out) == (0, "3\n")
        run = jobq("enqueue", "tests.tasks.add", "[2, 2]", "--wait", "10", "--json")
        assert run.json["result"] == 4 and run.json["state"] == "completed"
        run = jobq("enqueue", "tests.tasks.boom_once", '["kaput"]', "--wait", "10")
        assert run.code == 1
        assert "failed: ValueError: kaput" in run.one_line_error()


def test_enqueue_wait_times_out(jobq: Jobq) -> None:
    run = jobq("enqueue", "tests.tasks.add", "[1, 2]", "--wait", "0.2")
    assert run.code == 1
    assert "still pending" in run.one_line_error()


def test_bulk_enqueue_from_file(jobq: Jobq, settings: Settings, tmp_path: Path) -> None:
    lines = [json.dumps({"task": "tests.tasks.add", "args": [i, i]}) for i in range(2500)]
    lines += [json.dumps({"task": "tests.tasks.add", "args": [1, 1], "queue": "other"}), ""]
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines))
    run = jobq("enqueue", "--file", str(path), "--json")
    assert run.code == 0, run.err
    assert run.json["enqueued"] == 2501
    assert run.json["queues"] == {"default": 2500, "other": 1}
    assert Queue("default", settings=settings).count("pending") == 2500
    run = jobq("enqueue", "tests.tasks.add", "--file", "-", input="[1, 2]\n[3, 4]\n")
    assert (run.code, run.out.strip()) == (0, "enqueued 2 jobs on default")


def test_bulk_enqueue_bad_line_writes_nothing(jobq: Jobq, queue: Queue, tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"task": "tests.tasks.add", "args": [1, 1]}\n{oops\n')
    run = jobq("enqueue", "--file", str(path))
    assert run.code == 2
    assert f"{path}:2: not valid JSON" in run.one_line_error()
    assert queue.count("pending") == 0
    assert jobq("enqueue", "--file", str(tmp_path / "missing")).code == 2


def test_job_details(jobq: Jobq, queue: Queue, settings: Settings) -> None:
    job = queue.enqueue(tasks.boom_once, "details")
    drain(settings)
    run = jobq("job", job.id)
    assert run.code == 0
    assert "failed" in run.out and "tests.tasks.boom_once" in run.out
    assert "ValueError: details" in run.out and "attempts" in run.out
    data = jobq("job", job.id, "--json").json
    assert data["state"] == "failed" and data["args"] == ["details"]
    assert data["attempts"][0]["outcome"] == "error"
    assert jobq("job", job.id, "--queue", "default", "--json").json["id"] == job.id


@pytest.mark.parametrize("job_id", ["0123456789abcdef", "bad id!"])
def test_job_unknown_exits_1(jobq: Jobq, job_id: str) -> None:
    run = jobq("job", job_id)
    assert run.code == 1
    assert "no job" in run.one_line_error()


def test_jobs_lists_by_state(jobq: Jobq, queue: Queue, settings: Settings) -> None:
    ok = queue.enqueue(tasks.add, 1, 1)
    bad = [queue.enqueue(tasks.boom_once, f"m{i}") for i in range(3)]
    drain(settings)
    run = jobq("jobs", "failed")
    assert run.code == 0
    assert all(j.id in run.out for j in bad) and ok.id not in run.out
    data = jobq("jobs", "failed", "--limit", "2", "--json").json
    assert data["total"] == 3 and len(data["jobs"]) == 2
    # Ended jobs: newest first. Two jobs may end in the same millisecond, so check the
    # order of their end times rather than which id comes first.
    scores = [row["score"] for row in data["jobs"]]
    assert scores == sorted(scores, reverse=True)
    assert {row["id"] for row in data["jobs"]} <= {j.id for j in bad}
    assert jobq("jobs", "completed", "--task", "add", "--json").json["jobs"][0]["id"] == ok.id
    assert jobq("jobs", "completed", "--task", "nothing", "--json").json["jobs"] == []
    assert jobq("jobs", "pending").out.strip() == "no pending jobs"
    assert jobq("jobs", "pending", "-q", "elsewhere", "--json").json["total"] == 0


def test_jobs_bad_state_exits_2(jobq: Jobq) -> None:
    run = jobq("jobs", "lost")
    assert run.code == 2
    assert "'lost' is not one of" in run.one_line_error()


def _failed(queue: Queue, settings: Settings, n: int) -> list[str]:
    ids = [queue.enqueue(tasks.boom_once).id for _ in range(n)]
    drain(settings)
    return ids


def test_requeue_ids_and_all(jobq: Jobq, queue: Queue, settings: Settings) -> None:
    ids = _failed(queue, settings, 4)
    run = jobq("requeue", "failed", ids[0], ids[1])
    assert (run.code, run.out.strip()) == (0, "requeued 2 failed jobs")
    assert queue.count("pending") == 2
    data = jobq("requeue", "failed", "--all", "--json").json
    assert data == {"action": "requeue", "state": "failed", "count": 2,
                    "queues": {"default": 2}}
    assert queue.count("pending") == 4 and queue.count("failed") == 0


def test_requeue_checks_every_id_first(jobq: Jobq, queue: Queue, settings: Settings) -> None:
    ids = _failed(queue, settings, 1)
    pending = queue.enqueue(tasks.add, 1, 1)
    run = jobq("requeue", "failed", ids[0], "0123456789abcdef")
    assert run.code == 1 and "no job" in run.one_line_error()
    run = jobq("requeue", "failed", ids[0], pending.id)
    assert run.code == 1 and "is pending, not failed" in run.one_line_error()
    assert queue.count("failed") == 1
    run = jobq("requeue", "failed", ids[0], "-q", "other")
    assert run.code == 1


@pytest.mark.parametrize("args", [["failed"], ["failed", "--all", "abc"], ["pending", "--all"]])
def test_requeue_bad_usage_exits_2(jobq: Jobq, args: list[str]) -> None:
    run = jobq("requeue", *args)
    assert run.code == 2
    run.one_line_error()


def test_purge_needs_yes_off_a_terminal(jobq: Jobq, queue: Queue, settings: Settings) -> None:
    _failed(queue, settings, 2)
    run = jobq("purge", "failed", "--all")
    assert run.code == 2 and "add --yes" in run.one_line_error()
    assert queue.count("failed") == 2
    data = jobq("purge", "failed", "--all", "--yes", "--json").json
    assert data["count"] == 2 and queue.count("failed") == 0


def test_purge_ids(jobq: Jobq, queue: Queue) -> None:
    a, b = queue.enqueue(tasks.add, 1, 1), queue.enqueue(tasks.add, 2, 2)
    run = jobq("purge", "pending", a.id, "--yes")
    assert (run.code, run.out.strip()) == (0, "purged 1 pending job")
    assert queue.job(a.id) is None and queue.job(b.id) is not None
    assert jobq("purge", "pending", a.id, "--yes").code == 1
    assert jobq("purge", "processing", "--all", "--yes").code == 2


def test_bulk_requeue_of_many(jobq: Jobq, queue: Queue, settings: Settings) -> None:
    _failed(queue, settings, 1200)
    data = jobq("requeue", "failed", "--all", "--json").json
    assert data["count"] == 1200
    assert queue.count("pending") == 1200


def test_cancel(jobq: Jobq, queue: Queue) -> None:
    job = queue.enqueue_in(60, tasks.add, 1, 1)
    run = jobq("cancel", job.id, "--json")
    assert run.code == 0 and run.json == {"id": job.id, "queue": "default", "state": "cancelled"}
    assert job.refresh().status == "cancelled"
    again = jobq("cancel", job.id)
    assert again.code == 1 and "only pending or scheduled" in again.one_line_error()
    assert jobq("cancel", "0123456789abcdef").code == 1


def test_pause_and_resume(jobq: Jobq, queue: Queue) -> None:
    queue.enqueue(tasks.add, 1, 1)
    run = jobq("pause", "default")
    assert run.code == 0 and queue.is_paused()
    assert jobq("info", "--json").json["queues"][0]["paused"] is True
    assert jobq("resume", "default", "--json").json == {"queue": "default", "paused": False}
    assert not queue.is_paused()


def test_pause_resume_and_enqueue_are_audited(jobq: Jobq, queue: Queue) -> None:
    # The same audit log the dashboard writes: who, what, on which queue.
    queue.enqueue(tasks.add, 1, 1)
    assert jobq("pause", "default").code == 0
    assert jobq("resume", "default").code == 0
    assert jobq("enqueue", "tests.tasks.add", "[1, 2]", "--queue", "default").code == 0
    entries = jobq("audit", "--json").json["entries"]
    assert [(e["action"], e["queue"], e["count"]) for e in entries] == [
        ("enqueue", "default", 1), ("resume", "default", 0), ("pause", "default", 0)]
    assert all(e["actor"].startswith("cli:") for e in entries)
    assert entries[0]["detail"].startswith("tests.tasks.add ")


@pytest.mark.parametrize(("name", "message"), [("nope", "unknown queue 'nope'"),
                                               ("a{b}", "invalid queue name")])
def test_pause_bad_queue_exits_1(jobq: Jobq, queue: Queue, name: str, message: str) -> None:
    queue.enqueue(tasks.add, 1, 1)
    run = jobq("pause", name)
    assert run.code == 1 and message in run.one_line_error()


def test_filtered_bulk_actions_and_the_audit_log(jobq: Jobq, queue: Queue,
                                                 settings: Settings) -> None:
    queue.enqueue(tasks.boom_once, "disk full")
    queue.enqueue(tasks.boom_once, "timeout talking to db")
    queue.enqueue(tasks.boom, "other task")
    drain(settings)
    run = jobq("requeue", "failed", "--all", "--text", "disk full", "--json")
    assert run.json["count"] == 1
    run = jobq("purge", "failed", "--all", "--task", "boom_once", "--yes", "--json")
    assert run.json["count"] == 1
    assert queue.count("failed") == 1 and queue.count("pending") == 1
    assert jobq("requeue", "failed", "abc", "--task", "x").code == 2
    entries = jobq("audit", "--json").json["entries"]
    assert [(e["action"], e["count"]) for e in entries[:2]] == [("purge all", 1),
                                                                ("requeue all", 1)]
    assert entries[0]["actor"].startswith("cli:") and "task='boom_once'" in entries[0]["detail"]
    assert "requeue all" in jobq("audit").out


def test_cancel_many_and_all(jobq: Jobq, queue: Queue) -> None:
    a, b = queue.enqueue(tasks.add, 1, 1), queue.enqueue_in(60, tasks.add, 2, 2)
    run = jobq("cancel", a.id, b.id, "--json")
    assert run.json == {"action": "cancel", "count": 2, "queues": {"default": 2}}
    later = [queue.enqueue_in(60, tasks.add, i, i) for i in range(3)]
    now = queue.enqueue(tasks.add, 9, 9)
    run = jobq("cancel", "--all", "--state", "scheduled", "--json")
    assert run.json["count"] == 3
    assert all(j.refresh().status == "cancelled" for j in later)
    assert now.refresh().status == "pending"
    assert jobq("cancel").code == 2
    assert jobq("cancel", now.id, "--all").code == 2
