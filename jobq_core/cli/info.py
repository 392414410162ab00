"""`jobq info`: queues with counts per state as coloured bars, workers, recent throughput."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import click

from ..errors import JobqError
from ..job import STATES
from ..problems import find_problems
from ..records import int_field
from .app import Target, common_options, main
from .show import STATE_STYLE, ago, console, state_text

SPARK = "▁▂▃▄▅▆▇█"


def snapshot(t: Target, queues: Sequence[str], minutes: int) -> dict[str, Any]:
    """Everything `jobq info` shows, as plain JSON-able data (read API only)."""
    insp = t.inspector
    names = list(queues) or insp.queues()
    counts = insp.counts(names)
    history = insp.history(names, minutes)
    workers = insp.workers()
    wanted = set(names)
    problems = [p.as_dict() for p in find_problems(insp)
                if not p.queue or p.queue in wanted or not queues]
    nodes = insp.nodes(names)
    where = {q: n.address for n in nodes if n.role != "standalone" for q in n.queues}
    return {
        "problems": problems,
        "time_ms": insp.server_time_ms(),
        "server": insp.server(),
        "nodes": [n.as_dict() for n in nodes],
        "queues": [{"name": q, "node": where.get(q, ""), "counts": counts[q],
                    **insp.queue_info(q)} for q in names],
        "workers": [{"id": w.id, "alive": w.alive, "state": w.fields.get("state", "gone"),
                     "host": w.fields.get("host", ""), "pid": int_field(w.fields.get("pid")),
                     "queues": [q for q in w.fields.get("queues", "").split(",") if q],
                     "concurrency": int_field(w.fields.get("concurrency")),
                     "current": w.current, "beat_ms": int_field(w.fields.get("beat_ms")),
                     "done": int_field(w.fields.get("done")) or 0,
                     "failed": int_field(w.fields.get("failed")) or 0} for w in workers],
        "throughput": {
            "minutes": minutes,
            "completed": sum(p.completed for p in history),
            "failed": sum(p.failed for p in history),
            "per_minute": [{"minute_ms": p.minute_ms, "completed": p.completed,
                            "failed": p.failed} for p in history],
        },
    }


def render(data: dict[str, Any]) -> Any:
    """A rich renderable of a snapshot."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = []
    srv = data["server"]
    nodes = data.get("nodes", [])
    if any(n["role"] != "standalone" for n in nodes):
        parts.append(node_table(nodes))
    else:
        parts.append(Text(f"Redis {srv['version']}, {srv['used_memory_human']} used, "
                          f"{srv['connected_clients']} clients", style="dim"))
    # The server's warnings (eviction policy) are among the problems, listed under the table.
    parts.append(queue_table(data) if data["queues"] else Text("no queues yet"))
    parts.append(problem_list(data.get("problems", [])))
    parts.append(_workers(data["workers"], data["time_ms"]))
    parts.append(_throughput(data["throughput"]))
    return Group(*parts)


# The states a queue's bar stacks (completed and cancelled are history: they would dwarf
# the work that is waiting or stuck).
BAR_STATES = ("pending", "scheduled", "processing", "failed", "dead")
BAR_WIDTH = 30


