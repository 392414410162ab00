"""The dashboard's handle on jobq for the current app, and the user of the current request.

A leaf: views and helpers import these two functions from here, never from the app factory.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g

from jobq_core import Settings
from jobq_core.admin import Admin
from jobq_core.inspect import Inspector

from .auth import Accounts, User
from .sessions import SessionStore
from .throttle import LoginThrottle

EXTENSION = "jobq_dashboard"


@dataclass(frozen=True)
class Engine:
    """The dashboard's handles on jobq: one Redis client (and pool) per app."""

    settings: Settings
    inspector: Inspector
    admin: Admin
    accounts: Accounts
    sessions: SessionStore
    throttle: LoginThrottle


def engine() -> Engine:
    """The current app's Engine (set up when the dashboard blueprint was registered)."""
    eng: Engine = current_app.extensions[EXTENSION]
    return eng


def current_user() -> User:
    """Who made the current request (set by the authentication hook before any view)."""
    user: User = g.jobq_user
    return user
