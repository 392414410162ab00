"""The benchmark orchestrator: one private Redis, every scenario, every system, interleaved.

Run through ``bench/run.sh`` (it builds the venvs first). Order of a run:

    for each repetition (the first system rotates from one repetition to the next):
        floor: redis-py round trips from each venv, redis-benchmark GET/LPUSH at -P 1 and -P 16
        bulk:    every system's batch API
        threads: every system's single enqueues from 16 threads sharing one client
        drain:   every system's 1-process and 2-process no-op drains (single enqueues timed too)
        sleep:   every system's 10 ms jobs at concurrency 8
        latency: every system's idle enqueue->start latency
        mixed:   jobq's mixed load (10 x 1 s then 1,000 no-ops) with and without prefetch
        adrain:  asyncio no-op drains on one process (jobq --pool async, arq, SAQ, taskiq)
        asleep:  their 10 ms `asyncio.sleep` jobs at concurrency 100
        aenqueue: their awaitable enqueue from 64 coroutines of one process
        crash:   jobq: a job's child SIGKILLed, until a new child began the next job
    drain-pairs, latency-pairs: issue 15's two ratios, BENCH_PAIRS interleaved pairs each
    capture-pairs: issue 18's log capture cost, BENCH_PAIRS interleaved pairs per configuration
    enqueue-pairs: issue 15's one-thread enqueue, jobq against Huey, BENCH_ENQUEUE_PAIRS pairs
    dashboard: jobq's dashboard pages at 10^6 pending + 10^5 failed (bench/dashboard_bench.py)
    memory: every system's bytes per pending job (BENCH_MEM_REPEAT passes)

SAQ and taskiq (``Driver.async_only``) take part in the asyncio scenarios only.

Every unit starts from FLUSHALL on the harness's own server, has a timeout, and stops (then kills)
its worker process groups. A failed unit is recorded with its error and the run goes on.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from bench import pairs, procs, report
from bench.collector import Collector
from bench.config import REPO_ROOT, BenchConfig
from bench.drivers import DRIVERS, Driver, Variant
from bench.drivers.base import WorkerHandle
from bench.drivers.jobq import EXTRA_ARGS_ENV, extra_worker_args
from bench.redis_server import RedisServer, Snapshot, find_benchmark_tool
from bench.stats import percentile
from bench.venvs import INSTALL_STATUS, RAW_DIR, VENVS, venv_for

CLUSTER_JSON = REPO_ROOT / "bench" / "results" / "cluster.json"

Record = dict[str, Any]

SCENARIO_ROLES = {
    "drain": ("drain-1p", "drain-2p"),
    "sleep": ("sleep-c8",),
    "latency": ("latency",),
    "mixed": ("mixed",),
    "adrain": ("adrain-1p",),
    "asleep": ("asleep-c100",),
    "crash": ("crash",),
}
# scenario -> the job kind its drains run
DRAIN_KINDS = {"drain": "noop", "sleep": "sleep10ms", "adrain": "anoop", "asleep": "asleep10ms"}


class UnitError(RuntimeError):
    """A unit could not produce its figure; the message says why."""


@dataclass
class Context:
    config: BenchConfig
    server: RedisServer
    sockets_dir: Path
    log_dir: Path
    drivers: dict[str, Driver]
    skipped: dict[str, str]
    records: list[Record] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """Environment for every producer and worker subprocess."""
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
        env["PYTHONPATH"] = str(REPO_ROOT)
        env["BENCH_REDIS_URL"] = self.server.url
        return env


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", flush=True)


def agent(ctx: Context, system: str, *args: str, timeout_s: float | None = None) -> dict[str, Any]:
    """Run a ``bench.agent`` command in ``system``'s venv and return its JSON answer."""
    venv = venv_for(system)
    argv = [str(venv.python), "-m", "bench.agent", system, *args]
    try:
        done = procs.run(argv, ctx.env(), REPO_ROOT, timeout_s or ctx.config.unit_timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise UnitError(
            f"`bench.agent {system} {' '.join(args)}` timed out after {exc.timeout:.0f} s"
        ) from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-4:])
        raise UnitError(f"`bench.agent {system} {args[0]}` exited {done.returncode}: {tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def per_job(commands: dict[str, int], n: int) -> dict[str, float]:
    return {
        name: round(calls / n, 3) for name, calls in sorted(commands.items(), key=lambda kv: -kv[1])
    }


def redis_delta(before: Snapshot, after: Snapshot, n: int) -> dict[str, Any]:
    """Per-job Redis costs between two snapshots."""
    commands = after.commands_since(before)
    return {
        "redis_cmds_per_job": sum(commands.values()) / n,
        "redis_cpu_us_per_job": (after.cpu_s - before.cpu_s) / n * 1e6,
        "net_bytes_per_job": (after.net_bytes - before.net_bytes) / n,
        "commands_per_job": per_job(commands, n),
    }


def scaled(n: int, variant: Variant) -> int:
    return max(10, int(n * variant.n_scale))


# scenarios


def run_bulk(ctx: Context, driver: Driver, rep: int) -> Record:
    n = ctx.config.bulk_n
    ctx.server.reset()
    before = ctx.server.snapshot()
    result = agent(
        ctx,
        driver.name,
        "enqueue",
        "--kind",
        "noop",
        "--n",
        str(n),
        "--mode",
        "bulk",
        "--chunk",
        str(ctx.config.bulk_chunk),
    )
    after = ctx.server.snapshot()
    return {
        "label": f"{driver.name}-bulk",
        "row": driver.title,
        "n": n,
        "rate": result["rate"],
        "producer_cpu_us_per_job": result["cpu_s"] / n * 1e6,
        **redis_delta(before, after, n),
    }


def run_threads(ctx: Context, driver: Driver, rep: int) -> Record:
    """Single enqueues from BENCH_THREADS threads of one process sharing one client."""
    n, threads = ctx.config.threads_n, ctx.config.threads
    ctx.server.reset()
    before = ctx.server.snapshot()
    result = agent(
        ctx, driver.name, "enqueue", "--kind", "noop", "--n", str(n), "--threads", str(threads)
    )
    after = ctx.server.snapshot()
    return {
        "label": f"{driver.name}-threads",
        "row": driver.title,
        "n": n,
        "threads": threads,
        "rate": result["rate"],
        "producer_cpu_us_per_job": result["cpu_s"] / n * 1e6,
        **redis_delta(before, after, n),
    }


def run_aenqueue(ctx: Context, driver: Driver, rep: int) -> Record:
    """Awaited one-job enqueues from BENCH_AENQUEUE_COROUTINES coroutines of one process."""
    coroutines = ctx.config.aenqueue_coroutines
    n = max(coroutines, int(ctx.config.aenqueue_n * driver.aenqueue_scale))
    ctx.server.reset()
    before = ctx.server.snapshot()
    result = agent(
        ctx, driver.name, "aenqueue", "--kind", "anoop", "--n", str(n),
        "--coroutines", str(coroutines),
    )
    after = ctx.server.snapshot()
    return {
        "label": f"{driver.name}-aenqueue",
        "row": driver.title,
        "n": n,
        "coroutines": coroutines,
        "rate": result["rate"],
        "producer_cpu_us_per_job": result["cpu_s"] / n * 1e6,
        **redis_delta(before, after, n),
    }


def start_reporting(
    ctx: Context, driver: Driver, variant: Variant, collector: Collector
) -> WorkerHandle:
    """Start the workers of ``variant``, their jobs reporting to ``collector``."""
    return driver.start_workers(
        variant,
        venv_for(driver.name).bindir,
        {**ctx.env(), "BENCH_BEACON": str(collector.path)},
        ctx.log_dir,
    )


# a unit whose jobs stopped finishing for this long is given up (see wait_alive)
STALL_S = 30.0


def wait_alive(
    ctx: Context, collector: Collector, target: int, deadline: float, handle: WorkerHandle
) -> float | None:
    """``collector.wait_for`` that gives up at once when a worker process has exited, and
    when jobs stopped arriving for STALL_S after the first one (a job lost or stuck in the
    queue: SAQ once left 1 of 1,500 undone and the unit waited out its 180 s)."""
    seen, seen_at = collector.count, time.perf_counter()
    while True:
        now = time.perf_counter()
        remaining = deadline - now
        if remaining <= 0:
            return None
        reached = collector.wait_for(target, min(1.0, remaining))
        if reached is not None:
            return reached
        if collector.count != seen:
            seen, seen_at = collector.count, time.perf_counter()
        elif seen and time.perf_counter() - seen_at > STALL_S:
            raise UnitError(
                f"{handle.variant.label}: stalled at {seen}/{target} jobs: none finished in "
                f"the last {STALL_S:.0f} s"
            )
        exited = [proc.returncode for proc in handle.procs if proc.poll() is not None]
        if exited:
            logs = ctx.log_dir.relative_to(REPO_ROOT)
            raise UnitError(
                f"{handle.variant.label}: a worker exited (code {exited[0]}) after "
                f"{collector.count}/{target} jobs; see {logs}/{handle.variant.label}-*.log"
            )


def timed_enqueue(
    ctx: Context, driver: Driver, kind: str, n: int, mode: str = "single"
) -> tuple[Record, Snapshot]:
    """On an emptied server, enqueue ``n`` jobs of ``kind`` one call at a time (``mode``
    "bulk": through the batch API, in chunks of BENCH_BULK_CHUNK) from one producer thread;
    the producer's figures and the server's snapshot after it."""
    ctx.server.reset()
    before = ctx.server.snapshot()
    chunk = ("--chunk", str(ctx.config.bulk_chunk)) if mode == "bulk" else ()
    enq = agent(ctx, driver.name, "enqueue", "--kind", kind, "--n", str(n), "--mode", mode, *chunk)
    after = ctx.server.snapshot()
    return {
        "rate": enq["rate"],
        "producer_cpu_us_per_job": enq["cpu_s"] / n * 1e6,
        **redis_delta(before, after, n),
    }, after


def run_drain(
    ctx: Context, driver: Driver, variant: Variant, kind: str, n: int, mode: str = "single"
) -> Record:
    """Pre-enqueue ``n`` jobs one call at a time (``mode`` "bulk": through the batch API, in
    chunks of BENCH_BULK_CHUNK, where only the drain is wanted), then start the workers cold
    and time the drain."""
    enqueue, s1 = timed_enqueue(ctx, driver, kind, n, mode)
    record: Record = {
        "label": variant.label,
        "row": variant.row,
        "role": variant.role,
        "kind": kind,
        "n": n,
        "enqueue": enqueue,
    }
    with Collector(ctx.sockets_dir) as collector:
        collector.watch(n)
        handle = start_reporting(ctx, driver, variant, collector)
        leaders = [proc.pid for proc in handle.procs]
        deadline = time.perf_counter() + ctx.config.unit_timeout_s
        cpu_first = cpu_done = None
        try:
            if wait_alive(ctx, collector, 1, deadline, handle) is not None:
                cpu_first = sum(procs.group_cpu_s(pgid) for pgid in leaders)
            done_at = wait_alive(ctx, collector, n, deadline, handle)
            if done_at is not None:
                cpu_done = sum(procs.group_cpu_s(pgid) for pgid in leaders)
            first_at = collector.first_at
            count = collector.count
        finally:
            stop_started = time.perf_counter()
            stopped = driver.stop(handle)
            stop_s = time.perf_counter() - stop_started
    s2 = ctx.server.snapshot()
    if done_at is None or first_at is None:
        raise UnitError(
            f"{variant.label}: {count}/{n} jobs done after {ctx.config.unit_timeout_s:.0f} s "
            f"(worker logs: {ctx.log_dir.relative_to(REPO_ROOT)}/{variant.label}-*.log)"
        )
    elapsed = done_at - handle.started_at
    record["drain"] = {
        "rate": n / elapsed,
        "rate_first_to_last": (n - 1) / (done_at - first_at) if done_at > first_at else None,
        "startup_s": first_at - handle.started_at,
        "elapsed_s": elapsed,
        # steady-state cost: CPU between the first and the last job, so start-up imports are out
        "worker_cpu_us_per_job": (
            (cpu_done - cpu_first) / (n - 1) * 1e6
            if cpu_first is not None and cpu_done is not None
            else None
        ),
        # everything from spawn to exit (imports, start-up, shutdown), from wait4
        "worker_cpu_total_s": stopped.cpu_s,
        "graceful_stop": stopped.graceful,
        "stop_s": stop_s,
        **redis_delta(s1, s2, n),
    }
    return record


def run_latency(ctx: Context, driver: Driver, variant: Variant) -> Record:
    """An idle worker, one warm-up job, 1 s of quiet, then probes on a fixed grid."""
    n, gap = ctx.config.latency_n, ctx.config.latency_gap_ms
    ctx.server.reset()
    with Collector(ctx.sockets_dir, keep_values=True) as collector:
        handle = start_reporting(ctx, driver, variant, collector)

        def produce(count: int, gap_ms: float) -> dict[str, Any]:
            return agent(ctx, driver.name, "latency", "--n", str(count), "--gap-ms", str(gap_ms))

        def wait(target: int, timeout_s: float) -> float | None:
            deadline = time.perf_counter() + min(timeout_s, ctx.config.unit_timeout_s)
            return wait_alive(ctx, collector, target, deadline, handle)

        try:
            values_ms, produced = pairs.probe_latency(
                produce, wait, collector, n, gap, ctx.config.unit_timeout_s
            )
        except pairs.RoundError as exc:
            raise UnitError(f"{variant.label}: {exc}") from None
        finally:
            # nothing is counted after the probes, so there is no warm shutdown to wait for
            driver.stop(handle, grace_s=0.0)
    return {
        "label": variant.label,
        "row": variant.row,
        "role": variant.role,
        "n": n,
        "p50_ms": percentile(values_ms, 50),
        "p90_ms": percentile(values_ms, 90),
        "p99_ms": percentile(values_ms, 99),
        "max_ms": max(values_ms),
        "producer_worst_lag_ms": produced["worst_lag_ms"],
        # in arrival order, for looking at the shape (bimodal? a slow start?) behind a percentile
        "values_ms": [round(v, 3) for v in values_ms],
    }


MIXED_LONG, MIXED_LONG_S, MIXED_SHORT = 10, 1.0, 1000


def run_mixed(ctx: Context, driver: Driver, variant: Variant) -> Record:
    """Issue 15's mixed load: 10 jobs of 1 s, then 1,000 no-op jobs, two workers started
    cold; the figure is when the last no-op job ended, from the workers' start."""
    n = MIXED_LONG + MIXED_SHORT
    ctx.server.reset()
    agent(ctx, driver.name, "mixed", "--long", str(MIXED_LONG), "--long-s", str(MIXED_LONG_S),
          "--short", str(MIXED_SHORT))
    with Collector(ctx.sockets_dir, keep_values=True) as collector:
        collector.watch(n)
        started_wall = time.time()
        handle = start_reporting(ctx, driver, variant, collector)
        try:
            deadline = time.perf_counter() + ctx.config.unit_timeout_s
            if wait_alive(ctx, collector, n, deadline, handle) is None:
                raise UnitError(f"{variant.label}: {collector.count}/{n} jobs ran in time")
            ends = [v for v in collector.values if v > 0]
        finally:
            driver.stop(handle, grace_s=0.0)
    return {
        "label": variant.label,
        "row": variant.row,
        "role": variant.role,
        "n": n,
        "short_done_s": max(ends) - started_wall,
    }


# issue 18's pages, and the overview's htmx poll and the problems panel beside them
DASHBOARD_PAGES = r"^overview|^problems panel|^errors|^job page with logs|^job logs"


def run_dashboard(ctx: Context) -> Record:
    """bench/dashboard_bench.py on the harness's server: fill, then time the pages in-process."""
    cfg = ctx.config
    ctx.server.reset()
    out = ctx.log_dir / "dashboard.json"
    out.unlink(missing_ok=True)
    argv = [
        str(VENVS["project"].python), "bench/dashboard_bench.py", "--redis-url", ctx.server.url,
        "--pending", str(cfg.dashboard_pending), "--failed", str(cfg.dashboard_failed),
        "--repeat", str(cfg.dashboard_repeat), "--pages", DASHBOARD_PAGES, "--json", str(out),
    ]
    try:
        # filling a million jobs takes most of it: a longer limit than a unit's
        done = procs.run(argv, ctx.env(), REPO_ROOT, max(600.0, ctx.config.unit_timeout_s))
    except subprocess.TimeoutExpired:
        raise UnitError("dashboard_bench.py timed out") from None
    finally:
        ctx.server.reset()
        ctx.server.r.slowlog_reset()
        ctx.server.r.config_set("slowlog-max-len", 128)
    (ctx.log_dir / "dashboard.log").write_text(done.stdout + done.stderr)
    # exit 1 with results: a page sent an unbounded command (the JSON says which)
    if done.returncode not in (0, 1) or not out.exists():
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-4:])
        raise UnitError(f"dashboard_bench.py exited {done.returncode}: {tail}")
    data: dict[str, Any] = json.loads(out.read_text())
    return {"label": "jobq-dashboard", "row": "jobq dashboard", "all_bounded": done.returncode == 0,
            **data}


