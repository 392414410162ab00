"""The figures table: the worst value per figure in the figure's own direction, the commit
measured and the digest of the raw results it was reduced from."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from .report import DIRECTION, HIGHER, LOWER, UnknownFigure, build, worst

HERE = Path(__file__).parent


@pytest.mark.parametrize(("name", "values", "expected"), [
    ("idle_cpu_pct", [0.0, 7.5, 2.0], 7.5),  # a spinning worker: higher is worse
    ("quarantined", [5, 3, 5], 3),  # bad entries not set aside: lower is worse
    ("throughput_pct", [95.7, 81.0, 90.0], 81.0),
    ("acked", [483, 120, 480], 120),
    ("lost", [0, 2, 0], 2),
    ("recovery_s", [3.2, "inf", 3.9], "inf"),  # never recovered
    ("warned", [1, 0, 1], 0),
    ("resume_s", [None, 1.5, None], 1.5),  # None: not measured in that run
    ("resume_s", [None, None], None),
])
def test_worst_follows_each_figures_direction(name: str, values: list[Any],
                                              expected: Any) -> None:
    assert worst(name, values) == expected
    # The order of the runs does not matter.
    assert worst(name, list(reversed(values))) == expected


def test_a_figure_without_a_direction_is_an_error() -> None:
    with pytest.raises(UnknownFigure, match="new_figure_pct"):
        worst("new_figure_pct", [1.0, 2.0])
    with pytest.raises(ValueError, match="not a number"):
        worst("lost", [0, "zero"])


def _recorded_figures() -> set[str]:
    """Keyword names of every scenario.record(...) call in the scenario modules."""
    names: set[str] = set()
    for path in HERE.glob("test_s*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "record"
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "scenario"):
                names |= {k.arg for k in node.keywords if k.arg}
    return names


def test_every_recorded_figure_has_a_direction() -> None:
    # Checked here so that a new figure fails make test, not the report after make faults.
    recorded = _recorded_figures()
    assert recorded, "no scenario.record(...) calls found"
    assert recorded - set(DIRECTION) == set()
    assert set(DIRECTION.values()) == {HIGHER, LOWER}


def _results(tmp_path: Path) -> Path:
    res = tmp_path / "results.jsonl"
    rows: list[dict[str, Any]] = [{"run": {"commit": "0123abc", "dirty": False,
                                           "started": "2026-12-06 08:00 UTC"}}]
    runs = [  # (recovery_s, lost, acked, idle_cpu_pct, quarantined, throughput_pct, outcome)
        (3.2, 0, 30, 0.0, 5, 95.0, "passed"),
        ("inf", 2, 12, 9.0, 4, 81.0, "failed"),
        (3.9, 0, 28, 1.0, 5, 90.0, "passed"),
    ]
    for i, (rec, lost, acked, cpu, quar, pct, outcome) in enumerate(runs, 1):
        nodeid = f"tests/faults/test_x.py::test_a[run{i}]"
        rows.append({
            "scenario": "1a",
            "title": "whole worker SIGKILL",
            "nodeid": nodeid,
            "figures": {"lost": lost, "recovery_s": rec, "resume_s": None,
                        "enqueued_ok": acked},
            "extras": {"throughput_pct": pct, "poison_runs": i, "idle_cpu_pct": cpu,
                       "quarantined": quar},
            "bars": {"lost": "= 0"},
        })
        rows.append({"nodeid": nodeid, "outcome": outcome,
                     "message": "lost == 0" if outcome == "failed" else ""})
    res.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return res


def test_report_keeps_the_worst_value_in_each_direction(tmp_path: Path) -> None:
    res = _results(tmp_path)
    text = build(res)
    row = next(line for line in text.splitlines() if line.startswith("| 1a "))
    cells = [c.strip() for c in row.split("|")]
    assert cells[3:5] == ["3", "2"]  # runs, passed
    assert cells[5] == "12"  # acked: the fewest
    assert cells[6] == "2"  # lost: the most
    assert cells[12] == "never"  # recovery_s: the slowest
    assert "idle_cpu_pct=9.00" in row and "quarantined=4" in row
    assert "throughput_pct=81.00" in row and "poison_runs=3" in row
    assert "## Failed runs" in text and "test_a[run2]" in text


def test_report_names_the_commit_and_the_digest_of_its_raw_results(tmp_path: Path) -> None:
    res = _results(tmp_path)
    text = build(res)
    digest = hashlib.sha256(res.read_bytes()).hexdigest()
    assert "commit 0123abc (started 2026-12-06 08:00 UTC)" in text
    assert f"sha256 `{digest}`" in text and res.as_posix() in text
    assert "## How the figures are reduced" in text
    assert "`idle_cpu_pct`" in text.split("higher is worse:")[1].split("\n")[0]
    assert "`quarantined`" in text.split("lower is worse:")[1].split("\n")[0]


def test_report_refuses_a_figure_without_a_direction(tmp_path: Path) -> None:
    res = tmp_path / "results.jsonl"
    res.write_text(json.dumps({"scenario": "1a", "title": "t", "nodeid": "n",
                               "figures": {"lost": 0}, "extras": {"mystery_pct": 1.0}}) + "\n")
    with pytest.raises(UnknownFigure, match="mystery_pct"):
        build(res)
