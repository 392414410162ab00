"""Cluster rows of the benchmark (issue 14): does the load of a no-op drain split across
primaries, what does cluster mode cost on one queue, and how fast does an idle worker whose
queues live on three primaries wake up?

    .venv/bin/python -m bench.cluster_bench [--jobs 6000] [--pairs 5] [--out FILE]

bench/run.sh runs it before bench.run (which embeds FILE, bench/results/cluster.json, in
latest.json; bench/cluster_report.py renders it into docs/benchmarks.md). It starts one
Redis, a 1-primary and a 3-primary cluster (jobq's own launchers) and their workers once
(`jobq worker --pool thread -c 1 --prefetch 64` per queue, beating before any clock starts),
then times `--pairs` interleaved pairs of drains (enqueue + drain of `--jobs` no-ops) on the
same servers, the order inside a pair alternating so drift of the machine's load cancels:

  one-plain / one-cl1    one queue, one worker: Redis (redis://) / 1-primary cluster
  spread-1 / spread-3    three queues, three workers: one Redis / one queue per primary

Per drain: wall time, each node's Redis CPU (INFO used_cpu_sys + used_cpu_user) and the
workers' CPU (/proc). Then `wake`: one worker serving the three queues of the 3-primary
cluster sits idle; a job enqueued on one queue at a time (round robin) returns the wall clock
when it starts; enqueue -> start per primary, p50 and p99 (interleaved with the same probe
on one Redis; then the one-queue workers of the 1-primary cluster and of one Redis).

On a 2-core machine the three servers and the workers share two cores, so the aggregate
cannot grow with nodes: what shows the split is each node's share of the single node's CPU
for the same jobs (expected about a third), and what that projects for N cores (one command
thread per primary).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from jobq_core import Queue, Settings, task
from jobq_core.inspect import Inspector
from jobq_core.localcluster import (
    LocalCluster,
    free_cluster_port,
    queue_names_on_distinct_primaries,
)
from jobq_core.server import LocalRedis, temp_dir

from bench.cluster_report import GOAL_COST, GOAL_SHARE, GOAL_WAKE_P50_MS

REPO = Path(__file__).resolve().parents[1]
JOBQ = REPO / ".venv" / "bin" / "jobq"
TASK = "bench.cluster.noop"
NOW = "bench.cluster.now"
_TICK = os.sysconf("SC_CLK_TCK")


@task(name=TASK)
def noop() -> None:
    """A job that does nothing (no beacon: this harness counts completions in Redis)."""


@task(name=NOW)
def now() -> float:
    """The wall clock when the job started (the wake-up probe)."""
    return time.time()


@dataclass
class NodeCpu:
    address: str
    cpu_s: float  # used_cpu_sys + used_cpu_user over the drain
    queues: list[str]


@dataclass
class Row:
    name: str
    pair: int
    jobs: int
    seconds: float
    worker_cpu_s: float  # the draining workers' processes, user + sys
    nodes: list[NodeCpu]

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "jobs_per_s": round(self.jobs_per_s, 1)}


@dataclass
class Target:
    """A running server or cluster, its node clients and the workers started on it."""

    url: str
    nodes: dict[str, redis.Redis]  # address -> plain client of that node
    where: dict[str, str] = field(default_factory=dict)  # queue -> node address
    workers: dict[tuple[str, ...], subprocess.Popen[bytes]] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"b{uuid.uuid4().hex[:6]}")

    def settings(self, prefix: str | None = None) -> Settings:
        return Settings(redis_url=self.url, prefix=prefix or self.prefix)

    def start_workers(self, queue_sets: list[list[str]], prefix: str | None = None) -> None:
        """One worker per queue set; returns once every one of them beats."""
        env = {**os.environ, "JOBQ_REDIS_URL": self.url, "JOBQ_PREFIX": prefix or self.prefix,
               "PYTHONPATH": str(REPO)}
        env.pop("REDIS_URL", None)
        for queues in queue_sets:
            args = [str(JOBQ), "worker", "--pool", "thread", "-c", "1", "--prefetch", "64",
                    "-i", "bench.cluster_bench"]
            for q in queues:
                args += ["-q", q]
            self.workers[tuple(queues)] = subprocess.Popen(
                args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        insp = Inspector(self.settings(prefix))
        deadline = time.monotonic() + 60
        while len([w for w in insp.workers() if w.alive]) < len(queue_sets):
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers on {self.url} did not start")
            time.sleep(0.1)

    def stop_workers(self) -> None:
        for p in self.workers.values():
            p.terminate()
        for p in self.workers.values():
            p.wait(60)


def _node_cpu(client: redis.Redis) -> float:
    info: dict[str, Any] = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid` (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def drain(target: Target, name: str, pair: int, queues: list[str], per_queue: int) -> Row:
    """Time enqueue + drain of `per_queue` no-ops on each of `queues` (their workers run)."""
    settings = target.settings()
    insp = Inspector(settings)
    start = {q: c["completed"] for q, c in insp.counts(queues).items()}
    pids = [p.pid for qs, p in target.workers.items() if set(qs) & set(queues)]
    before = {a: _node_cpu(c) for a, c in target.nodes.items()}
    wcpu = sum(_proc_cpu(p) for p in pids)
    t0 = time.perf_counter()
    for q in queues:
        queue = Queue(q, settings=settings)
        for i in range(0, per_queue, 1000):
            queue.enqueue_many([(TASK, ()) for _ in range(min(1000, per_queue - i))])
    total = per_queue * len(queues)
    while True:
        counts = insp.counts(queues)
        if sum(c["completed"] - start[q] for q, c in counts.items()) >= total:
            break
        if any(c["failed"] or c["dead"] for c in counts.values()):
            raise RuntimeError(f"{name}: jobs failed (see `jobq jobs failed`)")
        if time.perf_counter() - t0 > 300:
            raise RuntimeError(f"{name}: the drain took over 300 s")
        time.sleep(0.01)
    seconds = time.perf_counter() - t0
    wcpu = sum(_proc_cpu(p) for p in pids) - wcpu
    after = {a: _node_cpu(c) for a, c in target.nodes.items()}
    nodes = [NodeCpu(a, round(after[a] - before[a], 4),
                     [q for q in queues if target.where.get(q, a) == a]) for a in target.nodes]
    return Row(name, pair, total, round(seconds, 4), round(wcpu, 3), nodes)


def wake_ups(targets: list[Target], queues: list[str], prefix: str | None,
             rounds: int) -> list[dict[str, list[float]]]:
    """Enqueue -> start of a job (ms) on each of `queues` in turn, `rounds` times, on each
    target (interleaved), with the one worker serving them all idle (blocked on the
    markers) before each enqueue."""
    woke: list[dict[str, list[float]]] = [{q: [] for q in queues} for _ in targets]
    handles = [[Queue(q, settings=t.settings(prefix)) for q in queues] for t in targets]
    for _ in range(rounds):
        for i, q in enumerate(queues):
            for out, hs in zip(woke, handles, strict=True):
                time.sleep(0.02)  # the worker claims nothing more and blocks again
                sent = time.time()
                started = float(hs[i].enqueue(NOW).result(timeout_s=10))
                out[q].append(round((started - sent) * 1000, 3))
    return woke


@contextmanager
def _plain() -> Iterator[Target]:
    server = LocalRedis(temp_dir("jq-cb-"), port=free_cluster_port(set())).start()
    target = Target(server.url, {f"127.0.0.1:{server.port}": redis.Redis(port=server.port)})
    try:
        yield target
    finally:
        target.stop_workers()
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@contextmanager
def _cluster(primaries: int, queues: list[str]) -> Iterator[Target]:
    with LocalCluster(temp_dir("jq-cb-"), n_primaries=primaries, n_replicas=0) as cluster:
        clients = {f"127.0.0.1:{n.port}": cluster.client(n) for n in cluster.primaries}
        addrs = list(clients)
        target = Target(cluster.url, clients,
                        {q: addrs[cluster.primary_of(f"{{{q}}}")] for q in queues})
        try:
            yield target
        finally:
            target.stop_workers()


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 3)


def _lat(ms: list[float]) -> dict[str, Any]:
    return {"n": len(ms), "p50": _pct(ms, 0.5), "p99": _pct(ms, 0.99)}


def figures(rows: list[Row], woke: dict[str, list[float]], where: dict[str, str]) -> dict[str, Any]:
    """The figures the issue judges, from the interleaved rows (medians over the pairs)."""
    by: dict[str, dict[int, Row]] = {}
    for r in rows:
        by.setdefault(r.name, {})[r.pair] = r
    pairs = sorted(set(by["one-plain"]) & set(by["one-cl1"]))
    ratio = [by["one-cl1"][p].jobs_per_s / by["one-plain"][p].jobs_per_s for p in pairs]

    def cpu(r: Row) -> float:
        return sum(n.cpu_s for n in r.nodes)

    server = [cpu(by["one-cl1"][p]) / cpu(by["one-plain"][p]) for p in pairs]
    worker = [by["one-cl1"][p].worker_cpu_s / max(by["one-plain"][p].worker_cpu_s, 1e-9)
              for p in pairs]
    spairs = sorted(set(by["spread-1"]) & set(by["spread-3"]))
    shares: dict[str, dict[str, Any]] = {}
    for p in spairs:
        single = cpu(by["spread-1"][p])
        for n in by["spread-3"][p].nodes:
            shares.setdefault(n.address, {"queues": n.queues, "cpu": []})["cpu"].append(
                n.cpu_s / single)
    share = {a: {"cpu": _median(s["cpu"]), "cpu_min": round(min(s["cpu"]), 3),
                 "cpu_max": round(max(s["cpu"]), 3), "queues": s["queues"]}
             for a, s in shares.items()}
    per_job_us = statistics.median(cpu(by["spread-1"][p]) / by["spread-1"][p].jobs * 1e6
                                   for p in spairs)
    costs = [round(1 - x, 3) for x in ratio]
    return {
        "cluster_mode_one_queue_cost": _median([1 - x for x in ratio]),  # median of the pairs
        "cluster_mode_one_queue_costs": costs,
        "one_queue_server_cpu_ratio": _median(server),  # cluster / plain, Redis CPU per drain
        "one_queue_worker_cpu_ratio": _median(worker),  # cluster / plain, worker CPU
        "per_node_share_of_single_node_cpu": share,
        "worst_node_share": max(s["cpu"] for s in share.values()),
        "spread_1_jobs_per_s": _median([by["spread-1"][p].jobs_per_s for p in spairs]),
        "spread_3_jobs_per_s": _median([by["spread-3"][p].jobs_per_s for p in spairs]),
        "one_plain_jobs_per_s": _median([by["one-plain"][p].jobs_per_s for p in pairs]),
        "one_cl1_jobs_per_s": _median([by["one-cl1"][p].jobs_per_s for p in pairs]),
        "single_node_cpu_us_per_job": round(per_job_us, 1),
        # One command thread per primary: with a core each, N primaries carry N times the
        # jobs one Redis core does (the split above), until the workers are the limit.
        "projected_jobs_per_s_redis_bound": {n: round(n * 1e6 / per_job_us)
                                             for n in (1, 3, 6, 12)},
        "wake_ms": {q: {"node": where.get(q, ""), "n": len(ms), "p50": _pct(ms, 0.5),
                        "p99": _pct(ms, 0.99)} for q, ms in woke.items()},
    }


def run(jobs: int, pairs: int, wake_rounds: int) -> dict[str, Any]:
    """Every row (interleaved pairs on long-lived servers) and the figures."""
    began = time.monotonic()
    three = queue_names_on_distinct_primaries(3, 3, "bench-")
    wake_prefix = f"w{uuid.uuid4().hex[:6]}"
    with ExitStack() as stack:
        plain = stack.enter_context(_plain())
        cl1 = stack.enter_context(_cluster(1, ["bench"]))
        cl3 = stack.enter_context(_cluster(3, three))
        plain.start_workers([["bench"], *([q] for q in three)])
        cl1.start_workers([["bench"]])
        cl3.start_workers([[q] for q in three])
        cl3.start_workers([three], prefix=wake_prefix)
        plain.start_workers([three], prefix=wake_prefix)  # the wake-up's reference
        time.sleep(1.0)  # past the workers' start-up writes
        setup_s = time.monotonic() - began
        rows: list[Row] = []
        for p in range(pairs):
            one = [(plain, "one-plain", ["bench"], jobs), (cl1, "one-cl1", ["bench"], jobs)]
            spread = [(plain, "spread-1", three, jobs // 3), (cl3, "spread-3", three, jobs // 3)]
            for pair in (one, spread):
                for target, name, queues, per in (pair if p % 2 == 0 else pair[::-1]):
                    rows.append(drain(target, name, p, queues, per))  # A B, then B A, ...
        drains_s = time.monotonic() - began - setup_s
        woke, woke_plain = wake_ups([cl3, plain], three, wake_prefix, wake_rounds)
        # One queue (a worker of one slot: worker/node_fetch.py), cluster against one Redis.
        one_cl1, one_plain = wake_ups([cl1, plain], ["bench"], None, wake_rounds)
        wake_s = time.monotonic() - began - setup_s - drains_s
        where = dict(cl3.where)
    return {
        **figures(rows, woke, where),
        # the same probe on one Redis (a worker serving the three queues there)
        "wake_ms_single_redis": {q: _lat(ms) for q, ms in woke_plain.items()},
        "wake_ms_one_queue": {"cluster": _lat(one_cl1["bench"]),
                              "single_redis": _lat(one_plain["bench"])},
        "rows": [r.as_dict() for r in rows],
        "wake_samples_ms": woke,
        "wake_samples_ms_single_redis": woke_plain,
        "jobs_per_drain": jobs,
        "pairs": pairs,
        "setup_s": round(setup_s, 1),
        "drains_s": round(drains_s, 1),
        "wake_s": round(wake_s, 1),
        "seconds": round(time.monotonic() - began, 1),
        "cpus": os.cpu_count(),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),  # others' work on the machine
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def met(result: dict[str, Any]) -> bool:
    """Whether every figure is within the issue's bound."""
    return (result["worst_node_share"] <= GOAL_SHARE
            and result["cluster_mode_one_queue_cost"] <= GOAL_COST
            and all(w["p50"] <= GOAL_WAKE_P50_MS for w in result["wake_ms"].values()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=6000, help="no-op jobs per drain")
    ap.add_argument("--pairs", type=int, default=5, help="interleaved pairs per comparison")
    ap.add_argument("--wake-rounds", type=int, default=40, help="wake-ups per primary")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    result = run(args.jobs, args.pairs, args.wake_rounds)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    sys.exit(0 if met(result) else 1)


if __name__ == "__main__":
    main()
