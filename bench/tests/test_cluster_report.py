"""The cluster rows' figures (bench/cluster_bench.py) and their section of docs/benchmarks.md
(bench/cluster_report.py), from made-up rows: no server is started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import cluster_report, report
from bench.cluster_bench import NodeCpu, Row, figures, met


def _rows() -> list[Row]:
    rows: list[Row] = []
    # Pair 1 is a noisy one (the cluster drain twice as slow); the median ignores it.
    for p, (plain, cl1) in enumerate([(10_000, 9_000), (10_000, 5_000), (8_000, 7_600)]):
        rows += [Row("one-plain", p, 6000, 6000 / plain, 0.20, [NodeCpu("a:1", 0.20, ["bench"])]),
                 Row("one-cl1", p, 6000, 6000 / cl1, 0.22, [NodeCpu("b:1", 0.22, ["bench"])])]
        rows += [Row("spread-1", p, 6000, 0.5, 0.6, [NodeCpu("a:1", 0.30, ["q0", "q1", "q2"])]),
                 Row("spread-3", p, 6000, 0.5, 0.6,
                     [NodeCpu("c:1", 0.10 + p / 100, ["q0"]), NodeCpu("c:2", 0.11, ["q1"]),
                      NodeCpu("c:3", 0.09, ["q2"])])]
    return rows


WOKE = {"q0": [1.0, 2.0, 3.0, 4.0, 50.0], "q1": [6.0] * 5, "q2": [2.0] * 5}


def test_figures_take_the_median_of_the_interleaved_pairs() -> None:
    f = figures(_rows(), WOKE, {"q0": "c:1", "q1": "c:2", "q2": "c:3"})
    assert f["cluster_mode_one_queue_costs"] == [0.1, 0.5, 0.05]
    assert f["cluster_mode_one_queue_cost"] == 0.1  # not the noisy pair's 0.5
    assert f["one_queue_server_cpu_ratio"] == 1.1
    share = f["per_node_share_of_single_node_cpu"]
    assert share["c:1"]["cpu"] == round(0.11 / 0.30, 4) and share["c:1"]["queues"] == ["q0"]
    assert share["c:1"]["cpu_min"] == round(0.10 / 0.30, 3)
    assert f["worst_node_share"] == round(0.11 / 0.30, 4)
    assert f["single_node_cpu_us_per_job"] == 50.0  # 0.30 s / 6000 jobs
    assert f["projected_jobs_per_s_redis_bound"] == {1: 20_000, 3: 60_000, 6: 120_000,
                                                     12: 240_000}
    assert f["wake_ms"]["q0"] == {"node": "c:1", "n": 5, "p50": 3.0, "p99": 48.16}


def test_a_wake_up_over_5_ms_misses_the_goal() -> None:
    f = figures(_rows(), WOKE, {})
    assert not met(f)  # q1's p50 is 6 ms
    assert met(figures(_rows(), {**WOKE, "q1": [4.0] * 5}, {}))


def _cluster() -> dict[str, Any]:
    f: dict[str, Any] = figures(_rows(), WOKE, {"q0": "c:1", "q1": "c:2", "q2": "c:3"})
    # as json.dumps/loads gives it back: int keys become strings
    f["projected_jobs_per_s_redis_bound"] = {
        str(k): v for k, v in f["projected_jobs_per_s_redis_bound"].items()}
    return {**f, "wake_ms_single_redis": {"q0": {"n": 5, "p50": 1.5, "p99": 4.0}},
            "wake_ms_one_queue": {"cluster": {"n": 40, "p50": 1.25, "p99": 9.0},
                                  "single_redis": {"n": 40, "p50": 1.5, "p99": 8.0}},
            "pairs": 3, "jobs_per_drain": 6000, "seconds": 31.0, "setup_s": 9.0, "cpus": 2}


def test_section_shows_split_cost_wake_up_and_projection() -> None:
    text = cluster_report.section_cluster(_cluster())
    assert "| 1 | q0 | 36.7 % [33.3–40.0 %] | ≤ 40% | yes |" in text
    assert "| throughput cost (1 − cluster / plain) | 10.0 % | [5.0 %–50.0 %] | ≤ 15% | yes |" \
        in text
    assert "| 1 | q0 | 5 | 3.00 | 48.16 | 1.50 / 4.00 | ≤ 5 ms | yes |" in text
    assert "| 2 | q1 | 5 | 6.00 | 6.00 | — | ≤ 5 ms | no |" in text
    assert "cannot grow with nodes" in text and "3 primaries: 60,000 jobs/s" in text
    assert "1 primary: 20,000 jobs/s" in text
    assert "31 s of this run" in text
    assert "1.25 / 9.00 ms on a 1-primary cluster, 1.50 / 8.00 ms on one Redis" in text


def test_report_embeds_the_cluster_section_or_says_it_is_missing() -> None:
    meta: dict[str, Any] = {"config": {"n": 100, "repeat": 1}, "notes": [], "versions": {},
                            "config_notes": {}, "skipped": {}}
    text = report.render({"meta": {**meta, "cluster": _cluster()}, "records": []})
    assert "### 6. Redis Cluster (issue 14)" in text and "3 primaries: 60,000 jobs/s" in text
    missing = report.render({"meta": meta, "records": []})
    assert "Not measured in this run" in missing


def test_run_embeds_the_cluster_file_or_none(tmp_path: Path) -> None:
    from bench.run import load_cluster

    assert load_cluster(tmp_path / "cluster.json") is None  # the cluster rows crashed
    (tmp_path / "cluster.json").write_text('{"seconds": 30}\n')
    assert load_cluster(tmp_path / "cluster.json") == {"seconds": 30}


def test_an_older_harness_file_is_not_rendered() -> None:
    assert "older harness" in cluster_report.section_cluster({"rows": [], "seconds": 60})
