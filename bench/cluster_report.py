"""The Redis Cluster section of docs/benchmarks.md (issue 14), from bench/cluster_bench.py's
result, which bench/run.py embeds in latest.json as meta["cluster"]."""

from __future__ import annotations

from typing import Any

CLUSTER_JSON = "bench/results/cluster.json"
# Issue 14's bounds (bench/cluster_bench.py judges its exit code by them too)
GOAL_SHARE = 0.40  # each primary's share of the single node's Redis CPU
GOAL_COST = 0.15  # cluster mode's throughput cost on one queue
GOAL_WAKE_P50_MS = 5.0  # enqueue -> start on each primary, p50


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def _yes(ok: bool) -> str:
    return "yes" if ok else "no"


def _range(values: list[float], fmt: str = "{:.1f} %", scale: float = 100.0) -> str:
    if not values:
        return "—"
    return f"[{fmt.format(min(values) * scale)}–{fmt.format(max(values) * scale)}]"


def _split(c: dict[str, Any]) -> list[str]:
    shares: dict[str, dict[str, Any]] = c["per_node_share_of_single_node_cpu"]
    rows = [f"| {i + 1} | {', '.join(s['queues'])} | {_pct(s['cpu'])} "
            f"[{s['cpu_min'] * 100:.1f}–{s['cpu_max'] * 100:.1f} %] | ≤ {GOAL_SHARE:.0%} | "
            f"{_yes(s['cpu'] <= GOAL_SHARE)} |" for i, s in enumerate(shares.values())]
    return [
        "**The load splits across primaries.** Three queues, one worker each, drained on one "
        "Redis (spread-1) and on a 3-primary cluster with one queue per primary (spread-3): "
        "each primary's Redis CPU (INFO used_cpu_sys + used_cpu_user) for the same jobs, as a "
        "share of the single Redis's, median of the pairs [min–max]:",
        "",
        "| primary | queue | share of the single node's CPU | goal | met |",
        "| ---: | --- | ---: | ---: | --- |",
        *rows,
        "",
        f"Single Redis: {c['single_node_cpu_us_per_job']:.1f} µs of Redis CPU per job; "
        f"drain rate {c['spread_1_jobs_per_s']:,.0f} jobs/s on one Redis, "
        f"{c['spread_3_jobs_per_s']:,.0f} jobs/s on three primaries (medians).",
    ]


def _cost(c: dict[str, Any]) -> list[str]:
    cost = c["cluster_mode_one_queue_cost"]
    costs = c.get("cluster_mode_one_queue_costs", [])
    return [
        "**Cluster mode on one queue.** One queue, one worker, drained on one Redis "
        "(`redis://`) and on a 1-primary cluster (`redis+cluster://`), in interleaved pairs; "
        "the cost is 1 − cluster rate / plain rate per pair (negative: the cluster drain was "
        "faster), and the CPU per drain of the same pairs shows where a cost would sit:",
        "",
        "| figure | median | pairs | goal | met |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| throughput cost (1 − cluster / plain) | {_pct(cost)} | {_range(costs)} | "
        f"≤ {GOAL_COST:.0%} | {_yes(cost <= GOAL_COST)} |",
        f"| plain → cluster drain rate, jobs/s | {c['one_plain_jobs_per_s']:,.0f} → "
        f"{c['one_cl1_jobs_per_s']:,.0f} | | | |",
        f"| Redis CPU, cluster / plain | {c['one_queue_server_cpu_ratio']:.2f}× | | | |",
        f"| worker CPU, cluster / plain | {c['one_queue_worker_cpu_ratio']:.2f}× | | | |",
    ]


