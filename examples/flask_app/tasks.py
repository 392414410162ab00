"""The example app's tasks."""

from __future__ import annotations

from jobq_core import task


# An explicit name: by default a task is named after the module path it was imported by,
# and `examples.flask_app.tasks` (the app) and `tasks` (a worker started in this folder with
# --import tasks) would be two names for one function.
@task(name="flask_app.word_count", max_retries=1, timeout_s=30)
def word_count(text: str) -> dict[str, int]:
    """Count words and characters of `text`."""
    if not text.strip():
        raise ValueError("nothing to count: the text is empty")
    return {"words": len(text.split()), "characters": len(text)}
