"""Where a redirect may go after login: a path on this site, never another one."""

from __future__ import annotations

import re

# One "/", then a non-slash, then printable ASCII only. Browsers drop tabs and newlines
# from a URL and read "\\" as "/", so "/\t/evil.example" and "/\\evil.example" both become
# "//evil.example" (another site); non-ASCII slashes and spaces are refused for the same
# reason. Backslashes are refused anywhere.
_LOCAL_PATH = re.compile(r"/[!-\[\]-~]*")
_MAX_LEN = 2000


def safe_next(path: str) -> str:
    """`path` when it is a plain local path ("/jobs/failed?queue=all"), else "/"."""
    path = path.removesuffix("?")
    if len(path) > _MAX_LEN or not _LOCAL_PATH.fullmatch(path) or path.startswith("//"):
        return "/"
    return path
