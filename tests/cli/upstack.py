"""Helpers for tests that run `jobq up` and other commands as a new user would: real
subprocesses in an empty folder, a shell environment without jobq or Redis variables."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shell_env() -> dict[str, str]:
    """An environment like a fresh shell after `source .venv/bin/activate`: no jobq or
    Redis variables, and a PATH of the venv's bin then the system's (no redis-server there
    is not guaranteed, which is fine: tests that need the embedded binary say so)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("JOBQ_") and k not in ("REDIS_URL", "PORT", "COLUMNS",
                                                       "PYTHONPATH")}
    env["PATH"] = f"{BIN}{os.pathsep}/usr/bin{os.pathsep}/bin"
    env["VIRTUAL_ENV"] = str(BIN.parent)
    env["JOBQ_DASHBOARD_PORT"] = str(free_port())  # the default 5000 may be taken
    return env


class Output:
    """Collects a process's output lines in a thread and waits for a pattern."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_for(self, pattern: str, timeout_s: float = 30) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while True:
                for line in self.lines:
                    if m := rx.search(line):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching {pattern!r} in:\n" +
                                         "\n".join(self.lines))
                self.cond.wait(left)


@contextmanager
def jobq_up(cwd: Path, env: dict[str, str], command: str = "jobq up --demo",
            ) -> Iterator[Output]:
    """Run `command` (a `jobq up` line) in `cwd` until it says it is ready; yields its output.
    Stops it with Ctrl-C (SIGINT) at the end and checks it stopped cleanly."""
    argv = shlex.split(command)
    proc = subprocess.Popen(argv, cwd=cwd, env=env, executable=str(BIN / argv[0]),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = Output(proc)
    try:
        out.wait_for(r"press Ctrl-C to stop everything", timeout_s=60)
        yield out
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, "\n".join(out.lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def run_shell(script: str, cwd: Path, env: dict[str, str], timeout_s: float = 90,
              ) -> subprocess.CompletedProcess[str]:
    """Run `script` (lines as a user types them) with bash -e in `cwd`."""
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout_s)


def fenced_blocks(markdown: str, lang: str) -> list[str]:
    """The bodies of the ```lang blocks of a Markdown text, in order."""
    return [m.group(1) for m in re.finditer(rf"^```{lang}\n(.*?)^```", markdown,
                                            re.MULTILINE | re.DOTALL)]


def commands(block: str) -> list[str]:
    """The commands of a shell block: each line without its trailing `# comment`."""
    lines = []
    for line in block.splitlines():
        code = re.sub(r"\s+#.*$", "", line).rstrip()
        if code and not code.startswith("#"):
            lines.append(code)
    return lines
