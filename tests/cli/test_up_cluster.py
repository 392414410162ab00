"""`jobq up --cluster 3`: a local 3-primary Redis Cluster with a worker, the scheduler and
the dashboard; it prints the redis+cluster:// URL, commands in the folder find it, and
Ctrl-C leaves no server behind."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psutil

from tests.cli.upstack import jobq_up, run_shell, shell_env


def test_up_cluster_runs_jobs_on_three_primaries_and_stops_clean(tmp_path: Path) -> None:
    env = shell_env()
    with jobq_up(tmp_path, env, "jobq up --cluster 3") as out:
        pids = [int(p) for p in re.findall(r"\d+", out.wait_for(r"pids \[([\d, ]+)\]").group(1))]
        assert len(pids) == 3 and all(psutil.pid_exists(p) for p in pids)
        url = out.wait_for(r"Redis Cluster: (redis\+cluster://\S+)").group(1)
        assert len(url.removeprefix("redis+cluster://").split(",")) == 3
        out.wait_for(r"dashboard: http://")
        done = run_shell("jobq enqueue jobq_core.demo.add '[1, 2]' --queue demo --wait 20\n"
                         "jobq info --json", tmp_path, env)
        assert done.returncode == 0, done.stderr
        first, _, rest = done.stdout.partition("\n")
        assert first.strip() == "3"  # found the cluster in this folder, and ran the job
        info = json.loads(rest)
        primaries = [n for n in info["nodes"] if n["role"] == "primary"]
        assert len(primaries) == 3 and all(n["link"] == "connected" for n in primaries)
        [demo] = [q for q in info["queues"] if q["name"] == "demo"]
        assert demo["node"] in url and demo["counts"]["completed"] >= 1
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                   for p in pids)
    assert not (tmp_path / ".jobq" / "cluster").exists()
    assert not (tmp_path / ".jobq" / "redis-url").exists()


def test_up_cluster_refuses_a_url(tmp_path: Path) -> None:
    env = {**shell_env(), "JOBQ_REDIS_URL": "redis://127.0.0.1:1/0"}
    done = run_shell("jobq up --cluster 3", tmp_path, env, timeout_s=60)
    assert done.returncode == 2
    assert "--cluster starts a cluster of its own" in done.stderr + done.stdout