def queue_table(data: dict[str, Any]) -> Any:
    """One row per queue: workers, a column per state, and a bar of the unfinished and
    failed jobs on one scale shared by every queue (so 1,200 pending draws 30 times the bar
    of 40 pending)."""
    from rich.table import Table
    from rich.text import Text

    serving: dict[str, list[str]] = {}
    for w in data["workers"]:
        if w["alive"]:
            for q in w["queues"]:
                serving.setdefault(q, []).append(w["state"])
    top = max((sum(q["counts"][s] for s in BAR_STATES) for q in data["queues"]), default=0)
    table = Table(show_edge=False, pad_edge=False, box=None, highlight=False)
    table.add_column("queue")
    on_nodes = any(q.get("node") for q in data["queues"])
    if on_nodes:
        table.add_column("node")
    table.add_column("workers", justify="right")
    for state in STATES:
        table.add_column(state_text(state), justify="right")
    table.add_column(f"0 … {top:,}")
    for q in data["queues"]:
        label = Text(q["name"], style="bold")
        if q["paused"]:
            label.append(" paused", style="bold yellow")
        states = serving.get(q["name"], [])
        busy = sum(1 for st in states if st == "busy")
        pending = q["counts"]["pending"]
        workers = Text(f"{busy}/{len(states)}" if states else "0",
                       style="bold red" if not states and pending else "")
        cells = [Text(f"{q['counts'][s]:,}", style=STATE_STYLE[s] if q["counts"][s] and
                      s in ("failed", "dead") else "") for s in STATES]
        node = [Text(q.get("node") or "?", style="dim")] if on_nodes else []
        table.add_row(label, *node, workers, *cells, bar(q["counts"], top))
    return table


