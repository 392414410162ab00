"""One driver per measured system; ``DRIVERS`` maps a system name to its driver class."""

from __future__ import annotations

from bench.drivers.arq import ArqDriver
from bench.drivers.base import Driver, Variant
from bench.drivers.celery import CeleryDriver
from bench.drivers.dramatiq import DramatiqDriver
from bench.drivers.huey import HueyDriver
from bench.drivers.jobq import JobqDriver
from bench.drivers.rq import RqDriver
from bench.drivers.saq import SaqDriver
from bench.drivers.taskiq import TaskiqDriver

DRIVERS: dict[str, type[Driver]] = {
    driver.name: driver
    for driver in (
        JobqDriver, RqDriver, CeleryDriver, DramatiqDriver, HueyDriver, ArqDriver, SaqDriver,
        TaskiqDriver,
    )
}

__all__ = ["DRIVERS", "Driver", "Variant"]
