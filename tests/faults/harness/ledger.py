"""The ledger: evidence of what ran, kept in plain files outside Redis.

Redis is the system under test, so it cannot hold the evidence: a crash or an eviction could erase
it. Each process appends lines to its own file opened with O_APPEND; a line written with one
``os.write`` is complete on disk as soon as the call returns, so a SIGKILL of the writer loses at
most the line it had not written yet (no fsync is needed: the kernel keeps the page cache when the
process dies, and the machine itself is not crashed by any scenario).

Line formats (space separated, one event per line):

    run  <event> <key> <exec> <attempt> <pid> <mono> <wall> [job_id]
         event = start | tick | end;  exec = a token unique to one execution
    enq  <key> <outcome> <pid> <mono_invoke> <mono_done> <wall> [job_id] [error...]
         outcome = ok | error | unknown

``key`` is chosen by the producer and passed to the task as its first argument, so the checker
never depends on the engine's id format and can account for enqueues whose outcome is unknown
(a timeout gives no job id back).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

LEDGER_ENV = "JOBQ_FAULTS_LEDGER"
# Set in an async-pool worker's environment: tests/faults/tasks.py defines `work` async there.
ASYNC_TASKS_ENV = "JOBQ_FAULTS_ASYNC_TASKS"
Outcome = Literal["ok", "error", "unknown"]


def _clean(text: str) -> str:
    return "_".join(str(text).split()) or "-"


class _AppendFile:
    """One O_APPEND fd per process; the pid is rechecked so a forked child opens its own."""

    def __init__(self, directory: Path, stem: str) -> None:
        self.directory = directory
        self.stem = stem
        self._fd: int | None = None
        self._pid = -1
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        data = (line.rstrip("\n") + "\n").encode()
        with self._lock:
            pid = os.getpid()
            if self._fd is None or self._pid != pid:
                self.directory.mkdir(parents=True, exist_ok=True)
                path = self.directory / f"{self.stem}-{pid}.log"
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                self._pid = pid
            os.write(self._fd, data)


class RunLedger:
    """Written by test tasks: start / tick / end of each execution."""

    _counter = itertools.count()

    def __init__(self, directory: str | Path) -> None:
        self._file = _AppendFile(Path(directory), "run")

    @classmethod
    def from_env(cls) -> RunLedger:
        directory = os.environ.get(LEDGER_ENV)
        if not directory:
            raise RuntimeError(f"{LEDGER_ENV} is not set: fault-test tasks need a ledger directory")
        return cls(directory)

    def new_exec(self) -> str:
        return f"{os.getpid()}.{next(self._counter)}.{time.monotonic_ns()}"

    def event(
        self, event: str, key: str, exec_id: str, attempt: int | str = "-", job_id: str = "-"
    ) -> None:
        self._file.write(
            f"run {event} {_clean(key)} {exec_id} {attempt} {os.getpid()} "
            f"{time.monotonic():.6f} {time.time():.6f} {_clean(job_id)}"
        )


class ProducerLog:
    """Written by producers: one line per enqueue attempt with its outcome."""

    def __init__(self, directory: str | Path) -> None:
        self._file = _AppendFile(Path(directory), "enq")

    def record(
        self,
        key: str,
        outcome: Outcome,
        mono_invoke: float,
        mono_done: float,
        job_id: str = "-",
        error: str = "",
    ) -> None:
        self._file.write(
            f"enq {_clean(key)} {outcome} {os.getpid()} {mono_invoke:.6f} {mono_done:.6f} "
            f"{time.time():.6f} {_clean(job_id)} {_clean(error)[:200]}"
        )


@dataclass(frozen=True)
class RunEvent:
    event: str
    key: str
    exec_id: str
    attempt: str
    pid: int
    mono: float
    wall: float
    job_id: str


@dataclass(frozen=True)
class EnqueueEvent:
    key: str
    outcome: str
    pid: int
    mono_invoke: float
    mono_done: float
    wall: float
    job_id: str
    error: str


def read_ledger(directory: str | Path) -> tuple[list[RunEvent], list[EnqueueEvent]]:
    """All events of a ledger directory. A torn last line (writer killed mid-write) is skipped."""
    runs: list[RunEvent] = []
    enqs: list[EnqueueEvent] = []
    for line in _lines(Path(directory)):
        parts = line.split(" ")
        try:
            if parts[0] == "run" and len(parts) >= 8:
                runs.append(
                    RunEvent(
                        parts[1],
                        parts[2],
                        parts[3],
                        parts[4],
                        int(parts[5]),
                        float(parts[6]),
                        float(parts[7]),
                        parts[8] if len(parts) > 8 else "-",
                    )
                )
            elif parts[0] == "enq" and len(parts) >= 7:
                enqs.append(
                    EnqueueEvent(
                        parts[1],
                        parts[2],
                        int(parts[3]),
                        float(parts[4]),
                        float(parts[5]),
                        float(parts[6]),
                        parts[7] if len(parts) > 7 else "-",
                        " ".join(parts[8:]),
                    )
                )
        except (ValueError, IndexError):
            continue
    return runs, enqs


def _lines(directory: Path) -> Iterator[str]:
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*.log")):
        with path.open(errors="replace") as f:
            for line in f:
                if line.endswith("\n"):
                    yield line.rstrip("\n")
