"""Failed-login throttling, per client address and per account, shared by every web process.

A client or an account may fail `dashboard_login_free_attempts` times; each failure after
that makes it wait 1, 2, 4 ... seconds, at most `dashboard_login_lockout_max_s`, before the
next attempt is even checked (a 429 with Retry-After). Failures are forgotten 15 minutes
after the last one, and a successful login clears them.

So that an attacker guessing one account's password from elsewhere cannot keep its operator
out, the per-account wait does not apply to a client address that logged in to that account
in the last 30 days (its own per-client limit still does). Waits are Redis keys with a TTL,
so they follow Redis's clock and end by themselves.
"""

from __future__ import annotations

import hashlib

import redis

from jobq_core import Settings
from jobq_core.connection import redis_errors
from jobq_core.keys import Keyspace

FORGET_AFTER_S = 15 * 60  # failures are counted over this long a quiet spell
KNOWN_FOR_S = 30 * 24 * 3600  # how long a successful login exempts its address


def _digest(text: str) -> str:
    # Bounded key names whatever the user typed; the name itself never reaches a key.
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


class LoginThrottle:
    """Counts failed logins and says how long a client must wait before the next one."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.settings = settings
        self.client = client
        self.keys = Keyspace(settings.prefix)

    def _key(self, what: str, kind: str, digest: str) -> str:
        return self.keys.login_throttle(what, kind, digest)

    @redis_errors
    def wait_s(self, client: str, account: str) -> float:
        """Seconds before `client` may try to log in as `account` (0: now)."""
        c, a = _digest(client), _digest(account)
        pipe = self.client.pipeline(transaction=False)
        pipe.pttl(self._key("wait", "client", c))
        pipe.pttl(self._key("wait", "account", a))
        pipe.exists(self.keys.login_known(a, c))
        client_ms, account_ms, known = pipe.execute()
        if known:
            account_ms = 0
        return max(0, int(client_ms), int(account_ms)) / 1000

    @redis_errors
    def failed(self, client: str, account: str) -> float:
        """Count a failed login; returns the wait it starts (0 within the free attempts)."""
        pipe = self.client.pipeline(transaction=False)
        subjects = (("client", _digest(client)), ("account", _digest(account)))
        for kind, digest in subjects:
            pipe.incr(self._key("failures", kind, digest))
            pipe.expire(self._key("failures", kind, digest), FORGET_AFTER_S)
        counts = pipe.execute()[::2]
        longest = 0.0
        for (kind, digest), count in zip(subjects, counts, strict=True):
            wait = self._wait_for(int(count))
            if wait:
                self.client.set(self._key("wait", kind, digest), 1, px=int(wait * 1000))
                longest = max(longest, wait)
        return longest

    def _wait_for(self, failures: int) -> float:
        over = failures - self.settings.dashboard_login_free_attempts
        if over <= 0:
            return 0.0
        return float(min(self.settings.dashboard_login_lockout_max_s, 2.0 ** min(over - 1, 30)))

    @redis_errors
    def succeeded(self, client: str, account: str) -> None:
        """Forget the failures of this client and account; exempt this client from the
        account's wait for KNOWN_FOR_S."""
        c, a = _digest(client), _digest(account)
        pipe = self.client.pipeline(transaction=False)
        for kind, digest in (("client", c), ("account", a)):
            pipe.delete(self._key("failures", kind, digest), self._key("wait", kind, digest))
        pipe.set(self.keys.login_known(a, c), 1, ex=KNOWN_FOR_S)
        pipe.execute()
