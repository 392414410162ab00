"""The README's first steps, run as written: `make run` (= `jobq up --demo`) in an empty
folder, the quick start's second shell, and "Your own tasks" (its files written from the
README's blocks, its commands run in a shell) printing 3."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.upstack import REPO, commands, fenced_blocks, jobq_up, run_shell, shell_env

README = (REPO / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(title)
    end = re.compile(r"^#{2,3} ", re.MULTILINE).search(README, start + len(title))
    return README[start:end.start() if end else None]


def test_make_run_is_what_the_readme_says() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "\trun: $(STAMP)\n\t$(BIN)/jobq up --demo\n".lstrip("\t") in makefile
    assert "make run          # = .venv/bin/jobq up --demo" in README


def test_quick_start_and_your_own_tasks(tmp_path: Path) -> None:
    quick = fenced_blocks(_section("## Quick start"), "sh")
    own = _section("### Your own tasks")
    files = fenced_blocks(own, "python")
    assert [b.splitlines()[0] for b in files] == ["# myapp/tasks.py", "# myapp/produce.py"]
    for block in files:
        path = tmp_path / block.splitlines()[0].removeprefix("# ")
        path.parent.mkdir(exist_ok=True)
        path.write_text(block)
    [own_shell] = fenced_blocks(own, "sh")
    env = shell_env()
    with jobq_up(tmp_path, env, commands(quick[0])[0].replace("make run", "jobq up --demo")):
        enqueue, info = commands(quick[1])
        run = run_shell(enqueue, tmp_path, env)
        assert (run.returncode, run.stdout) == (0, "3\n"), run.stderr
        run = run_shell(info, tmp_path, env)
        assert run.returncode == 0 and "demo" in run.stdout, run.stderr
        run = run_shell("\n".join(commands(own_shell)), tmp_path, env)
        assert (run.returncode, run.stdout) == (0, "3\n"), run.stderr
        # jobq up's own worker did not take (and, not knowing it, kill) the job.
        dead = run_shell("jobq jobs dead --queue default --json", tmp_path, env)
        assert json.loads(dead.stdout)["total"] == 0, dead.stdout
