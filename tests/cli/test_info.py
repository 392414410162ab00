"""`jobq info`: bars, workers, throughput; --json; --interval refreshes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from jobq_core import Queue, Settings
from tests import tasks
from tests.cli.conftest import Jobq
from tests.helpers import ROOT, drain, worker_env, worker_thread


def test_info_text_shows_queues_states_and_bars(jobq: Jobq, queue: Queue,
                                                settings: Settings) -> None:
    queue.enqueue(tasks.add, 1, 1)
    queue.enqueue(tasks.boom_once)
    drain(settings)
    queue.enqueue(tasks.add, 2, 2)
    run = jobq("info")
    assert run.code == 0
    for word in ("default", "pending", "completed", "failed", "dead", "workers: 0",
                 "last 15 min: 1 completed"):
        assert word in run.out, run.out
    assert "█" in run.out  # the bars
    assert "\x1b[" not in run.out  # no colour codes on a pipe


def test_info_json(jobq: Jobq, queue: Queue, settings: Settings) -> None:
    queue.enqueue(tasks.add, 1, 1)
    queue.enqueue(tasks.boom_once)
    drain(settings)
    Queue("low", settings=settings).enqueue(tasks.add, 1, 1)
    with worker_thread(settings, ["low", "default"]) as w:
        data = jobq("info", "--json", "--minutes", "5").json
        assert [q["name"] for q in data["queues"]] == ["default", "low"]
        default = data["queues"][0]
        assert default["counts"]["completed"] == 1 and default["counts"]["failed"] == 1
        assert default["paused"] is False and default["stats"]["enqueued"] == 2
        assert data["throughput"]["minutes"] == 5
        assert data["throughput"]["completed"] >= 1 and data["throughput"]["failed"] == 1
        assert len(data["throughput"]["per_minute"]) == 5
        assert [x["id"] for x in data["workers"]] == [w.id]
        assert data["workers"][0]["state"] in ("idle", "busy")
        assert data["workers"][0]["queues"] == ["low", "default"]
        assert data["server"]["version"]
        # One Redis: one node, which holds every queue (queues show no node column).
        [node] = data["nodes"]
        assert node["role"] == "standalone" and node["link"] == "ok" and not node["error"]
        assert node["queues"] == ["default", "low"] and node["used_memory"] > 0
        assert {q["node"] for q in data["queues"]} == {""}
        only = jobq("info", "--json", "-q", "low").json
        assert [q["name"] for q in only["queues"]] == ["low"]


def test_info_empty(jobq: Jobq) -> None:
    run = jobq("info")
    assert run.code == 0 and "no queues yet" in run.out


def test_info_interval_json_lines_until_ctrl_c(settings: Settings, queue: Queue) -> None:
    queue.enqueue(tasks.add, 1, 1)
    proc = subprocess.Popen([sys.executable, "-m", "jobq_core", "info", "--interval", "0.2",
                             "--json"], env=worker_env(settings), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        first = json.loads(proc.stdout.readline())
        queue.enqueue(tasks.add, 2, 2)
        counts = []
        for _ in range(20):
            data = json.loads(proc.stdout.readline())
            counts.append(data["queues"][0]["counts"]["pending"])
            if counts[-1] == 2:
                break
        assert first["queues"][0]["counts"]["pending"] == 1 and counts[-1] == 2
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_info_interval_text_refreshes(settings: Settings, queue: Queue) -> None:
    queue.enqueue(tasks.add, 1, 1)
    proc = subprocess.Popen([sys.executable, "-m", "jobq_core", "info", "--interval", "0.2"],
                            env=worker_env(settings), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen = 0
    try:
        for line in proc.stdout:
            seen += line.startswith("Redis ")
            if seen == 3:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert seen == 3 and proc.returncode == 0, err


def test_info_one_row_per_queue_bars_on_one_scale(jobq: Jobq, settings: Settings) -> None:
    big, small = Queue("big", settings=settings), Queue("small", settings=settings)
    big.enqueue_many([(tasks.add, (i, i)) for i in range(120)])
    small.enqueue_many([(tasks.add, (i, i)) for i in range(4)])
    out = jobq("info").out
    rows = {line.split()[0]: line for line in out.splitlines()
            if line.split() and line.split()[0] in ("big", "small")}
    assert set(rows) == {"big", "small"}, out  # one row each, not 7 lines per queue
    assert rows["big"].count("█") == 30 and rows["small"].count("█") == 1, out
    assert "120" in rows["big"] and "0 … 120" in out
    # No worker serves them: the problems are listed under the table.
    assert "problems: 2" in out and "no live worker serves it" in out
    assert "jobq worker -q big" in out


def test_doctor_exit_codes_and_json(jobq: Jobq, queue: Queue, settings: Settings) -> None:
    run = jobq("doctor")
    assert run.code == 0 and "problems: none" in run.out
    queue.enqueue(tasks.add, 1, 1)
    run = jobq("doctor")
    assert run.code == 1 and "1 pending job in default and no live worker" in run.out
    data = jobq("doctor", "--json").json
    assert data["ok"] is False and [p["kind"] for p in data["problems"]] == ["no_worker"]
    assert data["problems"][0]["target"] == {"page": "jobs", "state": "pending",
                                             "queue": "default"}


def test_threshold_sets_the_pending_age_problem_per_queue(jobq: Jobq, queue: Queue,
                                                          settings: Settings) -> None:
    import time

    queue.enqueue(tasks.add, 1, 1)
    queue.pause()  # paused: the only other problem, so the age one is easy to see
    assert "pending_age" not in [p["kind"] for p in jobq("doctor", "--json").json["problems"]]
    run = jobq("threshold", "default", "0.05")
    assert run.code == 0 and "longer than 0.05 s" in run.out
    time.sleep(0.1)  # the next pending job must be older than the 50 ms threshold
    found = {p["kind"]: p for p in jobq("doctor", "--json").json["problems"]}
    assert "jobq threshold default SECONDS" in found["pending_age"]["act"]
    assert jobq("threshold", "default", "default").code == 0
    assert "pending_age" not in [p["kind"] for p in jobq("doctor", "--json").json["problems"]]
    assert jobq("threshold", "default", "-1").code != 0
    assert jobq("threshold", "nope", "5").code != 0


def test_a_bad_name_in_the_queue_registry_is_left_out(jobq: Jobq, queue: Queue,
                                                      settings: Settings) -> None:
    # One invalid entry (see tests/dashboard/test_bad_input.py) failed `jobq info`,
    # `jobq doctor` and `jobq jobs STATE` with "invalid queue name".
    from jobq_core.keys import Keyspace
    from tests.conftest import raw_client

    queue.enqueue(tasks.add, 1, 1)
    raw_client(settings.redis_url).sadd(Keyspace(settings.prefix).queues(), "reports\n")
    for args in (["info"], ["doctor"], ["jobs", "pending"]):
        run = jobq(*args)
        assert "invalid queue name" not in run.err, (args, run.err)
        assert "default" in run.out, (args, run.out)
