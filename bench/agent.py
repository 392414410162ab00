"""Producer-side commands run inside one system's venv; the orchestrator calls them as subprocesses.

    python -m bench.agent SYSTEM enqueue --kind noop --n 10000 --mode single
    python -m bench.agent SYSTEM enqueue --kind noop --n 10000 --mode bulk --chunk 1000
    python -m bench.agent SYSTEM enqueue --kind noop --n 10000 --threads 16
    python -m bench.agent SYSTEM aenqueue --kind anoop --n 6400 --coroutines 64
    python -m bench.agent SYSTEM latency --n 500 --gap-ms 5
    python -m bench.agent jobq mixed --long 10 --long-s 1 --short 1000
    python -m bench.agent SYSTEM floor --n 20000
    python -m bench.agent SYSTEM versions

Each prints one JSON object on its last stdout line. The server URL comes from BENCH_REDIS_URL.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from importlib import metadata
from typing import Any

from bench.drivers import DRIVERS
from bench.drivers.base import KINDS, Driver, chunks


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cmd_enqueue(
    driver: Driver, kind: str, n: int, mode: str, chunk: int, deadline_s: float | None = None
) -> dict[str, Any]:
    """Time ``n`` enqueues after connecting; one call per job, or the batch API per chunk.

    With ``deadline_s`` it stops early once that many seconds have passed (checked every chunk)
    and reports how many jobs it did enqueue.
    """
    assert kind in KINDS
    driver.connect()
    cpu0, t0 = _cpu_s(), time.perf_counter()
    stop_at = t0 + deadline_s if deadline_s else float("inf")
    done = 0
    for size in chunks(n, chunk):
        if mode == "single":
            enqueue_one = driver.enqueue_one
            for _ in range(size):
                enqueue_one(kind)
        else:
            driver.enqueue_bulk(kind, size)
        done += size
        if time.perf_counter() >= stop_at:
            break
    elapsed = time.perf_counter() - t0
    cpu = _cpu_s() - cpu0
    driver.close()
    return {
        "n": done,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "rate": done / elapsed if elapsed else None,
    }


def cmd_enqueue_threads(driver: Driver, kind: str, n: int, threads: int) -> dict[str, Any]:
    """``threads`` threads of one process sharing one client, each enqueueing its share of
    ``n`` jobs one call at a time (a web app's request threads under gunicorn gthread)."""
    import threading

    assert kind in KINDS
    driver.connect()
    shares = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    start = threading.Barrier(threads + 1)

    def produce(count: int) -> None:
        enqueue_one = driver.enqueue_one
        start.wait()
        for _ in range(count):
            enqueue_one(kind)

    workers = [threading.Thread(target=produce, args=(c,)) for c in shares]
    for w in workers:
        w.start()
    cpu0 = _cpu_s()
    start.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    cpu = _cpu_s() - cpu0
    driver.close()
    return {
        "n": n,
        "threads": threads,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "rate": n / elapsed if elapsed else None,
    }


def cmd_aenqueue(driver: Driver, kind: str, n: int, coroutines: int) -> dict[str, Any]:
    """``coroutines`` coroutines on one event loop sharing one client, each awaiting its share
    of ``n`` one-job enqueues one after the other (an async web app's concurrent requests)."""
    import asyncio

    assert kind in KINDS
    shares = [n // coroutines + (1 if i < n % coroutines else 0) for i in range(coroutines)]

    async def produce(count: int) -> None:
        enqueue_one = driver.aenqueue_one
        for _ in range(count):
            await enqueue_one(kind)  # type: ignore[arg-type]

    async def main() -> tuple[float, float]:
        await driver.aconnect()
        cpu0, t0 = _cpu_s(), time.perf_counter()
        await asyncio.gather(*(produce(c) for c in shares))
        elapsed, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
        await driver.aclose()
        return elapsed, cpu

    elapsed, cpu = asyncio.run(main())
    return {
        "n": n,
        "coroutines": coroutines,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "rate": n / elapsed if elapsed else None,
    }


def cmd_latency(driver: Driver, n: int, gap_ms: float) -> dict[str, Any]:
    """Enqueue ``n`` latency probes on an absolute grid of ``gap_ms``, each stamped just before."""
    driver.connect()
    gap = gap_ms / 1000.0
    start = time.perf_counter()
    worst_lag = 0.0
    for index in range(n):
        due = start + index * gap
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        else:
            worst_lag = max(worst_lag, now - due)
        driver.enqueue_one("latency", time.time())
    elapsed = time.perf_counter() - start
    driver.close()
    # a producer that falls behind its grid offers less load than intended: reported, not hidden
    return {"n": n, "elapsed_s": elapsed, "worst_lag_ms": worst_lag * 1000.0}


def cmd_floor(url: str, n: int) -> dict[str, Any]:
    """Sequential redis-py round trips (GET of one small key) on one connection."""
    import redis

    client = redis.Redis.from_url(url)
    client.set("bench:floor", b"x")
    get = client.get
    for _ in range(200):  # warm the connection and the parser
        get("bench:floor")
    cpu0, t0 = _cpu_s(), time.perf_counter()
    for _ in range(n):
        get("bench:floor")
    elapsed = time.perf_counter() - t0
    cpu = _cpu_s() - cpu0
    client.delete("bench:floor")
    client.close()
    try:
        import hiredis  # noqa: F401

        parser = "hiredis"
    except ImportError:
        parser = "python"
    return {
        "n": n,
        "round_trips_per_s": n / elapsed,
        "us_per_round_trip": elapsed / n * 1e6,
        "client_cpu_us_per_round_trip": cpu / n * 1e6,
        "redis_py": redis.__version__,
        "parser": parser,
    }


def cmd_versions(driver_cls: type[Driver]) -> dict[str, Any]:
    versions: dict[str, str] = {"python": sys.version.split()[0]}
    for package in driver_cls.packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.agent")
    parser.add_argument("system", choices=sorted(DRIVERS))
    sub = parser.add_subparsers(dest="command", required=True)
    enqueue = sub.add_parser("enqueue")
    enqueue.add_argument("--kind", choices=KINDS, default="noop")
    enqueue.add_argument("--n", type=int, required=True)
    enqueue.add_argument("--mode", choices=("single", "bulk"), default="single")
    enqueue.add_argument("--chunk", type=int, default=1000)
    enqueue.add_argument("--deadline-s", type=float, default=None)
    enqueue.add_argument(
        "--threads",
        type=int,
        default=0,
        help="single enqueues from this many threads sharing one client",
    )
    aenqueue = sub.add_parser("aenqueue")
    aenqueue.add_argument("--kind", choices=KINDS, default="anoop")
    aenqueue.add_argument("--n", type=int, required=True)
    aenqueue.add_argument("--coroutines", type=int, default=64)
    latency = sub.add_parser("latency")
    latency.add_argument("--n", type=int, required=True)
    latency.add_argument("--gap-ms", type=float, default=5.0)
    mixed = sub.add_parser("mixed")
    mixed.add_argument("--long", type=int, default=10)
    mixed.add_argument("--long-s", type=float, default=1.0)
    mixed.add_argument("--short", type=int, default=1000)
    crash = sub.add_parser("crash", help="jobq only: kill the child running a job, N times")
    crash.add_argument("--kills", type=int, default=10)
    floor = sub.add_parser("floor")
    floor.add_argument("--n", type=int, required=True)
    sub.add_parser("versions")
    args = parser.parse_args(argv)

    url = os.environ["BENCH_REDIS_URL"]
    driver_cls = DRIVERS[args.system]
    result: dict[str, Any]
    if args.command == "crash":
        driver = driver_cls(url)
        driver.connect()
        result = {"killed_at": driver.crash_kills(args.kills)}  # type: ignore[attr-defined]
    elif args.command == "enqueue" and args.threads:
        result = cmd_enqueue_threads(driver_cls(url), args.kind, args.n, args.threads)
    elif args.command == "enqueue":
        result = cmd_enqueue(
            driver_cls(url), args.kind, args.n, args.mode, args.chunk, args.deadline_s
        )
    elif args.command == "aenqueue":
        result = cmd_aenqueue(driver_cls(url), args.kind, args.n, args.coroutines)
    elif args.command == "mixed":
        driver = driver_cls(url)
        driver.connect()
        driver.enqueue_mixed(args.long, args.long_s, args.short)  # type: ignore[attr-defined]
        driver.close()
        result = {"long": args.long, "long_s": args.long_s, "short": args.short}
    elif args.command == "latency":
        result = cmd_latency(driver_cls(url), args.n, args.gap_ms)
    elif args.command == "floor":
        result = cmd_floor(url, args.n)
    else:
        result = cmd_versions(driver_cls)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
