"""Ctrl-C in a terminal reaches the whole process group, the worker's fork server too, and
it can come while that fork server is still starting (first-day review, 2026-12-06)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from jobq_core import Queue, Settings
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
