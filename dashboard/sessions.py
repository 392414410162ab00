"""Login sessions kept server-side, so that ending one ends it everywhere.

The signed session cookie holds only the account name and a random session id. The id's
record lives in Redis (shared by every web process) with the role and password fingerprint
the login was made with. Logout deletes the record, so a copy of the cookie taken before
is refused afterwards; a password or role change makes every record of that account stale,
and stale records are refused and deleted when next presented.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

import redis

from jobq_core import Settings
from jobq_core.connection import redis_errors
from jobq_core.keys import Keyspace, LegacyKeyspace

from .auth import Account


def _digest(session_id: str) -> str:
    # Keys name the hash, not the id: reading Redis's key list does not hand out sessions.
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """Create, check and end login sessions; records expire with the cookie's lifetime."""

    def __init__(self, settings: Settings, client: redis.Redis, lifetime_s: int) -> None:
        self.settings = settings
        self.client = client
        self.keys = Keyspace(settings.prefix)
        self.old = LegacyKeyspace(settings.prefix)
        self.lifetime_s = lifetime_s

    @redis_errors
    def create(self, account: Account) -> str:
        """A new session id for `account`."""
        session_id = secrets.token_urlsafe(32)
        record = {"name": account.name, "role": account.role, "fp": account.fingerprint}
        self.client.set(self.keys.dashboard_session(_digest(session_id)), json.dumps(record),
                        ex=self.lifetime_s)
        return session_id

    @redis_errors
    def valid(self, session_id: str, account: Account) -> bool:
        """True when the session exists and was made for this account as it is now (same
        role, same password); a stale record is deleted."""
        if not session_id or len(session_id) > 100:
            return False
        key = self.keys.dashboard_session(_digest(session_id))
        raw = self.client.get(key) or self._from_old_dashboard(session_id)
        if raw is None:
            return False
        try:
            record = json.loads(raw)
        except ValueError:
            record = {}
        if record == {"name": account.name, "role": account.role, "fp": account.fingerprint}:
            return True
        self._delete(session_id)
        return False

    def _from_old_dashboard(self, session_id: str) -> str | None:
        """A session an older jobq's dashboard created (its key name before the control slot:
        layout.py), e.g. on an old pod during a rolling deploy after the migration ran:
        copied to the new name with its TTL, so the user stays logged in."""
        old = self.old.dashboard(f"session:{_digest(session_id)}")
        raw: Any = self.client.get(old)
        ttl: Any = self.client.pttl(old) if raw is not None else -2
        if raw is None or int(ttl) == -2:
            return None
        self.client.set(self.keys.dashboard_session(_digest(session_id)), raw,
                        px=int(ttl) if int(ttl) > 0 else None)
        return str(raw)

    def _delete(self, session_id: str) -> None:
        # Both names: an old dashboard during a rolling deploy reads the old one.
        digest = _digest(session_id)
        self.client.delete(self.keys.dashboard_session(digest))
        self.client.delete(self.old.dashboard(f"session:{digest}"))

    @redis_errors
    def end(self, session_id: str) -> None:
        """Delete the session's record: every copy of its cookie stops working."""
        if session_id and len(session_id) <= 100:
            self._delete(session_id)
