"""The example app's tasks."""

from __future__ import annotations

from jobq_core import task


@task(max_retries=1, timeout_s=30)
def word_count(text: str) -> dict[str, int]:
    """Count words and characters of `text`."""
    if not text.strip():
        raise ValueError("nothing to count: the text is empty")
    return {"words": len(text.split()), "characters": len(text)}
