"""How every jobq process finds the Redis of a `jobq up` running nearby.

`jobq up` writes the URL of its Redis to `<data dir>/redis-url` while it runs (and removes the
file when it stops). `Settings.from_env()` calls `find()` when no URL is configured, so
`Queue()`, `Worker`, the scheduler, the dashboard and every `jobq` command started in that
folder, or in a folder below it, use that Redis with no setup. A file left by a `jobq up` that
was killed outright is ignored: its Redis must answer a connect.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

# Where `jobq up` keeps its data unless told otherwise (Settings.data_dir, JOBQ_DATA_DIR).
DEFAULT_DATA_DIR = ".jobq"
URL_FILE = "redis-url"
# A Redis on this machine refuses or accepts a connect at once; this only bounds a wedged one.
CONNECT_TIMEOUT_S = 0.5

# (url file, its mtime_ns) -> URL, so a process that builds many Queue() objects connects to
# check a found server once, not per Queue.
_seen: dict[tuple[str, int], str] = {}


def publish(data_dir: Path, url: str) -> Path:
    """Record `url` as the Redis of the `jobq up` using `data_dir`; returns the file."""
    path = data_dir / URL_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(url + "\n")
    tmp.replace(path)  # atomic: a reader never sees half a URL
    return path


def withdraw(data_dir: Path) -> None:
    """Remove the record `publish` wrote (a stopping `jobq up`)."""
    with contextlib.suppress(FileNotFoundError):
        (data_dir / URL_FILE).unlink()


def find(data_dir: str = DEFAULT_DATA_DIR, start: Path | None = None) -> str | None:
    """The URL of a live `jobq up` Redis, or None.

    A relative `data_dir` is looked for in `start` (default: the current folder) and then in
    each folder above it, nearest first, as git finds `.git`; an absolute one is used as it
    is. The first URL file found decides: if its Redis does not answer, the result is None.
    """
    base = Path(data_dir)
    if base.is_absolute():
        candidates = [base / URL_FILE]
    else:
        try:
            here = (start or Path.cwd()).resolve()
        except OSError:  # the current folder was deleted
            return None
        candidates = [folder / base / URL_FILE for folder in (here, *here.parents)]
    for path in candidates:
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            continue
        key = (str(path), mtime)
        if key in _seen:
            return _seen[key]
        try:
            url = path.read_text().strip()
        except OSError:
            return None
        if not _answers(url):
            return None
        _seen[key] = url
        return url
    return None


def _answers(url: str) -> bool:
    """Whether something accepts a connection at `url` (a unix socket or a local port, or
    the first node of a `redis+cluster://` URL)."""
    if url.startswith("unix://"):
        family, address = socket.AF_UNIX, url.removeprefix("unix://").split("?", 1)[0]
        target: str | tuple[str, int] = address
    elif url.startswith(("redis://", "redis+cluster://")):
        # A cluster (`jobq up --cluster N`): its first node stands for it.
        rest = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
        hostport = rest.rpartition("@")[2].split(",", 1)[0]
        host, _, port = hostport.rpartition(":")
        if not port.isdigit():
            return False
        family, target = socket.AF_INET, (host.strip("[]") or "127.0.0.1", int(port))
        if ":" in host:
            family = socket.AF_INET6
    else:
        return False
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect(target)
        except OSError:
            return False
    return True
