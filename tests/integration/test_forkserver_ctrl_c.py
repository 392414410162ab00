"""Stop signals around the process pool: Ctrl-C in a terminal reaches the whole process
group, the worker's fork server too, even while it is still starting; and a process a task
starts must still stop on SIGTERM (first-day review, 2026-12-06)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from jobq_core import Queue, Settings, Worker, task
from tests import tasks
from tests.helpers import ROOT, start_worker

# Imported by every Python process started with this folder on PYTHONPATH: the fork server
# (started as `python -c ...`) says it is starting up, then takes its time, as a busy
# machine's import of jobq_core does (~0.5 s), so that the signal lands in that window.
SLOW_START = '''
import os, pathlib, sys, time
if sys.argv[:1] == ["-c"] and "forkserver" in open("/proc/self/cmdline").read():
    pathlib.Path(os.environ["JOBQ_TEST_MARKER"]).touch()
    time.sleep(1.5)
'''


def test_ctrl_c_while_the_fork_server_starts_stops_cleanly(settings: Settings, queue: Queue,
                                                            tmp_path: Path) -> None:
    # Before: the fork server died of a KeyboardInterrupt mid-import (a traceback), and
    # each slot then logged "could not prepare for its next job" with an EOFError traceback.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_START)
    marker = tmp_path / "forkserver-starting"
    job = queue.enqueue(tasks.add, 1, 2)
    proc = start_worker(settings, "--pool", "process",
                        env={"PYTHONPATH": f"{site}{os.pathsep}{ROOT}",
                             "JOBQ_TEST_MARKER": str(marker)})
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline and proc.poll() is None, "no fork server started"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    out, _ = proc.communicate(timeout=60)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "Traceback" not in text and "could not prepare" not in text, text
    assert job.refresh().status in ("completed", "pending"), job.status  # not lost


@task(name="tests.signals.child_stop_signals")
def child_stop_signals() -> str:
    """What a process the task starts does with SIGTERM and SIGINT."""
    code = ("import signal as s; print(s.getsignal(s.SIGTERM) == s.SIG_DFL, "
            "s.getsignal(s.SIGINT) is s.default_int_handler)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_process_a_task_starts_can_be_stopped(settings: Settings, queue: Queue) -> None:
    # The job child ignored SIGINT and SIGTERM with SIG_IGN, which passes through exec:
    # every process a task started ignored them too, so proc.terminate() did nothing and a
    # task waiting for the process hung (first-day review, 2026-12-06).
    job = queue.enqueue(child_stop_signals)
    Worker(["default"], settings, pool="process", imports=["tests.tasks", __name__]).work(
        burst=True)
    assert job.result(timeout_s=1) == "True True"  # the defaults: SIGTERM stops it
