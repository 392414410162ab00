"""Checks of the harness's own logic. No server, no timing assertions: a benchmark is not a test."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from bench import beacon, report
from bench.collector import Collector
from bench.config import BenchConfig
from bench.drivers import DRIVERS
from bench.drivers.base import chunks
from bench.stats import Summary, percentile


def test_percentile_interpolates_and_rejects_empty() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile([3.0, 1.0, 2.0], 100) == 3.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_skips_missing_values() -> None:
    summary = Summary.of([3.0, float("nan"), 1.0, 2.0])
    assert summary == Summary(median=2.0, low=1.0, high=3.0, count=3)
    assert Summary.of([]) is None


def test_chunks_cover_the_count() -> None:
    assert chunks(2500, 1000) == [1000, 1000, 500]
    assert chunks(0, 1000) == []


def test_config_rejects_unknown_systems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_SYSTEMS", "jobq,sidekiq")
    with pytest.raises(ValueError, match="sidekiq"):
        BenchConfig.from_env()


def test_config_reads_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_N", "20_000")
    monkeypatch.setenv("BENCH_SYSTEMS", "huey, jobq")
    config = BenchConfig.from_env()
    assert config.n == 20_000
    assert config.systems == ("huey", "jobq")


def test_every_driver_declares_each_role_once_per_row() -> None:
    for name, cls in DRIVERS.items():
        variants = cls("redis://127.0.0.1:1/0").variants()
        labels = [v.label for v in variants]
        assert len(labels) == len(set(labels)), name
        seen = {(v.row, v.role) for v in variants}
        assert len(seen) == len(variants), f"{name}: two variants share a row and a role"
        for v in variants:
            argvs = cls("redis://127.0.0.1:1/0").worker_argvs(v, Path("/venv/bin"))
            assert argvs and all(argv[0].startswith("/venv/bin/") for argv in argvs)


def test_collector_counts_frames_from_several_connections(tmp_path: Path) -> None:
    with Collector(tmp_path, keep_values=True) as collector:
        collector.watch(5)
        first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        second = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        first.connect(str(collector.path))
        second.connect(str(collector.path))
        frames = struct.pack("<ddd", 1.0, 2.0, 3.0)
        # a frame split across two writes must still count once
        first.sendall(frames[:12])
        second.sendall(struct.pack("<d", 4.0))
        first.sendall(frames[12:])
        second.sendall(struct.pack("<d", 5.0))
        assert collector.wait_for(5, timeout_s=10) is not None
        first.close()
        second.close()
    assert sorted(collector.values) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert not collector.path.exists()


def test_beacon_reports_to_the_collector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Collector(tmp_path, keep_values=True) as collector:
        monkeypatch.setenv(beacon.ENV_VAR, str(collector.path))
        monkeypatch.setattr(beacon, "_sock", None)
        beacon.send(0.25)
        beacon.send()
        assert collector.wait_for(2, timeout_s=10) is not None
    assert collector.values == [0.25, 0.0]


def _drain(
    system: str, label: str, row: str, role: str, rate: float, rep: int
) -> dict[str, object]:
    return {
        "scenario": "drain",
        "system": system,
        "label": label,
        "row": row,
        "role": role,
        "rep": rep,
        "n": 100,
        "kind": "noop",
        "enqueue": {"rate": rate, "redis_cmds_per_job": 1.0, "commands_per_job": {"lpush": 1.0}},
        "drain": {
            "rate": rate,
            "rate_first_to_last": rate,
            "redis_cmds_per_job": 3.0,
            "worker_cpu_us_per_job": 100.0,
            "commands_per_job": {"brpop": 1.0},
        },
    }


def test_report_renders_medians_ratios_and_failures() -> None:
    records = (
        [
            _drain("jobq", "jobq-thread-1p", "jobq (thread pool)", "drain-1p", rate, rep)
            for rep, rate in enumerate((9000.0, 10000.0, 11000.0))
        ]
        + [
            _drain("huey", "huey-thread-1", "Huey", "drain-1p", rate, rep)
            for rep, rate in enumerate((3000.0, 3100.0, 2900.0))
        ]
        + [
            _drain("jobq", "jobq-thread-2p", "jobq (thread pool)", "drain-2p", 12000.0, 0),
            _drain("huey", "huey-process-2", "Huey", "drain-2p", 3000.0, 0),
        ]
        + [
            {
                "scenario": "latency",
                "system": "huey",
                "label": "huey-lat",
                "rep": 0,
                "error": "the warm-up job did not run within 60 s",
            },
        ]
    )
    meta = {
        "config": {"n": 100, "repeat": 3},
        "skipped": {"arq": "pip install failed"},
        "config_notes": {
            "jobq": {"title": "jobq", "note": "", "bulk_api": ""},
            "huey": {"title": "Huey", "note": "", "bulk_api": ""},
            "arq": {"title": "arq", "note": "", "bulk_api": ""},
        },
        "versions": {"jobq": {}, "huey": {}},
        "notes": [],
    }
    text = report.render({"meta": meta, "records": records})
    assert "10,000 [9,000–11,000]" in text
    assert "3.33×" in text  # 10,000 / 3,000 in the ratio table
    assert "≥ 3× Huey (1 process) = 9,000" in text
    # 20,000/s was 3.54 times Huey's 5,645/s on the machine: read against Huey here
    row = next(line for line in text.splitlines() if line.startswith("| drain 2 proc"))
    assert "≥ 20,000/s | no | ≥ 3.54× Huey = 10,629 | yes |" in row
    assert "arq: skipped (pip install failed)" in text
    assert "the warm-up job did not run within 60 s" in text
