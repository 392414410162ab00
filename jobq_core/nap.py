"""A bounded pause for worker threads that works under libfaketime."""

from __future__ import annotations

import threading

# Never set: only waited on. Not time.sleep: under libfaketime with the monotonic clock left
# real (fault scenario 6), sleep's absolute-deadline clock_nanosleep fails with EINVAL, which
# made a worker exit (fetch) or crash a child's jobs as "worker error" (process slot).
_NEVER = threading.Event()


def nap(seconds: float) -> None:
    """Pause the calling thread for `seconds` (nothing when <= 0)."""
    _NEVER.wait(max(0.0, seconds))
