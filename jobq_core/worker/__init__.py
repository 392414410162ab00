"""The worker: a supervisor over fetch (claim), a pool of slots (run) and a heartbeat."""

from .supervisor import Worker

__all__ = ["Worker"]
