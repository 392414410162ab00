"""Start benchmark processes in their own process groups, stop them, and measure their CPU.

Every process the harness starts (Redis, workers, producers) is a session leader, so one
``killpg`` reaches everything it forked. The registry below remembers each group so that an
interrupted run still kills exactly the processes it started and nothing else.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_live_groups: set[int] = set()


def _kill_group(pgid: int, sig: int) -> bool:
    """Signal a whole group; False when nothing of it is left."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        # the id was reused by a process we do not own: it is not ours to kill
        return False


def kill_all_groups() -> None:
    """SIGKILL every process group this harness started and has not reaped yet."""
    for pgid in sorted(_live_groups):
        _kill_group(pgid, signal.SIGKILL)
    _live_groups.clear()


atexit.register(kill_all_groups)


def spawn(
    argv: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
    cwd: Path,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a new session with stdout+stderr to ``log_path``."""
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns the file after fork
    try:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()
    _live_groups.add(proc.pid)
    return proc


@dataclass
class StopResult:
    """How a group of worker processes ended."""

    graceful: bool
    # utime+stime of the leaders and every child they reaped; None when a leader had to be
    # SIGKILLed (its children's time is then lost)
    cpu_s: float | None
    returncodes: list[int | None] = field(default_factory=list)


def _reap(proc: subprocess.Popen[bytes], deadline: float) -> tuple[bool, float]:
    """Wait for one leader until ``deadline`` with wait4, which also reports its CPU time."""
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return True, usage.ru_utime + usage.ru_stime
        if time.monotonic() >= deadline:
            return False, 0.0
        time.sleep(0.02)


def stop_group(procs: Sequence[subprocess.Popen[bytes]], grace_s: float = 20.0) -> StopResult:
    """SIGTERM each leader (what a supervisor does), wait, then SIGKILL whatever is left.

    Only the leader gets SIGTERM so each library runs its own warm shutdown; the whole group gets
    SIGKILL afterwards so no pool child outlives the unit.
    """
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    graceful = True
    cpu = 0.0
    for proc in procs:
        if proc.returncode is not None:
            # already reaped by poll(): it died early and its CPU time is unknown
            graceful = False
            continue
        done, used = _reap(proc, deadline)
        if not done:
            graceful = False
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        cpu += used
    for proc in procs:
        # leftovers (a pool child that ignored its parent's exit) die with the group
        _kill_group(proc.pid, signal.SIGKILL)
        _live_groups.discard(proc.pid)
    return StopResult(
        graceful=graceful,
        cpu_s=cpu if graceful else None,
        returncodes=[proc.returncode for proc in procs],
    )


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    timeout_s: float,
) -> subprocess.CompletedProcess[str]:
    """Run a short-lived command in its own group; on timeout kill the group and raise."""
    proc = subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _live_groups.add(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        raise subprocess.TimeoutExpired(list(argv), timeout_s, output=out, stderr=err) from None
    finally:
        _kill_group(proc.pid, signal.SIGKILL)
        _live_groups.discard(proc.pid)
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def group_cpu_s(pgid: int) -> float:
    """CPU seconds used so far by the live members of a process group, and the children they reaped.

    Read from /proc (utime+stime+cutime+cstime of each member), so it can be sampled while the
    workers run: the difference between two samples is the CPU the drain itself cost, without
    the import and start-up work before the first job.
    """
    total_ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                raw = stat.read()
        except OSError:
            continue  # exited between listing and reading
        # the command name may contain spaces and parentheses: split after its closing paren
        fields = raw[raw.rfind(b")") + 2 :].split()
        if int(fields[2]) != pgid:
            continue
        total_ticks += sum(int(value) for value in fields[11:15])
    return total_ticks / _CLOCK_TICKS
