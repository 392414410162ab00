"""The figures table keeps the worst value per figure and says which runs failed."""

from __future__ import annotations

import json
from pathlib import Path

from .report import build


def test_report_keeps_worst_value_and_counts_failed_runs(tmp_path: Path) -> None:
    res = tmp_path / "r.jsonl"
    rows = []
    for i, (rec, lost, pct, outcome) in enumerate(
        [(3.2, 0, 95.0, "passed"), ("inf", 2, 81.0, "failed"), (3.9, 0, 90.0, "passed")], 1
    ):
        nodeid = f"tests/faults/test_x.py::test_a[run{i}]"
        rows.append(
            {
                "scenario": "1a",
                "title": "whole worker SIGKILL",
                "nodeid": nodeid,
                "figures": {"lost": lost, "recovery_s": rec, "resume_s": None},
                "extras": {"throughput_pct": pct, "poison_runs": i},
                "bars": {"lost": "= 0"},
            }
        )
        rows.append(
            {
                "nodeid": nodeid,
                "outcome": outcome,
                "message": "lost == 0" if outcome == "failed" else "",
            }
        )
    res.write_text("\n".join(json.dumps(r) for r in rows))
    text = build(res)
    row = next(line for line in text.splitlines() if line.startswith("| 1a "))
    cells = [c.strip() for c in row.split("|")]
    assert cells[3:5] == ["3", "2"]  # runs, passed
    assert cells[5] == "2"  # worst lost
    assert cells[11] == "never"  # worst recovery_s
    assert "throughput_pct=81.00" in row and "poison_runs=3" in row
    assert "## Failed runs" in text and "test_a[run2]" in text