def _wake(c: dict[str, Any]) -> list[str]:
    wake: dict[str, dict[str, Any]] = c["wake_ms"]
    single: dict[str, dict[str, Any]] = c.get("wake_ms_single_redis", {})

    def ref(q: str) -> str:
        w = single.get(q)
        return "—" if w is None else f"{w['p50']:.2f} / {w['p99']:.2f}"

    rows = [f"| {i + 1} | {q} | {w['n']} | {w['p50']:.2f} | {w['p99']:.2f} | {ref(q)} | "
            f"≤ {GOAL_WAKE_P50_MS:g} ms | {_yes(w['p50'] <= GOAL_WAKE_P50_MS)} |"
            for i, (q, w) in enumerate(wake.items())]
    return [
        "**Waking up on every primary.** One idle worker serves the three queues (one per "
        "primary); a job is enqueued on one queue at a time, round robin, and returns the "
        "wall clock when it starts: enqueue → start, ms. The same probe on one Redis (a "
        "worker serving the same three queues there), interleaved with it, for reference:",
        "",
        "| primary | queue | probes | p50 | p99 | one Redis p50 / p99 | goal (p50) | met |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
        *rows,
        *_one_queue_wake(c),
    ]


def _one_queue_wake(c: dict[str, Any]) -> list[str]:
    one: dict[str, dict[str, Any]] | None = c.get("wake_ms_one_queue")
    if not one:
        return []
    cl, single = one["cluster"], one["single_redis"]
    return [
        "",
        f"A worker of one queue (one slot: it claims and waits on that slot's node as on one "
        f"Redis, worker/node_fetch.py), the same probe, {cl['n']} each: p50 / p99 "
        f"{cl['p50']:.2f} / {cl['p99']:.2f} ms on a 1-primary cluster, "
        f"{single['p50']:.2f} / {single['p99']:.2f} ms on one Redis.",
    ]


def _projection(c: dict[str, Any]) -> list[str]:
    proj: dict[str, int] = c["projected_jobs_per_s_redis_bound"]
    cells = ", ".join(f"{n} primar{'y' if str(n) == '1' else 'ies'}: {v:,} jobs/s"
                      for n, v in proj.items())
    return [
        f"**What more nodes buy.** This machine has {c.get('cpus', '?')} cores: the servers, "
        "the workers and the producer share them, so the aggregate drain rate cannot grow "
        "with nodes here, and the table above does not claim it does. What the split shows "
        "is that each primary does about a third of the Redis work; with a core per primary "
        "(one command thread each) the Redis-bound ceiling grows with the primaries, until "
        f"the workers are the limit. Projected from the single Redis's CPU per job: {cells}.",
    ]


def section_cluster(c: dict[str, Any] | None) -> str:
    """The section's markdown; says so when the cluster rows did not run."""
    if not c:
        return (f"Not measured in this run: bench/cluster_bench.py did not write "
                f"{CLUSTER_JSON} (see the run's output).")
    if "wake_ms" not in c or "one_queue_server_cpu_ratio" not in c:
        return (f"Not measured in this run: {CLUSTER_JSON} is an older harness's "
                "(run `bench/run.sh`, which rewrites it).")
    head = [
        f"Measured by `bench/cluster_bench.py` (run by `bench/run.sh` before the rest; "
        f"{c.get('seconds', 0):.0f} s of this run, {c.get('setup_s', 0):.0f} s of it starting "
        f"the servers and workers), finished {c.get('finished_at', '?')}, load average "
        f"{c.get('load_avg_1m_at_end', '?')} at its end. One Redis, a 1-primary and a "
        "3-primary cluster (no replicas) and their workers (`--pool thread -c 1 --prefetch "
        "64`, one per queue) are started once; then "
        f"{c.get('pairs', '?')} interleaved pairs of drains of "
        f"{c.get('jobs_per_drain', 0):,} no-op jobs (enqueue + drain; the order inside a "
        "pair alternates, so a change of the machine's load hits both sides).",
    ]
    parts = [head, _split(c), _cost(c), _wake(c), _projection(c)]
    return "\n\n".join("\n".join(p) for p in parts)