CRASH_KILLS = 10


def run_crash(ctx: Context, driver: Driver, variant: Variant) -> Record:
    """Issue 15's crashed child: kill the child running a job, time until a new child began
    the job queued behind it (CRASH_KILLS rounds in one worker run)."""
    ctx.server.reset()
    with Collector(ctx.sockets_dir, keep_values=True) as collector:
        handle = start_reporting(ctx, driver, variant, collector)
        try:
            killed = agent(ctx, driver.name, "crash", "--kills", str(CRASH_KILLS))["killed_at"]
            deadline = time.perf_counter() + 10.0
            if wait_alive(ctx, collector, CRASH_KILLS, deadline, handle) is None:
                raise UnitError(f"{variant.label}: {collector.count}/{CRASH_KILLS} probes ran")
            began = list(collector.values)
        finally:
            driver.stop(handle, grace_s=0.0)
    values_ms = [(b - k) * 1000.0 for k, b in zip(killed, began, strict=True)]
    return {
        "label": variant.label,
        "row": variant.row,
        "role": variant.role,
        "n": CRASH_KILLS,
        "p50_ms": percentile(values_ms, 50),
        "max_ms": max(values_ms),
        "values_ms": [round(v, 3) for v in values_ms],
    }


def run_memory(ctx: Context, driver: Driver, n: int, allowed_s: float) -> Record:
    """Bytes of Redis memory per pending job, filled by parallel producers (speed is irrelevant).

    The producers stop after ``allowed_s`` seconds even if they have not reached ``n`` jobs,
    and the figure is divided by the jobs actually enqueued: a slow library on a busy machine
    gets a smaller sample instead of pushing the run past its time budget.
    """
    producers = ctx.config.mem_producers
    ctx.server.reset()
    before = ctx.server.snapshot()
    shares = [n // producers + (1 if i < n % producers else 0) for i in range(producers)]

    def fill(count: int) -> dict[str, Any]:
        return agent(
            ctx,
            driver.name,
            "enqueue",
            "--kind",
            "noop",
            "--n",
            str(count),
            "--mode",
            driver.memory_fill,
            "--chunk",
            str(ctx.config.bulk_chunk),
            "--deadline-s",
            f"{allowed_s:.1f}",
            timeout_s=allowed_s + 120.0,
        )

    with ThreadPoolExecutor(max_workers=producers) as pool:
        done = sum(result["n"] for result in pool.map(fill, [c for c in shares if c]))
    after = ctx.server.snapshot()
    return {
        "label": f"{driver.name}-memory",
        "row": driver.title,
        "n": done,
        "n_target": n,
        "fill": driver.memory_fill,
        "bytes_per_job": (after.used_memory - before.used_memory) / done,
        "keys_per_job": (after.keys - before.keys) / done,
    }


def run_redis_benchmark(ctx: Context, tool: Path, pipeline: int) -> Record:
    argv = [
        str(tool),
        "-h",
        "127.0.0.1",
        "-p",
        str(ctx.server.port),
        "-q",
        "--csv",
        "-n",
        str(ctx.config.redis_benchmark_n),
        "-c",
        "50",
        "-P",
        str(pipeline),
        "-t",
        "get,lpush",
    ]
    ctx.server.reset()
    try:
        done = procs.run(argv, ctx.env(), REPO_ROOT, ctx.config.unit_timeout_s)
    except subprocess.TimeoutExpired:
        raise UnitError(f"{tool.name} -P {pipeline} timed out") from None
    if done.returncode != 0:
        raise UnitError(f"{tool.name} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    rates: dict[str, float] = {}
    for line in done.stdout.splitlines():
        cells = [cell.strip('"') for cell in line.split(",")]
        if len(cells) >= 2 and cells[0] in ("GET", "LPUSH"):
            rates[cells[0]] = float(cells[1])
    if not rates:
        raise UnitError(f"{tool.name} printed no GET/LPUSH rates: {done.stdout[-300:]}")
    ctx.server.reset()
    return {
        "label": f"{tool.name} -P {pipeline}",
        "tool": tool.name,
        "pipeline": pipeline,
        "clients": 50,
        "requests_per_s": rates,
    }


# Interleaved pairs (bench/pairs.py), once per run after the repetitions: scenario -> its
# comparisons, each the (system, variant label) of its two sides, the goal's subject first.
# Each side runs the very unit, variant and worker command line of its row in the tables.
Side = tuple[str, str]
PAIRED: dict[str, tuple[tuple[Side, Side], ...]] = {
    # issue 15's two ratios
    "drain-pairs": ((("jobq", "jobq-default-1p"), ("jobq", "jobq-thread-1p")),),
    "latency-pairs": ((("jobq", "jobq-default-lat"), ("huey", "huey-thread-1-lat")),),
    # issue 18's log capture cost: each capture-on row of the report's section 3f against its
    # `--no-capture-logs` twin (bench/drivers/jobq.py CAPTURE_OFF_ROWS), capture on first
    "capture-pairs": (
        (("jobq", "jobq-thread-1p"), ("jobq", "jobq-thread-1p-nocap")),
        (("jobq", "jobq-default-1p"), ("jobq", "jobq-default-1p-nocap")),
    ),
}
# the paired scenarios whose sides are no-op drains of BENCH_PAIR_N jobs (the rest: latency)
DRAIN_PAIRED = ("drain-pairs", "capture-pairs")


# issue 15's one-thread enqueue as interleaved pairs: each side one producer thread's single
# enqueues of BENCH_PAIR_N no-op jobs (the drains' enqueue phase, longer), subject first
ENQUEUE_PAIR = ("jobq", "huey")


def run_enqueue_pair(ctx: Context, drivers: list[Driver], reverse: bool) -> Record:
    """One `enqueue-pairs` pair: each system's one-thread single enqueues right after the
    other's, in ENQUEUE_PAIR's order or (``reverse``) the other way round."""
    order = drivers[::-1] if reverse else drivers
    results: dict[str, Record] = {}
    for driver in order:
        results[f"{driver.name}-enqueue"], _ = timed_enqueue(ctx, driver, "noop", ctx.config.pair_n)
    return {
        "label": " vs ".join(f"{driver.name}-enqueue" for driver in drivers),
        "row": drivers[0].title,
        "n": ctx.config.pair_n,
        "order": [f"{driver.name}-enqueue" for driver in order],
        "sides": results,
    }


def run_enqueue_pairs(ctx: Context) -> None:
    """BENCH_ENQUEUE_PAIRS rounds of the `enqueue-pairs` pair, jobq first in even rounds."""
    missing = [name for name in ENQUEUE_PAIR if name not in ctx.drivers]
    if missing:
        note = f"enqueue-pairs not run: {', '.join(missing)} not measured in this run."
        ctx.meta["notes"].append(note)
        log(note)
        return
    drivers = [ctx.drivers[name] for name in ENQUEUE_PAIR]
    label = " vs ".join(f"{name}-enqueue" for name in ENQUEUE_PAIR)
    for index, _ in pairs.pair_order(drivers, ctx.config.enqueue_pairs):
        body = partial(run_enqueue_pair, ctx, drivers, index % 2 == 1)
        unit(ctx, "enqueue-pairs", ENQUEUE_PAIR[0], index, label, body)


def pair_name(sides: list[tuple[Driver, Variant]]) -> str:
    """A comparison's label: its sides' variant labels in PAIRED's order, subject first."""
    return " vs ".join(variant.label for _, variant in sides)


def run_pair(
    ctx: Context, scenario: str, sides: list[tuple[Driver, Variant]], reverse: bool
) -> Record:
    """One pair of a PAIRED scenario: each side's unit right after the other, in PAIRED's
    order or (``reverse``) the other way round; a drain side runs BENCH_PAIR_N no-op jobs
    (enqueued through the batch API: only the drain is timed), a latency side the
    `latency` unit as it is."""
    order = sides[::-1] if reverse else sides
    results: dict[str, Record] = {}
    for driver, variant in order:
        if scenario in DRAIN_PAIRED:
            drain = run_drain(ctx, driver, variant, "noop", ctx.config.pair_n, mode="bulk")
            results[variant.label] = {
                key: drain["drain"][key]
                for key in ("rate_first_to_last", "worker_cpu_us_per_job", "startup_s")
            }
        else:
            lat = run_latency(ctx, driver, variant)
            results[variant.label] = {k: lat[k] for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")}
    return {
        "label": pair_name(sides),
        "row": sides[0][1].row,
        "n": ctx.config.pair_n if scenario in DRAIN_PAIRED else ctx.config.latency_n,
        "order": [variant.label for _, variant in order],
        "sides": results,
    }


def paired_sides(
    ctx: Context, scenario: str
) -> tuple[list[list[tuple[Driver, Variant]]], str | None]:
    """The drivers and variants of each comparison of ``scenario``, and a note saying why
    none when a side's system is not measured in this run or its variant does not exist in
    this checkout (`--no-capture-logs` before issue 18's engine)."""
    comparisons = PAIRED[scenario]
    missing = sorted({system for pair in comparisons for system, _ in pair
                      if system not in ctx.drivers})
    if missing:
        return [], f"{scenario} not run: {', '.join(missing)} not measured in this run."
    variants = {(system, v.label): v for system in {s for pair in comparisons for s, _ in pair}
                for v in ctx.drivers[system].variants()}
    absent = [label for pair in comparisons for system, label in pair
              if (system, label) not in variants]
    if absent:
        return [], f"{scenario} not run: no variant {', '.join(absent)} in this checkout."
    return [[(ctx.drivers[side[0]], variants[side]) for side in pair]
            for pair in comparisons], None


def run_pairs(ctx: Context) -> None:
    """Every selected PAIRED scenario: BENCH_PAIRS rounds of one pair per comparison, A B
    in even rounds and B A (the comparisons in reverse order too) in odd ones, one unit each;
    then `enqueue-pairs`."""
    for scenario in PAIRED:
        if scenario not in ctx.config.scenarios:
            continue
        comparisons, note = paired_sides(ctx, scenario)
        if note is not None:
            ctx.meta["notes"].append(note)
            log(note)
            continue
        for index, in_order in pairs.pair_order(comparisons, ctx.config.pairs):
            for sides in in_order:
                body = partial(run_pair, ctx, scenario, sides, index % 2 == 1)
                unit(ctx, scenario, sides[0][0].name, index, pair_name(sides), body)
    if "enqueue-pairs" in ctx.config.scenarios:
        run_enqueue_pairs(ctx)


# the run


def unit(
    ctx: Context, scenario: str, system: str, rep: int, label: str, body: Callable[[], Record]
) -> None:
    """Run one measurement, record its result or its error, and log how long it took."""
    started = time.monotonic()
    base: Record = {"scenario": scenario, "system": system, "rep": rep, "label": label}
    try:
        record = {**base, **body()}
    except (UnitError, OSError, ValueError, KeyError) as exc:
        record = {**base, "error": str(exc)}
        log(f"  ! {scenario} {label} rep {rep + 1}: {exc}")
    record["wall_s"] = round(time.monotonic() - started, 2)
    ctx.records.append(record)
    log(
        f"{scenario:8} {label:28} rep {rep + 1}  {report.one_line(record)}"
        f"  ({record['wall_s']:.1f} s)"
    )
    save(ctx)


def floor_py(ctx: Context, system: str) -> Record:
    return {"kind": "redis-py", **agent(ctx, system, "floor", "--n", str(ctx.config.floor_n))}


def floor_tool(ctx: Context, tool: Path, pipeline: int) -> Record:
    return {"kind": "benchmark", **run_redis_benchmark(ctx, tool, pipeline)}


def run_floor(ctx: Context, rep: int, tool: Path | None) -> None:
    """The redis-py round-trip loop from each venv in use, then the benchmark tool."""
    venv_systems: dict[str, str] = {}
    for system in ctx.drivers:
        venv_systems.setdefault(venv_for(system).key, system)
    for key, system in venv_systems.items():
        label = f"redis-py ({VENVS[key].path.name})"
        unit(ctx, "floor", "-", rep, label, partial(floor_py, ctx, system))
    if tool is not None:
        for pipeline in (1, 16):
            label = f"{tool.name} -P {pipeline}"
            unit(ctx, "floor", "-", rep, label, partial(floor_tool, ctx, tool, pipeline))


def rotated(items: list[str], by: int) -> list[str]:
    if not items:
        return items
    shift = by % len(items)
    return items[shift:] + items[:shift]


def run_repetition(ctx: Context, rep: int, tool: Path | None) -> None:
    """Every timed scenario once, systems interleaved, starting from a rotated system."""
    cfg = ctx.config
    order = rotated(list(ctx.drivers), rep)
    log(f"repetition {rep + 1}/{cfg.repeat}, order: {', '.join(order)}")
    if "floor" in cfg.scenarios:
        run_floor(ctx, rep, tool)
    full = [name for name in order if not ctx.drivers[name].async_only]
    if "bulk" in cfg.scenarios:
        for name in full:
            body = partial(run_bulk, ctx, ctx.drivers[name], rep)
            unit(ctx, "bulk", name, rep, f"{name}-bulk", body)
    if "threads" in cfg.scenarios:
        for name in full:
            if not ctx.drivers[name].threaded_enqueue:
                continue
            body = partial(run_threads, ctx, ctx.drivers[name], rep)
            unit(ctx, "threads", name, rep, f"{name}-threads", body)
    for scenario in ("drain", "sleep", "latency", "mixed", "adrain", "asleep", "crash"):
        if scenario not in cfg.scenarios:
            continue
        for name in order:
            driver = ctx.drivers[name]
            # Every other repetition in reverse: a variant is not always run right after
            # the same one (a two-process drain's teardown slowed the next row's drain).
            variants = driver.variants()
            for v in variants[::-1] if rep % 2 else variants:
                if v.role not in SCENARIO_ROLES[scenario] or (v.extra and not cfg.extra_variants):
                    continue
                unit(ctx, scenario, name, rep, v.label, scenario_body(ctx, scenario, driver, v))
    if "aenqueue" in cfg.scenarios:
        for name in order:
            if ctx.drivers[name].async_api:
                body = partial(run_aenqueue, ctx, ctx.drivers[name], rep)
                unit(ctx, "aenqueue", name, rep, f"{name}-aenqueue", body)


def scenario_body(
    ctx: Context, scenario: str, driver: Driver, v: Variant
) -> Callable[[], Record]:
    """The unit that measures variant ``v`` in a worker scenario."""
    cfg = ctx.config
    if scenario == "latency":
        return partial(run_latency, ctx, driver, v)
    if scenario == "mixed":
        return partial(run_mixed, ctx, driver, v)
    if scenario == "crash":
        return partial(run_crash, ctx, driver, v)
    n = {"drain": cfg.n, "sleep": cfg.sleep_n, "adrain": cfg.n, "asleep": cfg.asleep_n}[scenario]
    return partial(run_drain, ctx, driver, v, DRAIN_KINDS[scenario], scaled(n, v))


def run_all(ctx: Context, started: float) -> None:
    """The repetitions while the budget allows, then the memory figure in the time left."""
    cfg = ctx.config
    tool = find_benchmark_tool()
    if "floor" in cfg.scenarios and tool is None:
        ctx.meta["notes"].append(
            "redis-benchmark / valkey-benchmark not found on PATH: the benchmark-tool floor was "
            "skipped (Debian: `apt-get install redis-tools`)."
        )
    rep_s = time.monotonic()
    run_repetition(ctx, 0, tool)
    rep_s = time.monotonic() - rep_s
    reserve_s = cfg.mem_reserve_s if "memory" in cfg.scenarios else 0.0
    if "dashboard" in cfg.scenarios and "jobq" in ctx.drivers:
        reserve_s += cfg.dashboard_reserve_s
    if any(scenario in cfg.scenarios for scenario in (*PAIRED, "enqueue-pairs")):
        reserve_s += cfg.pairs_reserve_s
    for rep in range(1, cfg.repeat):
        elapsed = time.monotonic() - started
        if elapsed + rep_s * 1.1 + reserve_s > cfg.budget_s:
            note = (
                f"Only {rep} of {cfg.repeat} repetitions fit in the {cfg.budget_s / 60:.0f}-minute "
                f"budget (BENCH_BUDGET_S): one took {rep_s:.0f} s and {elapsed:.0f} s had passed. "
                "The machine was probably busy; rerun when it is quieter, or lower BENCH_N."
            )
            ctx.meta["notes"].append(note)
            log(note)
            break
        run_repetition(ctx, rep, tool)
    run_pairs(ctx)
    if "dashboard" in cfg.scenarios and "jobq" in ctx.drivers:
        unit(ctx, "dashboard", "jobq", 0, "jobq-dashboard", partial(run_dashboard, ctx))
    if "memory" in cfg.scenarios:
        run_memory_all(ctx, started)


def run_memory_all(ctx: Context, started: float) -> None:
    """The memory figure for every system, sharing out the time left in the budget.

    Memory is not a timing and does not vary between runs, so it comes after the timed
    repetitions and gets what is left (at least BENCH_MEM_RESERVE_S in all): each system may use
    an equal share of it, and one that cannot enqueue BENCH_MEM_N jobs in its share is measured
    on the jobs it did enqueue, with a note.
    """
    cfg = ctx.config
    names = [name for name, driver in ctx.drivers.items() if not driver.async_only]
    for rep in range(cfg.mem_repeat):
        for index, name in enumerate(rotated(names, rep)):
            left_s = cfg.budget_s - (time.monotonic() - started)
            units_left = (cfg.mem_repeat - rep) * len(names) - index
            # each fill also pays producer start-up and the server snapshot: keep 5 s for that
            allowed_s = max(cfg.mem_min_s, left_s / units_left - 5.0)
            body = partial(run_memory, ctx, ctx.drivers[name], cfg.mem_n, allowed_s)
            unit(ctx, "memory", name, rep, f"{name}-memory", body)
            record = ctx.records[-1]
            if "error" not in record and record["n"] < cfg.mem_n:
                note = (
                    f"{ctx.drivers[name].title}'s memory figure is from {record['n']:,} pending "
                    f"jobs, not {cfg.mem_n:,}: its producers stopped after their {allowed_s:.0f} s "
                    "share of the time budget."
                )
                ctx.meta["notes"].append(note)
                log(note)


def save(ctx: Context) -> None:
    """Write the raw JSON now, so an interrupted run still leaves its data."""
    path = ctx.config.results_path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"meta": ctx.meta, "records": ctx.records}, indent=1, default=str))
    tmp.replace(path)


