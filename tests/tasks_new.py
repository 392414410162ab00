"""A task only some test workers import: "the new code" of a rolling deploy."""

from __future__ import annotations

from jobq_core import task


@task
def new_feature(path: str, text: str) -> str:
    with open(path, "a") as f:
        f.write(text + "\n")
    return text
