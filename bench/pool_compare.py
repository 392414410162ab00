"""The no-op drain of one worker process, configurations interleaved A B A B ... on one private
Redis, so that every configuration sees the same machine load (issue 15: the default process
pool against the thread pool; a change against the checkout before it).

    .venv/bin/python -m bench.pool_compare --pairs 5 \\
        --config 'thread=.:--pool thread --concurrency 1 --prefetch 64' \\
        --config 'default=.:' --config 'before=/tmp/old:'

Each --config is NAME=CHECKOUT:WORKER FLAGS: `jobq worker` runs from CHECKOUT (its code first
on PYTHONPATH, this venv's interpreter) with those flags (none: the defaults). A round enqueues
N no-op jobs (bench.apps.jobq_app.noop; --task anoop: the async one, for --pool async; batch
API), starts the worker cold and times first -> last job by the tasks' beacons, as
bench/run.py's drain does; it also reads the CPU the worker process and its children (the job
processes, the fork server) used between the first and the last job. Prints per round and, at
the end, medians (worker CPU: [min-max] too) and the ratio of each configuration to the
first (median of the per-round ratios, and their spread). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import pairs, procs
from bench.collector import Collector
from bench.config import REPO_ROOT
from bench.redis_server import RedisServer

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Config:
    name: str
    checkout: Path
    flags: list[str]
    rates: list[float] = field(default_factory=list)
    parent_us: list[float] = field(default_factory=list)  # worker process CPU per job
    kids_us: list[float] = field(default_factory=list)  # its children's CPU per job
    switches: list[float] = field(default_factory=list)  # context switches per job

    @classmethod
    def parse(cls, text: str) -> Config:
        name, _, rest = text.partition("=")
        checkout, _, flags = rest.partition(":")
        return cls(name, Path(checkout or ".").resolve(), flags.split())


def _cpu(pid: int) -> tuple[float, float, int]:
    """CPU seconds of process `pid` itself and of the rest of its process group (the fork
    server and the job processes), and the context switches of all their threads (how often
    a thread of the worker went to sleep or was preempted: the hand-offs a job costs)."""
    own = kids = switches = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/stat").read_bytes()
            fields = raw[raw.rfind(b")") + 2:].split()
            if int(fields[2]) != pid:
                continue
            for task in os.scandir(f"/proc/{entry.name}/task"):
                for line in Path(task.path, "status").read_text().splitlines():
                    if line.endswith("ctxt_switches:") or "ctxt_switches:" in line:
                        switches += int(line.split()[1])
        except OSError:
            continue
        ticks = int(fields[11]) + int(fields[12])
        if int(entry.name) == pid:
            own += ticks
        else:
            kids += ticks
    return own / _TICKS, kids / _TICKS, switches


def _round(cfg: Config, server: RedisServer, n: int, tmp: Path, task: str) -> None:
    server.reset()
    from jobq_core import Queue, Settings

    q = Queue("bench", settings=Settings(redis_url=server.url))
    for start in range(0, n, 1000):
        q.enqueue_many([(f"bench.apps.jobq_app.{task}", (), {})] * min(1000, n - start))
    env = {**os.environ, "PYTHONPATH": f"{cfg.checkout}:{REPO_ROOT}"}
    with Collector(tmp) as collector:
        collector.watch(n)
        env["BENCH_BEACON"] = str(collector.path)
        argv = [sys.executable, "-m", "jobq_core", "worker", "--url", server.url, "--queue",
                "bench", "--import", "bench.apps.jobq_app", *cfg.flags]
        proc = procs.spawn(argv, env, tmp / f"{cfg.name}.log", cfg.checkout)
        try:
            if collector.wait_for(1, 60) is None:
                raise RuntimeError(f"{cfg.name}: no job ran (see {tmp / cfg.name}.log)")
            cpu0 = _cpu(proc.pid)
            done = collector.wait_for(n, 120)
            cpu1 = _cpu(proc.pid)
            if done is None or collector.first_at is None:
                raise RuntimeError(f"{cfg.name}: {collector.count}/{n} jobs done")
            first = collector.first_at
        finally:
            procs.stop_group([proc], grace_s=10)
    rate = (n - 1) / (done - first)
    cfg.rates.append(rate)
    cfg.parent_us.append((cpu1[0] - cpu0[0]) / (n - 1) * 1e6)
    cfg.kids_us.append((cpu1[1] - cpu0[1]) / (n - 1) * 1e6)
    cfg.switches.append((cpu1[2] - cpu0[2]) / (n - 1))
    print(f"  {cfg.name:>12}: {rate:8,.0f} jobs/s  worker CPU {cfg.parent_us[-1]:6.1f} us/job, "
          f"children {cfg.kids_us[-1]:6.1f} us/job, {cfg.switches[-1]:4.1f} switches/job",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", action="append", required=True, help="NAME=CHECKOUT:FLAGS")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--task", default="noop", help="anoop: the async no-op (--pool async)")
    args = ap.parse_args()
    configs = [Config.parse(c) for c in args.config]
    with tempfile.TemporaryDirectory(prefix="pool-compare-") as tmpdir:
        tmp = Path(tmpdir)
        with RedisServer.create(tmp) as server:
            for i, order in pairs.pair_order(configs, args.pairs):
                print(f"round {i + 1}/{args.pairs} (load {os.getloadavg()[0]:.1f})", flush=True)
                for cfg in order:
                    _round(cfg, server, args.n, tmp, args.task)
                    time.sleep(0.2)
    base = configs[0]
    print(f"\nmedians over {args.pairs} rounds (ratio: median of per-round ratios to "
          f"{base.name}, [min-max]):")
    for cfg in configs:
        ratios = pairs.paired_ratios(cfg.rates, base.rates)
        print(f"  {cfg.name:>12}: {statistics.median(cfg.rates):8,.0f} jobs/s  ratio "
              f"{pairs.ratio_spread(ratios)}  worker "
              f"{statistics.median(cfg.parent_us):.1f} us/job [{min(cfg.parent_us):.0f}-"
              f"{max(cfg.parent_us):.0f}], children "
              f"{statistics.median(cfg.kids_us):.1f} us/job, "
              f"{statistics.median(cfg.switches):.1f} switches/job")


if __name__ == "__main__":
    main()
