"""Fixtures and repetition for the fault suite.

Long scenarios carry ``@pytest.mark.faults`` (deselected by ``make test``'s ``-m "not faults"``,
selected by ``make faults``); the short forms of scenarios 1, 8, 10 and 11 are unmarked so the
default suite runs them. ``JOBQ_FAULTS_REPEAT=N`` runs every scenario N times;
``JOBQ_FAULTS_RESULTS=path`` makes each run append its figures there for ``report.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from .harness.scenario import RESULTS_ENV, Scenario
from .harness.server import ServerNotFound, find_server_binary
from .harness.workers import REPO_ROOT

REPEAT_ENV = "JOBQ_FAULTS_REPEAT"
# A hung scenario must fail, not hang `make faults`: no pytest-timeout here, so use SIGALRM.
SCENARIO_TIMEOUT_S = int(os.environ.get("JOBQ_FAULTS_TIMEOUT_S", "180"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # @pytest.mark.pools("process", "async"): the scenario runs once per worker pool.
    pools = metafunc.definition.get_closest_marker("pools")
    if pools is not None and "scenario" in metafunc.fixturenames:
        metafunc.fixturenames.append("fault_pool")
        metafunc.parametrize("fault_pool", pools.args, ids=lambda p: f"pool-{p}")
    repeat = int(os.environ.get(REPEAT_ENV, "1") or 1)
    if repeat > 1 and "scenario" in metafunc.fixturenames:
        metafunc.fixturenames.append("fault_rep")
        metafunc.parametrize("fault_rep", range(1, repeat + 1), ids=lambda i: f"run{i}")


@pytest.fixture
def fault_rep(request: pytest.FixtureRequest) -> int:
    return int(getattr(request, "param", 1))


@pytest.fixture
def fault_pool(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "process"))


class ScenarioTimeout(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise ScenarioTimeout(f"scenario exceeded {SCENARIO_TIMEOUT_S}s")


@pytest.fixture
def scenario(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scenario]:
    try:
        find_server_binary()
    except ServerNotFound as exc:
        pytest.skip(str(exc))
    s = Scenario(tmp_path, request.node.nodeid)
    # The pool comes from the test's own parameters: a fixture's `request.fixturenames` does
    # not list a name added in pytest_generate_tests, so checking it left every "async" run
    # on the process pool (make faults at 6b5c931 ran them so; record() now refuses that).
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and "fault_pool" in callspec.params:
        s.pool = str(callspec.params["fault_pool"])
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SCENARIO_TIMEOUT_S)
    try:
        yield s
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        s.close()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            keep_evidence(s, request.node.nodeid)


def keep_evidence(s: Scenario, nodeid: str) -> None:
    """Copy a failed run's ledger and logs where pytest's tmp pruning (3 runs, shared by every
    pytest on the machine) cannot delete them before someone reads them."""
    dest = REPO_ROOT / ".jobq" / "faults" / "failed" / re.sub(r"[^\w.-]+", "_", nodeid)
    shutil.rmtree(dest, ignore_errors=True)
    for part in ("ledger", "logs"):
        shutil.copytree(s.root / part, dest / part, dirs_exist_ok=True)
    for i, srv in enumerate(s.servers, 1):
        if srv.log_path.exists():
            shutil.copy(srv.log_path, dest / "logs" / f"redis{i}.log")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Open the raw results with the commit being measured (report.py writes it into the doc),
    taken now: a commit made while the suite runs must not be credited with its figures."""
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps({"run": _commit()}) + "\n")


def _commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        # The reports this run rewrites do not count as changes to the code measured.
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                    ":!docs/reliability.md", ":!docs/reliability")
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(dirty), "started": started}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown (no git)", "dirty": False, "started": started}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]  # read by the scenario fixture
    path = os.environ.get(RESULTS_ENV)
    # Record pass/fail of each scenario run next to its figures, so the table can say both.
    if path and report.when == "call" and "scenario" in getattr(item, "fixturenames", ()):
        message = ""
        if report.failed:
            message = str(getattr(report.longrepr, "reprcrash", "") or "")[:400]
        with open(path, "a") as fh:
            fh.write(
                json.dumps({"nodeid": item.nodeid, "outcome": report.outcome, "message": message})
                + "\n"
            )