def git_commit() -> dict[str, Any]:
    """The commit being measured, taken at the start (a commit made during the run must not
    be credited with its figures), and whether the tree had uncommitted changes (the doc and
    the results this run rewrites aside)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                    ":!docs/benchmarks.md", ":!bench/results")
        return {"hash": git("rev-parse", "HEAD"), "dirty": bool(dirty)}
    except (OSError, subprocess.CalledProcessError):
        return {"hash": "unknown (no git)", "dirty": False}


def host_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def collect_versions(ctx: Context) -> dict[str, dict[str, Any]]:
    versions: dict[str, dict[str, Any]] = {}
    for name in list(ctx.drivers):
        try:
            versions[name] = agent(ctx, name, "versions", timeout_s=60)
        except UnitError as exc:
            ctx.skipped[name] = f"does not start in its venv: {exc}"
            del ctx.drivers[name]
    return versions


def load_cluster(path: Path = CLUSTER_JSON) -> dict[str, Any] | None:
    """The cluster rows bench/run.sh wrote before this run (bench/cluster_bench.py), or
    None when there are none."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    config = BenchConfig.from_env()
    signal.signal(signal.SIGTERM, _terminate)
    install: dict[str, str | None] = {}
    if INSTALL_STATUS.exists():
        install = json.loads(INSTALL_STATUS.read_text())
    skipped = {name: str(install.get(name)) for name in config.systems if install.get(name)}
    drivers = {name: DRIVERS[name]("") for name in config.systems if name not in skipped}
    started = time.monotonic()
    started_at = datetime.now(UTC)
    log_dir = RAW_DIR / "logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    sockets_dir = Path(tempfile.mkdtemp(prefix="jobq-bench-"))
    server = RedisServer.create(sockets_dir)
    try:
        server.start()
        for driver in drivers.values():
            driver.url = server.url
        ctx = Context(
            config=config,
            server=server,
            sockets_dir=sockets_dir,
            log_dir=log_dir,
            drivers=drivers,
            skipped=skipped,
        )
        ctx.meta = {
            "started_at": started_at.isoformat(timespec="seconds"),
            "commit": git_commit(),
            "host": host_info(),
            "loadavg_start": os.getloadavg(),
            "server": server.version(),
            "server_binary": str(server.binary),
            "benchmark_tool": str(find_benchmark_tool() or ""),
            "config": config.to_json(),
            "skipped": skipped,
            "notes": [],
            # bench/cluster_bench.py's rows, run by bench/run.sh just before (none: it failed)
            "cluster": load_cluster(),
        }
        log(f"Redis: {ctx.meta['server']} on port {server.port} ({server.binary})")
        if "jobq" in drivers and extra_worker_args():
            ctx.meta["notes"].append(
                f"jobq workers ran with extra options from {EXTRA_ARGS_ENV}: "
                f"`{' '.join(extra_worker_args())}`."
            )
        ctx.meta["versions"] = collect_versions(ctx)
        ctx.meta["variants"] = {
            name: [v.__dict__ | {"options": dict(v.options)} for v in driver.variants()]
            for name, driver in ctx.drivers.items()
        }
        ctx.meta["config_notes"] = {
            name: {"title": cls.title, "note": cls.config_note, "bulk_api": cls.bulk_api}
            for name, cls in DRIVERS.items()
        }
        try:
            run_all(ctx, started)
        except KeyboardInterrupt:
            ctx.meta["notes"].append("The run was interrupted; the tables hold what finished.")
            log("interrupted: writing what finished")
        ctx.meta["loadavg_end"] = os.getloadavg()
        ctx.meta["duration_s"] = round(time.monotonic() - started, 1)
        ctx.meta["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        save(ctx)
        config.docs_path.parent.mkdir(parents=True, exist_ok=True)
        config.docs_path.write_text(
            report.render(json.loads(config.results_path.read_text()),
                          report.digest(config.results_path))
        )
        log(f"done in {ctx.meta['duration_s']:.0f} s: {config.results_path}, {config.docs_path}")
    finally:
        server.stop()
        procs.kill_all_groups()
        shutil.rmtree(sockets_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
