"""Redis clients with timeouts on every connection, and translation of redis-py errors."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import redis

from .config import Settings
from .errors import ConfigError, JobqError, RedisUnavailable

P = ParamSpec("P")
T = TypeVar("T")


def connect(settings: Settings, *, blocking: bool = False) -> redis.Redis:
    """A client for `settings.redis_url` with socket and connect timeouts.

    `blocking=True` gives a client whose socket timeout outlasts the longest blocking
    command jobq issues (BZPOPMIN for `block_s`), so a wait is never cut short, while a
    server that stops answering is still noticed.
    """
    timeout = settings.socket_timeout_s + (settings.block_s if blocking else 0.0)
    try:
        return redis.Redis.from_url(
            settings.redis_url,
            decode_responses=True,
            protocol=2,
            socket_timeout=timeout,
            socket_connect_timeout=settings.connect_timeout_s,
            health_check_interval=30,
            client_name="jobq",
        )
    except ValueError as exc:
        raise ConfigError(f"bad Redis URL {settings.redis_url!r}: {exc}") from None


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@contextmanager
def translated(url: str) -> Iterator[None]:
    """Turn redis-py connection errors into RedisUnavailable (and OOM into a clear JobqError)."""
    try:
        yield
    except JobqError:  # ours (some are OSError subclasses, e.g. Timeout): pass through
        raise
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise RedisUnavailable(
            f"cannot reach Redis at {_redact(url)}: {exc}. Is it running? "
            "Set JOBQ_REDIS_URL (or REDIS_URL) to where it is."
        ) from exc
    except redis.ResponseError as exc:
        text = str(exc)
        if text.startswith("OOM"):
            raise JobqError(
                f"Redis is out of memory and refused the write ({text}); nothing was queued. "
                "Raise maxmemory or drain/purge jobs."
            ) from exc
        if text.startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
            raise JobqError(f"Redis refused jobq's credentials: {text}") from exc
        if text.startswith("READONLY"):
            raise RedisUnavailable(f"Redis is a read-only replica: {text}") from exc
        raise


def redis_errors(method: Callable[P, T]) -> Callable[P, T]:
    """Decorator for methods of objects with a `settings` attribute: translate Redis errors."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        settings: Settings = args[0].settings  # type: ignore[attr-defined]
        with translated(settings.redis_url):
            return method(*args, **kwargs)

    return wrapper


def server_info(client: redis.Redis) -> dict[str, Any]:
    """INFO server+memory fields jobq reports (version, memory, eviction policy)."""
    info: dict[str, Any] = {}
    for section in ("server", "memory", "clients"):
        info.update(client.info(section))
    return info
