"""Who may use the dashboard: accounts from Settings, password checks, roles.

Two roles: `admin` sees everything and may act; `readonly` sees everything and changes
nothing. Passwords are stored only as werkzeug hashes (scrypt by default; make one with
`python -m dashboard.hashpw`). Every check runs the hash comparison even for an unknown
user name, and compares names with hmac.compare_digest, so timing tells nothing.
With no account configured the dashboard serves this machine only (exposure.py).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from flask import request
from werkzeug.security import check_password_hash, generate_password_hash

from jobq_core import ConfigError, Settings

ADMIN = "admin"
READONLY = "readonly"
# Compared against when the user name is unknown, so both paths cost one hash check.
_DUMMY_HASH = generate_password_hash("not a password")


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    password_hash: str

    @property
    def fingerprint(self) -> str:
        """Changes when the password changes, which ends the sessions made with the old one."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class User:
    """The person behind the current request; `via` is session | basic | loopback."""

    name: str
    role: str
    via: str

    @property
    def can_act(self) -> bool:
        return self.role == ADMIN


class Accounts:
    """The configured accounts (at most one admin and one read-only)."""

    def __init__(self, settings: Settings) -> None:
        self.accounts: list[Account] = []
        for role, name, digest, env in (
            (ADMIN, settings.dashboard_user, settings.dashboard_password_hash,
             "JOBQ_DASHBOARD_USER / JOBQ_DASHBOARD_PASSWORD_HASH"),
            (READONLY, settings.dashboard_readonly_user,
             settings.dashboard_readonly_password_hash,
             "JOBQ_DASHBOARD_READONLY_USER / JOBQ_DASHBOARD_READONLY_PASSWORD_HASH"),
        ):
            if not name and not digest:
                continue
            if not name or not digest:
                raise ConfigError(f"set both {env}, or neither")
            if not digest.startswith(("scrypt:", "pbkdf2:")):
                raise ConfigError(f"{env.split(' / ')[1]} is not a password hash; make one "
                                  "with `python -m dashboard.hashpw`")
            self.accounts.append(Account(name, role, digest))
        if len({a.name for a in self.accounts}) < len(self.accounts):
            raise ConfigError("the admin and read-only dashboard users must have different names")

    @property
    def configured(self) -> bool:
        return bool(self.accounts)

    def verify(self, name: str, password: str) -> Account | None:
        """The account if name and password match, else None (constant-time in both)."""
        found: Account | None = None
        for account in self.accounts:
            if hmac.compare_digest(account.name.encode(), name.encode()):
                found = account
        ok = check_password_hash(found.password_hash if found else _DUMMY_HASH, password)
        return found if ok and found is not None else None

    def by_name(self, name: str) -> Account | None:
        for account in self.accounts:
            if account.name == name:
                return account
        return None


def hash_password(password: str) -> str:
    """A salted scrypt hash for JOBQ_DASHBOARD_PASSWORD_HASH."""
    return generate_password_hash(password)


def basic_credentials() -> tuple[str, str] | None:
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return None
    return auth.username or "", auth.password or ""
