"""Write docs/reliability.md from the figures a ``make faults`` run recorded (worst per figure).

Usage: python tests/faults/report.py RESULTS.jsonl docs/reliability.md
Standalone on purpose (stdlib only): it must run even when the suite itself failed.

RESULTS.jsonl is the raw record of the run (kept next to the doc, docs/reliability/): a ``run``
line (commit, start time) written when the session starts, one line of figures per scenario
run, and one outcome line per test. The doc names the commit and the file's SHA-256, so the
table can be traced back to the lines it was reduced from.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HIGHER = "higher"  # a bigger value is worse: counts of bad events, delays
LOWER = "lower"  # a smaller value is worse: evidence the fault hit, throughput shares

# Every figure a scenario may record, with the direction in which a run is worse. The report
# never guesses from a name: a figure missing here stops it (UnknownFigure), so a new figure
# is given its direction when it is added.
DIRECTION: dict[str, str] = {
    # the checker's figures (tests/faults/harness/checker.py), one column each
    "acked": LOWER,  # acknowledged enqueues: the work whose loss "lost" counts
    "lost": HIGHER,
    "dup_overlap": HIGHER,
    "dup_completions": HIGHER,
    "reruns": HIGHER,
    "unexpected": HIGHER,
    "stuck": HIGHER,
    "recovery_s": HIGHER,
    "resume_s": HIGHER,
    "worker_exits": HIGHER,
    # scenario figures ("other figures")
    "a_long_life_s": HIGHER,  # 5: how long the cut-off worker's job outlived the cut
    "a_resume_s": HIGHER,  # 5: heal to the cut-off worker's next job
    "accepted": LOWER,  # 9: payloads within the cap that were accepted
    "acked_before_full": LOWER,  # 12: fill jobs acknowledged before Redis was full
    "crash_cost_s": HIGHER,  # 8: slot-seconds each poison run cost the good jobs
    "deliveries": HIGHER,  # 11: deliveries of the unknown-task job (1 = no retry storm)
    "detect_s": HIGHER,  # 1b, 7: fault to the worker noticing it
    "dup_ticks": HIGHER,  # 13
    "failover_s": HIGHER,  # 13, 14, 15: fault to the new leader / primary
    "firing_error_s": HIGHER,  # 6: |delayed job start - due time|
    "handback_s": HIGHER,  # 2a
    "idle_cpu_pct": HIGHER,  # 10: CPU of an idle worker after garbage (a spin shows here)
    "in_flight": LOWER,  # 1: jobs running when the worker was killed (the fault's reach)
    "max_memory_delta_kib": HIGHER,  # 9
    "missed_ticks": HIGHER,  # 13
    "next_job_s": HIGHER,  # 10
    "orphan_life_s": HIGHER,  # 1c: how long a job child outlived its killed parent
    "poison_runs": HIGHER,  # 8
    "producer_error_s": HIGHER,  # 4: how long an enqueue took to fail during the outage
    "producer_errors": HIGHER,  # 3
    "quarantine_s": HIGHER,  # 8
    "quarantined": LOWER,  # 10: bad entries set aside (bar: all of them)
    "queued_when_full": LOWER,  # 12: acknowledged fill jobs still queued when Redis was full
    "refused": LOWER,  # 9: payloads over the cap that were refused
    "retries": HIGHER,  # 11
    "retry_error_s": HIGHER,  # 6
    "run_s": HIGHER,  # 7: how long a timed-out job ran
    "shutdown_s": HIGHER,  # 2
    "skew_seen_s": LOWER,  # 6: |clock offset| the skewed worker's jobs saw (the fault's reach)
    "stale_accepted": HIGHER,  # 5: late completions Redis took from the cut-off worker
    "stale_refused": LOWER,  # 5: late completions attempted and refused (the path ran)
    "short_runs": HIGHER,  # 5 half-open: runs of the job whose completion landed unanswered
    "resent_writes": LOWER,  # 5 half-open: writes the cut-off worker had to send again
    "resend_refused": HIGHER,  # 5 half-open: re-sent completions refused as stale (bar: 0)
    "throughput_pct": LOWER,  # 8: good jobs' throughput with poison, % of without
    "ticks": LOWER,  # 13: ticks fired
    "warned": LOWER,  # 12: eviction warnings the worker logged at start
    "enqueue_errors": LOWER,  # 8, 12: enqueues refused where the scenario expects it
    "loss_window_s": HIGHER,  # 15b: how far before the kill lost acknowledged enqueues were
    "migrated_keys": LOWER,  # 15c: keys the migration moved (the fault's reach)
    "migration_s": HIGHER,  # 15c
    "replicas_after": LOWER,  # 15: replicas linked to the new primary (WAIT 1 possible)
}
COLUMNS = (
    "acked",
    "lost",
    "dup_overlap",
    "dup_completions",
    "reruns",
    "unexpected",
    "stuck",
    "recovery_s",
    "resume_s",
    "worker_exits",
)


class UnknownFigure(ValueError):
    """A figure without a direction in DIRECTION: the report cannot tell its worst value."""


def _num(name: str, v: Any) -> float:
    if v == "inf":
        return math.inf
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"figure {name!r}: {v!r} is not a number")
    return float(v)


def worst(name: str, values: Iterable[Any]) -> Any:
    """The worst of one figure's values over several runs (None: not measured in that run,
    skipped). Raises UnknownFigure for a figure without a direction."""
    direction = DIRECTION.get(name)
    if direction is None:
        raise UnknownFigure(f"figure {name!r} has no direction in tests/faults/report.py")
    seen = [v for v in values if v is not None]
    if not seen:
        return None
    pick = max if direction == HIGHER else min
    return pick(seen, key=lambda v: _num(name, v))


def _base(nodeid: str) -> str:
    return re.sub(r"\[run\d+\]$|(?<=\[)run\d+-|-run\d+(?=\])", "", nodeid)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if v == "inf":
        return "never"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def _figures(entry: dict[str, Any]) -> dict[str, Any]:
    f = dict(entry["figures"])
    f["acked"] = f.get("enqueued_ok")
    return f


def build(results: Path) -> str:
    entries: list[dict[str, Any]] = []
    outcomes: dict[str, dict[str, Any]] = {}
    runs_info: list[dict[str, Any]] = []
    raw = results.read_bytes() if results.exists() else b""
    for line in raw.decode(errors="replace").splitlines():
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "scenario" in d:
            entries.append(d)
        elif "outcome" in d:
            outcomes[d["nodeid"]] = d
        elif "run" in d:
            runs_info.append(d["run"])

    by_scenario: dict[str, list[dict[str, Any]]] = defaultdict(list)
    scen_of_test: dict[str, set[str]] = defaultdict(set)
    for e in entries:
        by_scenario[e["scenario"]].append(e)
        scen_of_test[_base(e["nodeid"])].add(e["scenario"])
    failed_runs: dict[str, list[str]] = defaultdict(list)
    unrecorded: list[str] = []
    for nodeid, o in outcomes.items():
        if o["outcome"] == "passed":
            continue
        scens = scen_of_test.get(_base(nodeid))
        if not scens:
            unrecorded.append(f"{nodeid}: {o.get('message', '')}")
        for s in scens or ():
            failed_runs[s].append(f"{nodeid}: {o.get('message', '')}")

    lines = [
        "# jobq reliability figures",
        "",
        "Generated by `make faults` (tests/faults/report.py); do not edit by hand. Each",
        "scenario of tests/faults runs several times against real redis-server/valkey processes,",
        "real worker processes and a ledger kept outside Redis; each cell is the **worst** value",
        "over the runs (see *How the figures are reduced* below). Timings are shrunk (lease 3 s,",
        "heartbeat 1 s): scale them up when comparing with production defaults.",
        "",
        f"Run: {_commits(runs_info)}; report written "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{_cpus()} CPUs; {_span(entries)}.",
        f"Raw results: `{results.as_posix()}` ({len(raw.splitlines())} lines, "
        f"sha256 `{hashlib.sha256(raw).hexdigest()}`).",
        "",
        "| # | scenario | runs | passed | "
        + " | ".join(COLUMNS)
        + " | other figures (worst) | pass bar |",
        "|---|---|---|---|" + "---|" * len(COLUMNS) + "---|---|",
    ]
    for scen in sorted(by_scenario, key=_order):
        runs = by_scenario[scen]
        figs = [_figures(e) for e in runs]
        cols = {f: worst(f, (x.get(f) for x in figs)) for f in COLUMNS}
        extra_names = sorted({k for e in runs for k in e.get("extras", {})})
        extras = {k: worst(k, (e.get("extras", {}).get(k) for e in runs)) for k in extra_names}
        bars: dict[str, str] = {}
        for e in runs:
            bars.update(e.get("bars", {}))
        n_failed = sum(
            1 for e in runs if outcomes.get(e["nodeid"], {}).get("outcome") not in (None, "passed")
        )
        n_failed_unrecorded = max(0, len(failed_runs[scen]) - n_failed)
        total = len(runs) + n_failed_unrecorded
        passed = total - n_failed - n_failed_unrecorded
        other = ", ".join(f"{k}={_fmt(v)}" for k, v in extras.items())
        bar = "; ".join(f"{k} {v}" for k, v in bars.items())
        lines.append(
            f"| {scen} | {runs[0]['title']} | {total} | {passed} | "
            + " | ".join(_fmt(cols[f]) for f in COLUMNS)
            + f" | {other} | {bar} |"
        )

    higher = ", ".join(f"`{k}`" for k, d in sorted(DIRECTION.items()) if d == HIGHER)
    lower = ", ".join(f"`{k}`" for k, d in sorted(DIRECTION.items()) if d == LOWER)
    lines += [
        "",
        "Figures: `acked` enqueues the producer saw acknowledged (what `lost` is counted",
        "against; the checker refuses a run without any, except where the scenario has no",
        "producer: 12-evicting, 13); `lost` acknowledged enqueues that never",
        "finished; `dup_overlap` jobs run twice at the same time; `dup_completions` jobs whose",
        "body finished twice; `reruns` jobs started more than once (at-least-once delivery,",
        "reported only); `unexpected` runs of jobs never acknowledged; `stuck` jobs left in",
        "processing; `recovery_s` fault to rerun of the cut jobs; `resume_s` end of fault to",
        "throughput back at 90 %; `worker_exits` worker processes that died on their own.",
        "",
        "## How the figures are reduced",
        "",
        "Each scenario run computes its figures from its own ledger (tests/faults/harness/",
        "checker.py) and appends one JSON line to the raw results; a run that did not measure",
        "a figure records none (`-`), and `never` means the event never came. A cell is the",
        "worst value over the scenario's runs, in the direction tests/faults/report.py gives",
        "each figure (a figure without one stops the report):",
        "",
        f"- higher is worse: {higher};",
        f"- lower is worse: {lower}.",
        "",
        f"The raw results (`{results.as_posix()}`, written by `make faults`) hold",
        "every run's figures, the pass/fail of every test and the commit measured; the digest",
        "above is of that file.",
        "",
    ]
    failures = {s: m for s, m in failed_runs.items() if m}
    if failures or unrecorded:
        lines += ["## Failed runs", ""]
        for s in sorted(failures, key=_order):
            lines += [
                f"- **{s}**: " + " / ".join(sorted(set(m.replace("|", "/") for m in failures[s])))
            ]
        for m in unrecorded:
            lines += [f"- (no figures recorded) {m.replace('|', '/')}"]
        lines.append("")
    return "\n".join(lines)


def _commits(runs_info: list[dict[str, Any]]) -> str:
    """The commit(s) the run measured, as the session recorded them when it started."""
    seen = []
    for r in runs_info:
        text = f"commit {r.get('commit', '?')}" + (
            " with uncommitted changes" if r.get("dirty") else ""
        )
        if r.get("started"):
            text += f" (started {r['started']})"
        if text not in seen:
            seen.append(text)
    return "; ".join(seen) if seen else "commit unknown (no run line in the raw results)"


def _order(s: str) -> tuple[int, str]:
    m = re.match(r"(\d+)(.*)", s)
    return (int(m.group(1)), m.group(2)) if m else (999, s)


def _span(entries: list[dict[str, Any]]) -> str:
    """Wall time from the first to the last recorded run (the suite's length, near enough)."""
    times = [float(e["time"]) for e in entries if "time" in e]
    if len(times) < 2:
        return "duration unknown"
    return f"{(max(times) - min(times)) / 60:.0f} min from first to last recorded run"


def _cpus() -> str:
    import os

    return str(os.cpu_count())


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[2])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build(Path(argv[1])))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
