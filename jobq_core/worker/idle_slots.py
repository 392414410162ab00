"""The process slots waiting for a job on their mailbox (Pool.next_or_handed), and the wait
for all of them to be: a job claimed while one waits goes to the lowest-numbered one
(Pool.submit), and so does a fully idle pool's wait (child_wait.py), so that an idle worker's
jobs keep going to the same warm child.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .ledger import Ledger

if TYPE_CHECKING:
    from .process_slot import ProcessSlot


class IdleSlots:
    """The waiting process slots of a pool of `total` slots, guarded by `ledger.cond`: the
    caller holds it for every method but wait_all_idle. A slot waits here only while the pool's
    inbox is empty, so a job goes to one of them only when no job is ahead of it."""

    def __init__(self, ledger: Ledger, total: int) -> None:
        self._ledger = ledger
        self._total = total
        self._slots: list[ProcessSlot] = []
        self._waiters = 0  # threads in wait_all_idle

    def __len__(self) -> int:
        return len(self._slots)

    def add(self, slot: ProcessSlot) -> None:
        """`slot` waits for a job."""
        self._slots.append(slot)
        # Waking the condition's waiters only when one waits for this keeps the worker loop
        # from waking at every job's end twice (the ledger notifies as the job leaves it).
        if self._waiters:
            self._ledger.cond.notify_all()

    def first(self) -> ProcessSlot:
        """The lowest-numbered waiting slot (one must wait), left waiting."""
        return min(self._slots, key=lambda s: s.index)

    def remove(self, slot: ProcessSlot) -> None:
        """`slot` no longer waits (it was given a job, or reserved for a wait)."""
        self._slots.remove(slot)

    def take_all(self) -> list[ProcessSlot]:
        """Every waiting slot, none waiting any more (the pool stops)."""
        slots, self._slots = self._slots, []
        return slots

    def all_idle(self) -> bool:
        """Whether the pool is fully idle: no job held, and every slot waiting here."""
        return not self._ledger.held and len(self._slots) == self._total

    def wait_all_idle(self, timeout_s: float) -> bool:
        """Wait (up to `timeout_s`) until all_idle(); whether it is. Takes the condition."""
        cond = self._ledger.cond
        with cond:
            self._waiters += 1
            try:
                return cond.wait_for(self.all_idle, timeout_s)
            finally:
                self._waiters -= 1