def node_table(nodes: list[dict[str, Any]]) -> Any:
    """One row per Redis node of a cluster: role, link, memory, ops/s, clients, queues held."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Redis nodes", title_justify="left", show_edge=False, pad_edge=False,
                  box=None, highlight=False)
    for name in ("node", "role", "link", "slots", "memory", "ops/s", "clients", "queues"):
        table.add_column(name, justify="right" if name in ("slots", "ops/s", "clients")
                         else "left")
    for n in nodes:
        bad = n["error"] or n["link"] in ("fail", "pfail", "disconnected")
        role = n["role"] + (f" of {n['primary']}" if n["primary"] else "")
        table.add_row(Text(n["address"], style="bold"), role,
                      Text(n["error"] or n["link"], style="bold red" if bad else "green"),
                      f"{n['slots']:,}" if n["slots"] else "-", n["used_memory_human"] or "?",
                      f"{n['ops_per_sec']:,}", str(n["connected_clients"]),
                      Text(", ".join(n["queues"]) or "-", style="dim"))
    return table


def bar(counts: dict[str, int], top: int, width: int = BAR_WIDTH) -> Any:
    """A bar stacked by state, `width` characters standing for `top` jobs (a state with any
    job gets at least one character, so one failed job is never invisible)."""
    from rich.text import Text

    text = Text()
    if top <= 0:
        return text
    for s in BAR_STATES:
        n = counts.get(s, 0)
        if n:
            text.append("█" * max(1, round(n * width / top)), style=STATE_STYLE[s])
    return text


def problem_list(problems: list[dict[str, Any]]) -> Any:
    """The problems (jobq_core.problems), errors first, each with what to do."""
    from rich.console import Group
    from rich.text import Text

    if not problems:
        return Text("problems: none", style="green")
    lines: list[Any] = [Text(f"problems: {len(problems)}", style="bold red")]
    for p in problems:
        line = Text("  ✖ " if p["severity"] == "error" else "  ! ",
                    style="bold red" if p["severity"] == "error" else "bold yellow")
        line.append(p["summary"])
        for j in p["jobs"][:5]:
            line.append(f"\n      {j['queue']}/{j['id']} {j['task']}", style="dim")
        if len(p["jobs"]) > 5:
            line.append(f"\n      … and {len(p['jobs']) - 5} more", style="dim")
        line.append(f"\n    → {p['act']}", style="dim")
        lines.append(line)
    return Group(*lines)


def _workers(workers: list[dict[str, Any]], now_ms: int) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    alive = [w for w in workers if w["alive"]]
    busy = sum(1 for w in alive if w["state"] == "busy")
    head = Text(f"workers: {len(alive)} ({busy} busy, {len(alive) - busy} idle)",
                style="bold")
    if not alive:
        return head
    table = Table(show_edge=False, pad_edge=False, box=None, highlight=False)
    for name in ("worker", "state", "queues", "done", "failed", "running", "beat"):
        table.add_column(name)
    for w in alive:
        table.add_row(Text(w["id"]), Text(w["state"], style="cyan" if w["state"] == "busy"
                                          else "green"),
                      Text(",".join(w["queues"])), str(w["done"]), str(w["failed"]),
                      Text(", ".join(w["current"]) or "-"),
                      ago(w["beat_ms"], now_ms) if w["beat_ms"] else "?")
    return Group(head, table)


def _throughput(tp: dict[str, Any]) -> Any:
    from rich.text import Text

    points = tp["per_minute"]
    top = max((p["completed"] + p["failed"] for p in points), default=0)
    spark = "".join(SPARK[min(len(SPARK) - 1, (p["completed"] + p["failed"]) * len(SPARK)
                              // (top + 1))] if top else SPARK[0] for p in points)
    rate = tp["completed"] / max(1, tp["minutes"])
    text = Text(f"last {tp['minutes']} min: ", style="bold")
    text.append(f"{tp['completed']} completed", style="green")
    text.append(f" ({rate:.1f}/min), ")
    text.append(f"{tp['failed']} failed", style="red" if tp["failed"] else "")
    text.append(f"  {spark}", style="green")
    return text


@main.command()
@common_options
@click.option("-q", "--queue", "queues", multiple=True, help="Only this queue (repeatable).")
@click.option("--minutes", type=click.IntRange(1, 1440), default=15, show_default=True,
              help="Throughput window.")
@click.option("--interval", type=click.FloatRange(0.2), default=None,
              help="Refresh every this many seconds until Ctrl-C (with --json: one JSON "
                   "line per refresh).")
def info(t: Target, queues: Sequence[str], minutes: int, interval: float | None) -> None:
    """Queues with counts per state as coloured bars, workers busy/idle, throughput."""
    data = snapshot(t, queues, minutes)  # the first read fails loudly (bad URL, Redis down)
    if interval is None:
        t.emit(data, lambda: console().print(render(data)))
        return
    try:
        if t.as_json:
            _json_lines(t, data, queues, minutes, interval)
        else:
            _live(t, data, queues, minutes, interval)
    except KeyboardInterrupt:
        pass


def _json_lines(t: Target, data: dict[str, Any], queues: Sequence[str], minutes: int,
                interval: float) -> None:
    while True:
        click.echo(json.dumps(data, default=str))
        time.sleep(interval)
        data = _next(t, queues, minutes, data)


def _live(t: Target, data: dict[str, Any], queues: Sequence[str], minutes: int,
          interval: float) -> None:
    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    con = console()
    if not con.is_terminal:  # a pipe: print each refresh in turn
        while True:
            con.print(render(data))
            time.sleep(interval)
            data = _next(t, queues, minutes, data)
    with Live(render(data), console=con, auto_refresh=False) as live:
        while True:
            time.sleep(interval)
            try:
                data = snapshot(t, queues, minutes)
                live.update(render(data), refresh=True)
            except JobqError as exc:  # keep watching while Redis blinks
                live.update(Group(render(data), Text(f"{exc} (retrying)", style="bold red")),
                            refresh=True)


def _next(t: Target, queues: Sequence[str], minutes: int,
          last: dict[str, Any]) -> dict[str, Any]:
    try:
        return snapshot(t, queues, minutes)
    except JobqError as exc:
        return {**last, "error": str(exc)}


@main.command()
@common_options
def doctor(t: Target) -> None:
    """What needs an operator now: lost workers and their jobs, queues nobody serves,
    paused or old pending jobs, failure spikes, late schedules, Redis memory and eviction.
    Exits 1 when anything is found (for cron and health checks), else 0."""
    found = [p.as_dict() for p in find_problems(t.inspector)]
    t.emit({"ok": not found, "problems": found}, lambda: console().print(problem_list(found)))
    if found:
        raise SystemExit(1)
