"""Rate and concurrency limits shared by every worker of a queue.

    q.set_limit("myapp.tasks.call_api", concurrency=10, rate=100, per_s=60)
    q.enqueue_call(call_api, args=(...), limit_key="api.example.com")  # a key of your own

A limit is stored in the queue's limits hash under a *limit key*: a task name (the default
key of every job) or any string jobs name with `limit_key=`. claim.lua enforces it: a job
over its limit is parked (out of pending, so the jobs behind it still run, and nobody polls
it) and goes back to pending when the limit has room; see the header of lua/claim.lua.
Limits are per queue, because a script only sees one queue's keys (one cluster slot).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError
from .registry import resolve

MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class Limit:
    """At most `concurrency` jobs of `key` processing at once and at most `rate` started in
    any window of `per_s` seconds; 0 means no cap of that kind. The rate is kept as a log of
    the period's start times, so it costs memory in proportion to `rate`."""

    key: str
    concurrency: int = 0
    rate: int = 0
    per_s: float = 60.0

    def __post_init__(self) -> None:
        check_limit_key(self.key)
        for name in ("concurrency", "rate"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be a non-negative int, not {value!r}")
        if not isinstance(self.per_s, int | float) or not math.isfinite(self.per_s) \
                or self.per_s < 0.001:
            raise ConfigError(f"per_s must be at least 0.001 seconds, not {self.per_s!r}")
        if not self.concurrency and not self.rate:
            raise ConfigError("a limit needs concurrency or rate (or use remove_limit)")

    def encode(self) -> str:
        return f"{self.concurrency} {self.rate} {round(self.per_s * 1000)}"

    @classmethod
    def decode(cls, key: str, raw: str) -> Limit | None:
        try:
            conc, rate, per_ms = (int(x) for x in raw.split())
            return cls(key, conc, rate, per_ms / 1000)
        except (ValueError, ConfigError):
            return None


def check_limit_key(key: object) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise ConfigError(f"a limit key is a string of 1-{MAX_KEY_LENGTH} characters, "
                          f"not {key!r}")
    return key


def limit_key_of(ref: object) -> str:
    """The limit key for a task (its name), a registered function, or a plain string."""
    if isinstance(ref, str):
        return check_limit_key(ref)
    return resolve(ref)[0]
