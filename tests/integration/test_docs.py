"""Every code block of README.md and docs/*.md runs as written, against the session's Redis.

Per Markdown file, in a fresh folder and a fresh Python process:
- a ```python block whose first line is `# <path>.py` is that file: it is written there
  (e.g. `# myapp/tasks.py`), so later blocks and commands can import it;
- every other ```python block runs, in the order of the page, in one namespace (a page may
  set up names in one block and use them in the next, as a reader does);
- then every ```sh / ```bash block runs in bash -e, a command per line.
JOBQ_REDIS_URL and JOBQ_PREFIX point at the test's Redis and key prefix. A block is left out
only when the line before its fence is a visible marker with a reason:
`<!-- docs-test: skip (why) -->`. Blocks without a language (output, config) are text.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobq_core import Settings
from tests.cli.upstack import BIN, REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
SKIP = re.compile(r"<!-- docs-test: skip \((.+?)\) -->\s*$")
FILE_HEADER = re.compile(r"# ([\w/.-]+\.py)\s*$")

# The guard: a worker's process pool starts its children with multiprocessing's spawn, which
# imports the main module again (as __mp_main__); the blocks must not run twice.
RUNNER = textwrap.dedent("""
    import json, sys
    if __name__ == "__main__":
        sys.path.insert(0, ".")
        namespace = {"__name__": "__main__"}
        for block in json.load(open(sys.argv[1])):
            exec(compile(block["code"], block["where"], "exec"), namespace)
""")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    code: str
    skip: str | None  # the marker's reason

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"

    @property
    def file(self) -> str | None:
        """The path a file block stands for (its `# path.py` first line)."""
        m = FILE_HEADER.fullmatch(self.code.split("\n", 1)[0])
        return m.group(1) if self.lang == "python" and m else None


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.search(before)
        found.append(Block(page, line, m.group(1), m.group(2), skip.group(1) if skip else None))
    return found


def test_every_skip_has_a_reason_and_skips_are_few() -> None:
    every = [b for page in PAGES for b in blocks(page) if b.lang]
    skipped = [b for b in every if b.skip]
    assert all(b.skip and len(b.skip) > 10 for b in skipped)
    assert len(skipped) * 3 < len(every), [b.where for b in skipped]
    for page in PAGES:  # a marker that does not sit on a fence is a typo
        text = page.read_text()
        for m in re.finditer(r"<!-- docs-test:.*-->", text):
            assert SKIP.search(m.group(0)), f"{page.name}: bad marker {m.group(0)!r}"
            assert text[m.end():].lstrip(" ").startswith("\n```"), \
                f"{page.name}: marker {m.group(0)!r} is not right before a fence"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_page_runs_as_written(page: Path, settings: Settings, tmp_path: Path) -> None:
    page_blocks = [b for b in blocks(page) if b.lang in ("python", "sh", "bash") and not b.skip]
    if not page_blocks:
        pytest.skip(f"{page.name} has no code blocks to run")
    for b in page_blocks:
        if b.file:
            path = tmp_path / b.file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(b.code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env.update(JOBQ_REDIS_URL=settings.redis_url, JOBQ_PREFIX=settings.prefix,
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    env.pop("PYTHONPATH", None)
    code = [{"code": b.code, "where": b.where} for b in page_blocks
            if b.lang == "python" and not b.file]
    (tmp_path / "blocks.json").write_text(json.dumps(code))
    (tmp_path / "run_blocks.py").write_text(RUNNER)
    run = subprocess.run([sys.executable, "run_blocks.py", "blocks.json"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"python blocks of {page.name}:\n{run.stderr[-4000:]}"
    for b in page_blocks:
        if b.lang in ("sh", "bash"):
            shell = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", b.code], cwd=tmp_path,
                                   env=env, capture_output=True, text=True, timeout=120)
            assert shell.returncode == 0, f"{b.where}:\n{b.code}\n{shell.stderr[-4000:]}"
