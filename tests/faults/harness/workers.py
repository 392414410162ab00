"""Start real worker processes, each in its own process group, and kill them in the ways that
matter.

Workers run as ``jobq worker ...`` subprocesses with ``start_new_session=True``: the worker parent
leads a new process group, so ``killpg`` takes the parent and its job children down together (a
machine or container crash), while ``kill_parent`` and ``kill_pids`` model the partial deaths that
break naive designs (an orphaned job child still running, a child killed under a live parent).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from .ledger import LEDGER_ENV

REPO_ROOT = Path(__file__).resolve().parents[3]
FAULT_TASKS = "tests.faults.tasks"


def jobq_command() -> list[str]:
    """The worker entry point: the ``jobq`` script beside this interpreter, else the module."""
    script = Path(sys.executable).with_name("jobq")
    if script.exists():
        return [str(script)]
    found = shutil.which("jobq")
    if found:
        return [found]
    return [sys.executable, "-m", "jobq_core.cli"]


@dataclass
class WorkerSpec:
    """Command-line settings of one worker; timings shrunk so scenarios finish in seconds."""

    url: str
    queues: Sequence[str] = ("faults",)
    imports: Sequence[str] = (FAULT_TASKS,)
    concurrency: int = 1
    pool: str = "process"
    lease_s: float = 3.0
    heartbeat_s: float = 1.0
    grace_s: float = 2.0
    burst: bool = False
    extra_args: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    faketime: str | None = None  # e.g. "+2m": run under libfaketime with the monotonic clock real
    role: str = "worker"  # or "scheduler": `jobq scheduler --url U --import M` (scenario 13)

    def argv(self) -> list[str]:
        if self.role == "scheduler":
            args = [*jobq_command(), "scheduler", "--url", self.url]
            for m in self.imports:
                args += ["--import", m]
            return args + list(self.extra_args)
        args = [*jobq_command(), "worker", "--url", self.url]
        for q in self.queues:
            args += ["--queue", q]
        for m in self.imports:
            args += ["--import", m]
        args += [
            "--concurrency",
            str(self.concurrency),
            "--pool",
            self.pool,
            "--lease-s",
            _num(self.lease_s),
            "--heartbeat-s",
            _num(self.heartbeat_s),
            "--grace-s",
            _num(self.grace_s),
        ]
        if self.burst:
            args.append("--burst")
        args += list(self.extra_args)
        if self.faketime:
            faketime = shutil.which("faketime")
            if not faketime:
                raise RuntimeError("faketime not installed: apt-get install faketime")
            # faketime execs the command, so the pid (and process group) stay the worker's own.
            args = [faketime, "-f", self.faketime, *args]
        return args


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


class WorkerProcess:
    """One running worker; remembers whether the test meant it to exit."""

    def __init__(self, spec: WorkerSpec, ledger_dir: Path, log_dir: Path, name: str) -> None:
        self.spec = spec
        self.name = name
        self.ledger_dir = ledger_dir
        self.log_path = log_dir / f"worker-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.meant_to_exit = False

    def start(self) -> WorkerProcess:
        env = dict(os.environ)
        env.update(self.spec.env)
        env[LEDGER_ENV] = str(self.ledger_dir)
        # The task module lives in the repo's tests/ folder, which is not installed.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.spec.faketime:
            # Without this libfaketime shifts time.monotonic() too, and durations would be skewed.
            env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.spec.argv(),
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("worker not started")
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def children(self) -> list[psutil.Process]:
        """Live descendants of the worker parent (job children, pool helpers)."""
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def group_pids(self) -> list[int]:
        """Every live process still in the worker's process group, orphans included."""
        pids = []
        for p in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(p.pid) == self.pid:
                    pids.append(p.pid)
            except (ProcessLookupError, PermissionError):
                continue
        return pids

    def send(self, sig: int = signal.SIGTERM, *, meant: bool = True) -> None:
        """Signal the parent only (SIGTERM = warm shutdown, SIGKILL = parent-only crash)."""
        self.meant_to_exit = self.meant_to_exit or meant
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group: parent and every job child at once."""
        self.meant_to_exit = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def kill_parent(self) -> None:
        self.send(signal.SIGKILL)

    @staticmethod
    def kill_pids(pids: Sequence[int], sig: int = signal.SIGKILL) -> None:
        """Kill given processes (job children found through the ledger or children())."""
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def wait(self, timeout_s: float) -> int | None:
        """Wait for the parent to exit; None if it is still running after timeout_s."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def exited_unexpectedly(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None and not self.meant_to_exit

    def log_text(self, tail: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-tail:])
        except OSError:
            return ""

    def cleanup(self) -> None:
        """Leave nothing behind: thaw and SIGKILL the group, including orphaned children."""
        if self.proc is None:
            return
        for sig in (signal.SIGCONT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
        self.wait(5)


_STARTED_POOL = re.compile(r" started: .*\bpool=(\w+)")


class Workers:
    """The worker processes of one scenario; counts unexpected exits for the figures."""

    def __init__(self, ledger_dir: Path, log_dir: Path) -> None:
        self.ledger_dir = ledger_dir
        self.log_dir = log_dir
        self.all: list[WorkerProcess] = []

    def start(self, spec: WorkerSpec, name: str | None = None) -> WorkerProcess:
        w = WorkerProcess(spec, self.ledger_dir, self.log_dir, name or str(len(self.all) + 1))
        self.all.append(w.start())
        return w

    def exits(self) -> int:
        return sum(1 for w in self.all if w.exited_unexpectedly())

    def pools_started(self) -> set[str]:
        """The pools the workers' own start lines name (``... started: ... pool=NAME ...``)."""
        found: set[str] = set()
        for w in self.all:
            try:
                text = w.log_path.read_text(errors="replace")
            except OSError:
                continue
            found.update(m.group(1) for m in _STARTED_POOL.finditer(text))
        return found

    def logs(self) -> str:
        return "\n".join(
            f"--- worker {w.name} (rc={w.returncode()}) ---\n{w.log_text()}" for w in self.all
        )

    def stop_all(self, grace_s: float = 5.0) -> None:
        """Warm-stop everyone (SIGTERM), then hard-kill whatever remains."""
        for w in self.all:
            if w.alive():
                w.send(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for w in self.all:
            w.wait(max(0.0, deadline - time.monotonic()))
        for w in self.all:
            w.cleanup()
