"""Idle latency (enqueue -> job start) of one worker, configurations interleaved A B A B ... on
one private Redis, so that every configuration sees the same machine load (issue 15: the default
worker against Huey's default consumer; a change against the checkout before it).

    .venv/bin/python -m bench.latency_compare --pairs 5 --huey \\
        --config 'before=/tmp/old:' --config 'after=.:'

Each --config is NAME=CHECKOUT:WORKER FLAGS: `jobq worker` runs from CHECKOUT (its code first
on PYTHONPATH, this venv's interpreter) with those flags (none: the defaults, as the row
`jobq-default-lat` of make bench). `--huey` adds Huey's default consumer (`-k thread -w 1`, as
`huey-thread-1-lat`), from the peers' venv that bench/run.sh builds. A round is what
bench/run.py's latency unit does: start the worker, one warm-up job, 1 s of quiet, then N
probes enqueued GAP ms apart by `bench.agent` (in the system's venv), each reporting
time.time() at its start minus the time stamped just before its enqueue. Prints p50/p99 per
round and, at the end, the medians and each configuration's ratio to the first and to Huey
(median of the per-round ratios, [min-max]). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench import pairs, procs
from bench.collector import Collector
from bench.config import REPO_ROOT
from bench.redis_server import RedisServer
from bench.stats import percentile
from bench.venvs import venv_for

HUEY = "huey"


@dataclass
class Config:
    name: str
    checkout: Path
    flags: list[str]
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Config:
        name, _, rest = text.partition("=")
        checkout, _, flags = rest.partition(":")
        return cls(name, Path(checkout or ".").resolve(), flags.split())

    @property
    def system(self) -> str:
        return HUEY if self.name == HUEY else "jobq"

    def python(self) -> str:
        return str(venv_for(HUEY).python) if self.system == HUEY else sys.executable

    def worker_argv(self, url: str) -> list[str]:
        if self.system == HUEY:
            return [str(venv_for(HUEY).bindir / "huey_consumer"), "bench.apps.huey_app.huey",
                    "-q", "-n", "-k", "thread", "-w", "1"]
        return [sys.executable, "-m", "jobq_core", "worker", "--url", url, "--queue", "bench",
                "--import", "bench.apps.jobq_app", *self.flags]

    @property
    def cwd(self) -> Path:
        # `python -m` puts the working directory first on sys.path: the checkout's code
        return REPO_ROOT if self.system == HUEY else self.checkout

    def env(self, url: str, beacon: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
        path = str(REPO_ROOT) if self.system == HUEY else f"{self.checkout}:{REPO_ROOT}"
        return {**env, "PYTHONPATH": path, "BENCH_REDIS_URL": url, "BENCH_BEACON": str(beacon)}


def _probes(cfg: Config, env: dict[str, str], n: int, gap_ms: float) -> dict[str, Any]:
    argv = [cfg.python(), "-m", "bench.agent", cfg.system, "latency", "--n", str(n),
            "--gap-ms", str(gap_ms)]
    done = procs.run(argv, env, cfg.cwd, 120)
    if done.returncode != 0:
        raise RuntimeError(f"{cfg.name}: the producer failed: {done.stderr[-2000:]}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def _round(cfg: Config, server: RedisServer, n: int, gap_ms: float, tmp: Path) -> None:
    server.reset()
    with Collector(tmp, keep_values=True) as collector:
        env = cfg.env(server.url, collector.path)
        proc = procs.spawn(cfg.worker_argv(server.url), env, tmp / f"{cfg.name}.log", cfg.cwd)
        try:
            values, _ = pairs.probe_latency(
                partial(_probes, cfg, env), collector.wait_for, collector, n, gap_ms, 60.0
            )
        except pairs.RoundError as exc:
            raise RuntimeError(f"{cfg.name}: {exc} (see {tmp / cfg.name}.log)") from None
        finally:
            procs.stop_group([proc], grace_s=0.0)
    cfg.p50.append(percentile(values, 50))
    cfg.p99.append(percentile(values, 99))
    print(f"  {cfg.name:>12}: p50 {cfg.p50[-1]:6.3f} ms  p99 {cfg.p99[-1]:6.3f} ms  (first two "
          f"probes {values[0]:.2f}, {values[1]:.2f} ms)", flush=True)


def _ratios(cfg: Config, base: Config) -> str:
    return ", ".join(
        f"{what} {pairs.ratio_spread(pairs.paired_ratios(mine, theirs))}"
        for what, mine, theirs in (("p50", cfg.p50, base.p50), ("p99", cfg.p99, base.p99))
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", action="append", default=[], help="NAME=CHECKOUT:FLAGS")
    ap.add_argument("--huey", action="store_true", help="also Huey's default consumer")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--gap-ms", type=float, default=5.0)
    args = ap.parse_args()
    configs = [Config.parse(c) for c in args.config]
    if args.huey:
        configs.append(Config(HUEY, REPO_ROOT, []))
    if not configs:
        ap.error("nothing to compare: give --config or --huey")
    with tempfile.TemporaryDirectory(prefix="latency-compare-") as tmpdir:
        tmp = Path(tmpdir)
        with RedisServer.create(tmp) as server:
            for i, order in pairs.pair_order(configs, args.pairs):
                print(f"round {i + 1}/{args.pairs} (load {os.getloadavg()[0]:.1f})", flush=True)
                for cfg in order:
                    _round(cfg, server, args.n, args.gap_ms, tmp)
                    time.sleep(0.2)
    base = configs[0]
    huey = next((c for c in configs if c.system == HUEY), None)
    print(f"\nmedians over {args.pairs} rounds (ratios: median of per-round ratios [min-max]):")
    for cfg in configs:
        line = (f"  {cfg.name:>12}: p50 {statistics.median(cfg.p50):6.3f} ms  p99 "
                f"{statistics.median(cfg.p99):6.3f} ms")
        if cfg is not base:
            line += f"  vs {base.name}: {_ratios(cfg, base)}"
        if huey is not None and cfg is not huey:
            line += f"  vs huey: {_ratios(cfg, huey)}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
