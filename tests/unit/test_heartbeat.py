"""Aside: the heartbeat's one-run-at-a-time runner (no server)."""

from __future__ import annotations

import threading

from jobq_core.worker.heartbeat import Aside


def test_one_run_at_a_time_in_a_named_daemon_thread_and_again_once_it_ended() -> None:
    entered = threading.Semaphore(0)
    release = threading.Event()
    threads: list[threading.Thread] = []

    def work() -> None:
        threads.append(threading.current_thread())
        entered.release()
        release.wait(10)

    aside = Aside(work, "jobq-test")
    aside.start()
    assert entered.acquire(timeout=10)
    aside.start()  # the first run goes on: no second one, and none queued
    assert [t for t in threading.enumerate() if t.name == "jobq-test"] == threads
    release.set()
    threads[0].join(10)
    assert len(threads) == 1
    assert threads[0].name == "jobq-test" and threads[0].daemon
    aside.start()  # the first run ended: a new one
    assert entered.acquire(timeout=10)
    assert len(threads) == 2 and threads[1] is not threads[0]
    threads[1].join(10)
