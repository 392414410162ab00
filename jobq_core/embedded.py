"""jobq inside a web app's process: worker threads in the background, stopped at exit, and
a Flask extension that takes its settings from `app.config`.

    worker = EmbeddedWorker(["default"], concurrency=4).start()   # returns at once

For a separate, supervised worker process use `jobq worker` instead: an embedded worker
shares the app's CPU, memory and lifetime.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .config import ENV_PREFIX, Settings
from .connection import connect
from .queue import Queue
from .worker import Worker

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("jobq.embedded")


class EmbeddedWorker:
    """A jobq worker running in background threads of this process.

    `start()` returns at once; `stop()` (also run at interpreter exit) stops claiming, lets
    running jobs finish within `grace_s` and hands back the rest, like SIGTERM does for
    `jobq worker`. The default pool is "thread" (no child processes in a web server).
    Start it after a server forks its workers (not in a gunicorn `--preload` master):
    threads do not survive fork, and `running` is False in a forked child.
    """

    def __init__(self, queues: Sequence[str] | str = ("default",), concurrency: int = 4, *,
                 settings: Settings | None = None, imports: Sequence[str] = (),
                 pool: str = "thread", name: str | None = None,
                 grace_s: float | None = None) -> None:
        base = settings or Settings.from_env()
        self.settings = base.replace(concurrency=concurrency, pool=pool,
                                     grace_s=base.grace_s if grace_s is None else grace_s)
        self.queues = [queues] if isinstance(queues, str) else list(queues)
        self.imports = list(imports)
        self.name = name
        self.worker: Worker | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return (self._thread is not None and self._thread.is_alive()
                and self._pid == os.getpid())

    def start(self) -> EmbeddedWorker:
        """Start the worker threads (no-op if running); raises JobqError/ImportError early."""
        with self._lock:
            if self.running:
                return self
            self.worker = Worker(self.queues, self.settings, imports=self.imports,
                                 name=self.name)
            self._thread = threading.Thread(target=self._run, args=(self.worker,),
                                            name="jobq-embedded-worker", daemon=True)
            self._pid = os.getpid()
            self._thread.start()
            # Daemon thread + atexit: the interpreter does not wait for daemon threads, and
            # atexit runs before it tears them down, so jobs get their grace period.
            atexit.register(self.stop)
        return self

    @staticmethod
    def _run(worker: Worker) -> None:
        try:
            worker.work()
        except Exception:
            log.exception("embedded worker %s stopped on an error", worker.id)

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop claiming, wait for running jobs (up to grace_s), hand back the rest."""
        with self._lock:
            worker, thread = self.worker, self._thread
            if worker is None or thread is None:
                return
            atexit.unregister(self.stop)
            if self._pid != os.getpid():  # a forked copy: the threads are not ours
                self.worker = self._thread = None
                return
            worker.stop()
            s = self.settings
            thread.join(s.grace_s + s.socket_timeout_s + s.block_s + 5
                        if timeout_s is None else timeout_s)
            if thread.is_alive():
                worker.stop(hard=True)
                thread.join(s.socket_timeout_s + 5)
            self.worker = self._thread = None

    def __enter__(self) -> EmbeddedWorker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def settings_from_config(config: Mapping[str, Any], base: Settings | None = None) -> Settings:
    """Settings from `JOBQ_<NAME>` keys of a mapping (e.g. Flask's app.config) over `base`
    (default: the environment). Values may be typed (4, True) or strings ("4", "true")."""
    base = base or Settings.from_env()
    names = {f.name for f in dataclasses.fields(Settings) if f.name != "extra"}
    env = {ENV_PREFIX + n.upper(): str(getattr(base, n)) for n in names}
    env.update({key: str(value) for key, value in config.items()
                if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX):].lower() in names})
    return Settings.from_env(env)


class FlaskJobq:
    """Flask extension: settings from app.config, one Redis client per app, and optionally
    an EmbeddedWorker.

        jobq = FlaskJobq(app)                   # or FlaskJobq() then jobq.init_app(app)
        jobq.queue("default").enqueue(tasks.add, 1, 2)

    Config: any setting as JOBQ_<NAME> (JOBQ_REDIS_URL, JOBQ_PREFIX, JOBQ_EAGER, ...), plus
    JOBQ_EMBEDDED_WORKER (start worker threads in the app; default False),
    JOBQ_WORKER_QUEUES (default ["default"]), JOBQ_WORKER_CONCURRENCY (default 4) and
    JOBQ_WORKER_IMPORTS (modules registering tasks).
    """

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        settings = settings_from_config(app.config)
        state = _AppState(settings, connect(settings))
        app.extensions["jobq"] = state
        if app.config.get("JOBQ_EMBEDDED_WORKER"):
            state.worker = EmbeddedWorker(
                app.config.get("JOBQ_WORKER_QUEUES", ["default"]),
                int(app.config.get("JOBQ_WORKER_CONCURRENCY", 4)), settings=settings,
                imports=app.config.get("JOBQ_WORKER_IMPORTS", ())).start()

    @staticmethod
    def state(app: Flask | None = None) -> _AppState:
        from flask import current_app

        target = app if app is not None else current_app
        try:
            state: _AppState = target.extensions["jobq"]
        except KeyError:
            raise RuntimeError("FlaskJobq.init_app(app) was not called for this app") from None
        return state

    def queue(self, name: str = "default", app: Flask | None = None) -> Queue:
        """The named queue of the current (or given) app, sharing the app's Redis client."""
        return self.state(app).queue(name)

    def settings(self, app: Flask | None = None) -> Settings:
        return self.state(app).settings

    def worker(self, app: Flask | None = None) -> EmbeddedWorker | None:
        return self.state(app).worker


@dataclasses.dataclass
class _AppState:
    settings: Settings
    client: Any
    worker: EmbeddedWorker | None = None
    queues: dict[str, Queue] = dataclasses.field(default_factory=dict)

    def queue(self, name: str) -> Queue:
        if name not in self.queues:
            self.queues[name] = Queue(name, settings=self.settings, redis=self.client)
        return self.queues[name]
