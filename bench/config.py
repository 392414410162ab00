"""Every knob of the benchmark, read once from the environment.

Nothing else in ``bench`` reads ``os.environ`` for settings, so ``docs/benchmarks.md`` can print the
exact configuration a table was produced with.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent

ALL_SYSTEMS = ("jobq", "rq", "celery", "dramatiq", "huey", "arq", "saq", "taskiq")
# adrain, asleep, aenqueue: issue 16's asyncio figures (jobq's async pool and AsyncQueue
# against arq, SAQ and taskiq); crash: jobq only, how long a slot takes to replace a killed
# child (issue 15); drain-pairs, latency-pairs: issue 15's two ratios (default worker against
# the thread pool's drain, and against Huey's idle latency) as interleaved pairs, once per run;
# capture-pairs: issue 18's log capture cost (each capture-on no-op drain of the report's
# section 3f against its `--no-capture-logs` twin), interleaved pairs too; enqueue-pairs:
# issue 15's one-thread enqueue (jobq's single enqueues against Huey's), interleaved pairs
ALL_SCENARIOS = (
    "floor", "bulk", "threads", "drain", "sleep", "latency", "mixed", "crash",
    "adrain", "asleep", "aenqueue", "drain-pairs", "latency-pairs", "capture-pairs",
    "enqueue-pairs", "memory", "dashboard",
)


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw.replace("_", "")) if raw else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def _list(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    return tuple(item.strip() for item in raw.split(",") if item.strip())


@dataclass(frozen=True)
class BenchConfig:
    """Sizes and selections for one run; defaults fit a 2-core machine in under 15 minutes."""

    # no-op jobs per drain run; slow variants scale it down (Variant.n_scale) so no unit runs long.
    # Issue 7 names 20,000; the summary's steady rate (first->last job) does not depend on N, and
    # 3,000 keeps three repetitions of everything under 15 minutes on a busy 2-core machine
    n: int = 3_000
    # repetitions of every timed figure; the table shows the median and min-max over them
    repeat: int = 3
    # jobs per bulk-enqueue run, sent through each library's batch API in chunks of bulk_chunk
    bulk_n: int = 3_000
    bulk_chunk: int = 1_000
    # single enqueues from threads of one producer process sharing one client: jobs, threads
    threads_n: int = 3_000
    threads: int = 16
    # 10 ms sleep jobs per run at concurrency 8: 1,200 is 1.5 s of work at the 800 jobs/s ideal
    sleep_n: int = 1_200
    # asyncio figures (issue 16): 10 ms `asyncio.sleep` jobs per run at concurrency 100 (10,000
    # is 1 s of work at the 10,000 jobs/s ideal, so one scheduling hiccup of a busy machine
    # does not decide the figure; slower systems run a fraction), and concurrent enqueues
    # from coroutines of one process, each awaiting one enqueue at a time. The async no-op
    # drain uses `n` (jobq twice that: it drains 3,000 in a fifth of a second).
    asleep_n: int = 10_000
    aenqueue_n: int = 6_400
    aenqueue_coroutines: int = 64
    # idle-latency probe: jobs, spacing between enqueues
    latency_n: int = 500
    latency_gap_ms: float = 5.0
    # pending jobs for the memory figure, and how often to measure it (it is deterministic for
    # a given library version, so one pass is the default to keep the run short)
    mem_n: int = 100_000
    # seconds kept for the memory figure when deciding whether another repetition fits, and the
    # least time one system's fill gets; a fill that runs out of time is measured on the jobs it
    # did enqueue (the report says so): repetitions of the timed figures come first
    mem_reserve_s: float = 120.0
    mem_min_s: float = 15.0
    mem_repeat: int = 1
    # producer processes filling the memory figure in parallel (the bytes do not depend on speed)
    mem_producers: int = 2
    # the dashboard's pages at issue 18's size (bench/dashboard_bench.py, once per run after the
    # timed repetitions): pending and failed jobs, timed requests per page, and the seconds
    # kept for it (filling a million jobs is most of them) when deciding on more repetitions
    dashboard_pending: int = 1_000_000
    dashboard_failed: int = 100_000
    dashboard_repeat: int = 20
    dashboard_reserve_s: float = 45.0  # 23 s on 2f9f762, a quiet machine
    # issue 15's two ratios and issue 18's capture cost as interleaved pairs (bench/pairs.py),
    # once per run after the timed repetitions: rounds (A B, then B A, ...; an even count runs
    # each side first as often), no-op jobs per drain (20,000 lasts over 1 s at the thread
    # pool's ~15,000/s, so a 50 ms hiccup moves a ratio a few per cent, not 25 % as in a
    # 3,000-job drain), and the seconds kept for them when deciding on more repetitions: on a
    # quiet 2-core machine drain-pairs took 40 s and latency-pairs 55 s (bde8176), and
    # capture-pairs' two comparisons ~76 s (6 x 12.7 s, scaled from a busy machine by the
    # drain pairs' ratio), ~171 s in all (177 s on 2f9f762); enqueue-pairs runs its own count
    # of rounds (BENCH_ENQUEUE_PAIRS), cheap ones (two producers of BENCH_PAIR_N jobs, 6.4 s on
    # 2f9f762, whose 12 rounds spread 1.11-1.25x: 8 are enough), ~51 s
    pairs: int = 6
    enqueue_pairs: int = 8
    pair_n: int = 20_000
    pairs_reserve_s: float = 230.0
    # round trips in the redis-py floor loop, requests per redis-benchmark test
    floor_n: int = 10_000
    redis_benchmark_n: int = 50_000
    # a unit (one variant, one repetition) that has not finished by then is killed and reported
    unit_timeout_s: float = 180.0
    # repetitions after the first are skipped (with a note) when they would not fit in this;
    # 17 min: bench/run.sh also builds the venvs and runs the cluster rows (~30 s) before; on
    # a quiet machine a repetition takes ~3 min (186 s on b07acc6, where 15 min dropped the
    # third by 2 s) and the whole of `make bench` about 12-13 min (3 repetitions ~9.5 min,
    # the pairs, dashboard and memory figures after them)
    budget_s: float = 1020.0
    # also run non-default peer configurations (arq with poll_delay=5 ms)
    extra_variants: bool = False
    systems: tuple[str, ...] = ALL_SYSTEMS
    scenarios: tuple[str, ...] = ALL_SCENARIOS
    results_path: Path = field(default=REPO_ROOT / "bench" / "results" / "latest.json")
    docs_path: Path = field(default=REPO_ROOT / "docs" / "benchmarks.md")

    @classmethod
    def from_env(cls) -> BenchConfig:
        """Read BENCH_* variables; unknown system or scenario names raise ValueError."""
        systems = _list("BENCH_SYSTEMS", ALL_SYSTEMS)
        scenarios = _list("BENCH_SCENARIOS", ALL_SCENARIOS)
        for name, chosen, allowed in (
            ("BENCH_SYSTEMS", systems, ALL_SYSTEMS),
            ("BENCH_SCENARIOS", scenarios, ALL_SCENARIOS),
        ):
            unknown = sorted(set(chosen) - set(allowed))
            if unknown:
                raise ValueError(f"{name}: unknown {unknown}; choose from {', '.join(allowed)}")
        default = cls()
        return cls(
            n=_int("BENCH_N", default.n),
            repeat=_int("BENCH_REPEAT", default.repeat),
            bulk_n=_int("BENCH_BULK_N", default.bulk_n),
            bulk_chunk=_int("BENCH_BULK_CHUNK", default.bulk_chunk),
            threads_n=_int("BENCH_THREADS_N", default.threads_n),
            threads=_int("BENCH_THREADS", default.threads),
            sleep_n=_int("BENCH_SLEEP_N", default.sleep_n),
            asleep_n=_int("BENCH_ASLEEP_N", default.asleep_n),
            aenqueue_n=_int("BENCH_AENQUEUE_N", default.aenqueue_n),
            aenqueue_coroutines=_int("BENCH_AENQUEUE_COROUTINES", default.aenqueue_coroutines),
            latency_n=_int("BENCH_LATENCY_N", default.latency_n),
            latency_gap_ms=_float("BENCH_LATENCY_GAP_MS", default.latency_gap_ms),
            mem_n=_int("BENCH_MEM_N", default.mem_n),
            mem_reserve_s=_float("BENCH_MEM_RESERVE_S", default.mem_reserve_s),
            mem_min_s=_float("BENCH_MEM_MIN_S", default.mem_min_s),
            mem_repeat=_int("BENCH_MEM_REPEAT", default.mem_repeat),
            mem_producers=max(1, _int("BENCH_MEM_PRODUCERS", default.mem_producers)),
            dashboard_pending=_int("BENCH_DASHBOARD_PENDING", default.dashboard_pending),
            dashboard_failed=_int("BENCH_DASHBOARD_FAILED", default.dashboard_failed),
            dashboard_repeat=_int("BENCH_DASHBOARD_REPEAT", default.dashboard_repeat),
            dashboard_reserve_s=_float("BENCH_DASHBOARD_RESERVE_S", default.dashboard_reserve_s),
            pairs=_int("BENCH_PAIRS", default.pairs),
            enqueue_pairs=_int("BENCH_ENQUEUE_PAIRS", default.enqueue_pairs),
            pair_n=_int("BENCH_PAIR_N", default.pair_n),
            pairs_reserve_s=_float("BENCH_PAIRS_RESERVE_S", default.pairs_reserve_s),
            floor_n=_int("BENCH_FLOOR_N", default.floor_n),
            redis_benchmark_n=_int("BENCH_REDIS_BENCHMARK_N", default.redis_benchmark_n),
            unit_timeout_s=_float("BENCH_UNIT_TIMEOUT_S", default.unit_timeout_s),
            budget_s=_float("BENCH_BUDGET_S", default.budget_s),
            extra_variants=_int("BENCH_EXTRA_VARIANTS", 0) == 1,
            systems=systems,
            scenarios=scenarios,
            results_path=Path(os.environ.get("BENCH_RESULTS", str(default.results_path))),
            docs_path=Path(os.environ.get("BENCH_DOCS", str(default.docs_path))),
        )

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON-ready data (paths made repo-relative where possible)."""
        data = asdict(self)
        for key in ("results_path", "docs_path"):
            path = Path(data[key])
            try:
                data[key] = str(path.relative_to(REPO_ROOT))
            except ValueError:
                data[key] = str(path)
        data["systems"] = list(self.systems)
        data["scenarios"] = list(self.scenarios)
        return data
