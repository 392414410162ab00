"""Before/after: the same dashboard pages timed for two checkouts of jobq on the same data,
interleaved, so both see the same machine load (the 2-core test VM is shared and its load
moves a lot from minute to minute; two separate benchmark runs are not comparable).

    git archive <old commit> | tar -x -C /tmp/jobq-before
    .venv/bin/python bench/dashboard_compare.py --before /tmp/jobq-before \\
        --redis-url unix:///tmp/bench/redis.sock            # data filled by dashboard_bench.py

One process per checkout imports that checkout's `dashboard` and `jobq_core` and times pages
through the Flask test client on request (server time, in-process). The driver asks both,
page by page, in alternating order, `--rounds` times, and reports p50/p95 over all rounds.
The server must already hold the data (run dashboard_bench.py with --redis-url first).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dashboard_bench import bench_pages  # noqa: E402

# Runs in each child: read {"url", "headers", "repeat"} lines, answer with the timings (ms)
# and how many entries a filtered page says it looked at.
CHILD = r"""
import json, re, sys, time
sys.path.insert(0, sys.argv[1])
from dashboard import create_app
from jobq_core import Settings
import dashboard
print(dashboard.__file__, flush=True)  # the driver checks it is the checkout it asked for
web = create_app(Settings(redis_url=sys.argv[2], prefix="bench",
                          dashboard_secret_key="bench")).test_client()
for line in sys.stdin:
    req = json.loads(line)
    ms = []
    for i in range(req["repeat"] + 2):
        t0 = time.perf_counter()
        resp = web.get(req["url"], headers=req["headers"])
        took = (time.perf_counter() - t0) * 1000
        body = resp.get_data(as_text=True)
        if resp.status_code != 200:
            break  # e.g. a page this checkout does not have
        if i >= 2:  # two warm-ups
            ms.append(took)
    m = re.search(r"in ([\d,]+) entries looked at", body)
    print(json.dumps({"ms": ms, "scanned": m.group(1) if m else "",
                      "status": resp.status_code}), flush=True)
"""


class Side:
    def __init__(self, name: str, checkout: Path, redis_url: str) -> None:
        self.name = name
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, str(checkout), redis_url],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=checkout, env={**os.environ, "PYTHONPATH": ""})
        assert self.proc.stdout is not None
        loaded = self.proc.stdout.readline().strip()
        if not loaded.startswith(str(checkout) + "/"):
            raise SystemExit(f"{name} side imported {loaded or 'nothing'}, not {checkout}")
        self.ms: dict[str, list[float]] = {}
        self.scanned: dict[str, str] = {}

    def time(self, page: str, spec: Any, repeat: int) -> None:
        url, headers = spec if isinstance(spec, tuple) else (spec, {})
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"url": url, "headers": headers,
                                          "repeat": repeat}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{self.name} side died timing {page}")
        answer = json.loads(line)
        if answer["status"] not in (200, 404):
            raise SystemExit(f"{self.name}: {url}: HTTP {answer['status']}")
        self.ms.setdefault(page, []).extend(answer["ms"])
        self.scanned[page] = answer["scanned"]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=True, type=Path, help="the other checkout")
    ap.add_argument("--after", default=ROOT, type=Path, help="default: this checkout")
    ap.add_argument("--redis-url", default=os.environ.get("JOBQ_BENCH_REDIS_URL", ""))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=8, help="timed requests per page per round")
    ap.add_argument("--pages", default="", help="only pages whose name matches REGEX")
    args = ap.parse_args()
    if not args.redis_url:
        raise SystemExit("--redis-url (or JOBQ_BENCH_REDIS_URL) is required")

    import redis

    client = redis.Redis.from_url(args.redis_url, decode_responses=True)
    pending = int(client.zcard("bench:{bulk}:pending"))
    failed = int(client.zcard("bench:{bulkfail}:failed"))
    if not pending or not failed:
        raise SystemExit("no bench data on that server: run dashboard_bench.py --redis-url first")
    some_failed = client.zrange("bench:{bulkfail}:failed", 0, 0)[0]
    pages = {**bench_pages(pending, failed, some_failed), "schedules": "/schedules"}
    if args.pages:
        pages = {k: v for k, v in pages.items() if re.search(args.pages, k)}
    before = Side("before", args.before.resolve(), args.redis_url)
    after = Side("after", args.after.resolve(), args.redis_url)
    try:
        for rnd in range(args.rounds):
            for i, (page, spec) in enumerate(pages.items()):
                first, second = (before, after) if (rnd + i) % 2 == 0 else (after, before)
                first.time(page, spec, args.repeat)
                second.time(page, spec, args.repeat)
            print(f"round {rnd + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    finally:
        before.close()
        after.close()
    load = os.getloadavg()
    print(f"{pending:,} pending in `bulk`, {failed:,} failed in `bulkfail`; {args.rounds} "
          f"rounds x {args.repeat} timed requests per page and side, sides alternating; "
          f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}.")
    print()
    print("| page | before p50 | after p50 | before p95 | after p95 | entries looked at "
          "(before / after) |")
    print("|---|---:|---:|---:|---:|---|")
    for page in pages:
        b, a = before.ms[page], after.ms[page]
        seen = (f"{before.scanned[page]} / {after.scanned[page]}"
                if before.scanned[page] or after.scanned[page] else "")
        print(f"| {page} | {_p50(b)} | {_p50(a)} | {_p95(b)} | {_p95(a)} | {seen} |")
    return 0


def _p50(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "(no page)"


def _p95(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.1f}" if values else "(no page)"
    return f"{statistics.quantiles(values, n=20)[18]:.1f}"


if __name__ == "__main__":
    raise SystemExit(main())
