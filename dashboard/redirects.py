"""Where a redirect may go after login: a path on this site, never another one."""

from __future__ import annotations


def safe_next(path: str) -> str:
    """`path` when it is a plain local path ("/jobs/failed?queue=all"), else "/"."""
    path = path.rstrip("?")
    return path if path.startswith("/") and not path.startswith("//") and len(path) < 2000 \
        else "/"
