"""Scenario 9: payloads of 100 KiB, just under and just over the 1 MiB cap, and 10 MiB.

Up to the cap they are accepted and run; above it the producer gets a clear PayloadError
before anything is written to Redis."""

from __future__ import annotations

import pytest

from .harness.scenario import Scenario

SIZED = "tests.faults.tasks.sized"
KIB = 1024
MIB = 1024 * KIB
CAP = MIB  # Settings.max_payload_bytes default
# Encoded args are ["<key>", "<blob>"]: the key and JSON punctuation take a few dozen bytes.
OVERHEAD = 64


@pytest.mark.faults
def test_payload_cap(scenario: Scenario) -> None:
    from jobq_core import PayloadError
    from jobq_core.keys import Keyspace

    srv = scenario.redis()
    q = scenario.queue(srv.url)
    producer = scenario.producer(q)
    scenario.worker(srv.url, name="A", concurrency=2)
    r = srv.client()
    cases = {"100KiB": 100 * KIB, "cap-64B": CAP - OVERHEAD, "cap+1B": CAP + 1, "10MiB": 10 * MIB}
    accepted: set[str] = set()
    refused: dict[str, str] = {}
    memory_delta: dict[str, int] = {}
    for name, size in cases.items():
        before_keys = r.dbsize()
        before_mem = int(r.info("memory")["used_memory"])
        key, outcome, res = producer.enqueue(SIZED, "x" * size, key=f"payload-{name}")
        memory_delta[name] = int(r.info("memory")["used_memory"]) - before_mem
        if outcome == "ok":
            accepted.add(key)
        else:
            assert isinstance(res, PayloadError), f"{name}: {res!r}"
            refused[name] = str(res)
            # Refused before Redis was touched: no job hash, nothing pending.
            assert r.dbsize() == before_keys, f"{name}: keys written for a refused payload"
    scenario.wait_ended(accepted, 20)
    figs = scenario.check(stuck=scenario.stuck(srv))
    scenario.record(
        "9",
        "payloads 100 KiB / cap-64 B / cap+1 B / 10 MiB",
        figs,
        {"accepted": "<= cap", "refused": "> cap, before Redis", "lost": "= 0"},
        accepted=len(accepted),
        refused=len(refused),
        max_memory_delta_kib=max(memory_delta.values()) // KIB,
    )

    why = f"{scenario.explain(figs)}\nrefused={refused} memory_delta={memory_delta}"
    assert accepted == {"payload-100KiB", "payload-cap-64B"}, why
    assert set(refused) == {"cap+1B", "10MiB"}, why
    for text in refused.values():
        assert "cap" in text and "bytes" in text, why
    assert figs.lost == 0 and figs.stuck == 0 and figs.worker_exits == 0, why
    assert r.zcard(Keyspace().pending("faults")) == 0, why
