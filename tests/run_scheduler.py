"""A scheduler process for tests: `python -m tests.run_scheduler NAME EVERY_S LEDGER`.

Settings come from the environment (tests.helpers.worker_env plus JOBQ_SCHEDULER_LEASE_S);
the schedule's jobs run tests.tasks.record_tick(LEDGER) and keep no result (result_ttl_s=0),
so a tick fired twice would show as two lines in the ledger.
"""

from __future__ import annotations

import logging
import sys

from jobq_core import Schedule, Settings, run_scheduler

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(name)s: %(message)s")
    name, every_s, ledger = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    run_scheduler(Settings.from_env(), schedules=[
        Schedule(name, "tests.tasks.record_tick", every_s=every_s, args=(ledger,),
                 options={"result_ttl_s": 0})])
