"""One fault scenario's resources (servers, proxies, workers, ledger) and its figures record."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import redis

from .checker import Execution, Figures, check, executions
from .ledger import ASYNC_TASKS_ENV, ProducerLog, read_ledger
from .producer import Producer
from .proxy import TcpProxy
from .server import RedisServer, ServerOptions
from .workers import WorkerProcess, Workers, WorkerSpec

RESULTS_ENV = "JOBQ_FAULTS_RESULTS"
QUEUE = "faults"
PROBE = "tests.faults.tasks.work"
# Shrunk timings for every fault worker: lease 3 s and heartbeat 1 s (the numbers), client
# timeouts and the reconnect cap scaled down alike so a scenario ends in well under a minute.
WORKER_ENV = {
    "JOBQ_SOCKET_TIMEOUT_S": "1",
    "JOBQ_CONNECT_TIMEOUT_S": "1",
    "JOBQ_RECONNECT_MAX_S": "2",
    "JOBQ_RETRY_BACKOFF_S": "0.2",
    "JOBQ_RETRY_BACKOFF_MAX_S": "1",
}


class Reachable(Protocol):
    """A server the scenario can ask (a RedisServer, or a cluster node: harness/cluster.py)."""

    def client(self) -> redis.Redis: ...


class Scenario:
    """Owns everything a scenario starts, so teardown can leave no process or port behind."""

    def __init__(self, root: Path, nodeid: str) -> None:
        self.root = root
        self.nodeid = nodeid
        self.ledger_dir = root / "ledger"
        self.log_dir = root / "logs"
        self.ledger_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.servers: list[RedisServer] = []
        self.proxies: list[TcpProxy] = []
        self.workers = Workers(self.ledger_dir, self.log_dir)
        self.producer_log = ProducerLog(self.ledger_dir)
        self.recorded: list[dict[str, Any]] = []
        self._closers: list[Callable[[], None]] = []
        # The workers' pool unless a worker says; "async" also makes the fault tasks' `work`
        # an `async def` in the workers (tests/faults/tasks.py), so coroutines get the faults.
        self.pool = "process"

    def redis(self, **options: Any) -> RedisServer:
        srv = RedisServer(
            ServerOptions(**options), data_dir=self.root / f"redis{len(self.servers) + 1}"
        )
        srv.dir.mkdir(parents=True, exist_ok=True)
        self.servers.append(srv)
        srv.start()
        return srv

    def proxy(self, server: RedisServer) -> TcpProxy:
        p = TcpProxy(server.port)
        p.start()
        self.proxies.append(p)
        return p

    def worker(self, url: str, name: str | None = None, **spec: Any) -> WorkerProcess:
        spec.setdefault("pool", self.pool)
        spec["env"] = {**WORKER_ENV, **spec.get("env", {})}
        if spec["pool"] == "async":
            spec["env"][ASYNC_TASKS_ENV] = "1"
        return self.workers.start(WorkerSpec(url=url, **spec), name)

    def queue(self, url: str, name: str = QUEUE, **settings: Any) -> Any:
        """A jobq_core.Queue for the test's producer, with the same shrunk client timeouts."""
        from jobq_core import Queue, Settings

        base = {"socket_timeout_s": 1.0, "connect_timeout_s": 1.0} | settings
        return Queue(name, url=url, settings=Settings(redis_url=url, **base))

    def producer(self, queue: Any, key_prefix: str = "k") -> Producer:
        return Producer(queue, self.producer_log, key_prefix)

    def stuck(self, server: Reachable, window_s: float = 5.0, queue: str = QUEUE) -> int:
        """Jobs left in processing: ids that are still there ``window_s`` (lease + reaper + 1 s)
        after first seen. A job claimed a moment ago (say, a rerun after a lost ack) is busy,
        not stuck, and a single ZCARD would count it."""
        from jobq_core.keys import Keyspace

        key = Keyspace().processing(queue)
        client = server.client()
        first = set(client.zrange(key, 0, -1))
        deadline = time.monotonic() + window_s
        while first and time.monotonic() < deadline:
            first &= set(client.zrange(key, 0, -1))
            time.sleep(0.2)
        return len(first)

    def processing(self, server: Reachable, queue: str = QUEUE) -> int:
        """Jobs Redis still holds in processing: ``stuck`` when counted after the drain."""
        from jobq_core.keys import Keyspace

        return int(server.client().zcard(Keyspace().processing(queue)))

    def on_close(self, fn: Callable[[], None]) -> None:
        self._closers.append(fn)

    def execs(self) -> list[Execution]:
        runs, _ = read_ledger(self.ledger_dir)
        return executions(runs)

    def running(self) -> list[Execution]:
        """Executions started and not ended (per the ledger), oldest first."""
        return sorted((e for e in self.execs() if not e.ended), key=lambda e: e.start)

    def ended_keys(self) -> set[str]:
        runs, _ = read_ledger(self.ledger_dir)
        return {r.key for r in runs if r.event == "end"}

    def wait_until(
        self, predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.05
    ) -> float:
        """Poll until predicate() holds; returns the monotonic time it did. Fails with context."""
        deadline = time.monotonic() + timeout_s
        while True:
            if predicate():
                return time.monotonic()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout_s}s waiting for {what}\n{self.workers.logs()}"
                )
            time.sleep(poll_s)

    def warm_up(self, worker: WorkerProcess, producer: Producer, slots: int) -> None:
        """Make sure every job process of an idle ``worker`` is up: run ``slots`` short probe
        jobs at once (nobody else may have free slots) and wait until they ran on ``slots``
        different processes. A fresh worker spawns its job processes in the background, which
        takes seconds on a loaded 2-core machine; a fault injected before that would measure
        the start-up, not the engine."""
        probes = {
            producer.enqueue(PROBE, 0.3, key=producer.next_key("warmup"))[0] for _ in range(slots)
        }
        self.wait_ended(probes, 60)
        if self.pool == "async":
            return  # its jobs are coroutines of the worker process: no job process to start
        pids = {e.pid for e in self.execs() if e.key in probes}
        if len(pids) < slots:
            self.warm_up(worker, producer, slots)

    def wait_busy(self, workers: list[WorkerProcess], slots: int, timeout_s: float = 60) -> None:
        """Under a backlog: wait until each worker has run jobs on ``slots`` job processes."""

        def warm() -> bool:
            execs = self.execs()
            for w in workers:
                mine = {w.pid, *(c.pid for c in w.children())}
                ran = [e for e in execs if e.pid in mine]
                # async: every job is a coroutine of the worker process, so count jobs started
                if self.pool == "async" and len(ran) < slots:
                    return False
                if self.pool != "async" and len({e.pid for e in ran}) < slots:
                    return False
            return True

        self.wait_until(warm, timeout_s, f"every worker busy on {slots} job processes", 0.2)

    def wait_ended(self, keys: set[str], timeout_s: float) -> float:
        return self.wait_until(
            lambda: keys <= self.ended_keys(), timeout_s, f"{len(keys)} jobs to end", 0.2
        )

    def check(self, **kwargs: Any) -> Figures:
        runs, enqs = read_ledger(self.ledger_dir)
        kwargs.setdefault("worker_exits", self.workers.exits())
        return check(runs, enqs, **kwargs)

    def explain(self, figures: Figures) -> str:
        """Assertion context: the figures, example keys, and the tail of every worker log."""
        return f"{figures.summary()}\nscenario dir: {self.root}\n{self.workers.logs()}"

    def record(
        self,
        scenario: str,
        title: str,
        figures: Figures,
        bars: dict[str, str] | None = None,
        **extras: float | int | str | None,
    ) -> None:
        """Append this run's figures to $JOBQ_FAULTS_RESULTS (read by report.py) if set.

        Refuses a run whose workers did not all start on the scenario's pool, so a figure
        filed under a pool was measured on it."""
        started = self.workers.pools_started()
        assert started <= {self.pool} and (started or self.pool == "process"), (
            f"scenario is for --pool {self.pool}, its workers started with {sorted(started)}"
        )
        if self.pool != "process":
            scenario, title = f"{scenario}-{self.pool}", f"{title} (--pool {self.pool})"
        entry = {
            "scenario": scenario,
            "title": title,
            "nodeid": self.nodeid,
            "time": time.time(),
            "figures": _finite(figures.as_dict()),
            "extras": _finite(extras),
            "bars": bars or {},
        }
        self.recorded.append(entry)
        path = os.environ.get(RESULTS_ENV)
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as fh:
                fh.write(json.dumps(entry) + "\n")

    def close(self) -> None:
        for fn in reversed(self._closers):
            # Teardown must go on: a failing closer must not leak processes.
            with contextlib.suppress(Exception):
                fn()
        for w in self.workers.all:
            w.cleanup()
        for i, p in enumerate(self.proxies, 1):
            p.stop()
            lines = [f"{t:.3f} {mode}" for t, mode in p.history]
            (self.log_dir / f"proxy{i}.log").write_text("\n".join(lines) + "\n")
        for s in self.servers:
            s.stop()


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    # JSON has no infinity: keep it as a string the report shows as "never".
    return {k: ("inf" if isinstance(v, float) and v == float("inf") else v) for k, v in d.items()}
