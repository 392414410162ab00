"""`jobq up`: the whole product on one machine, stopped cleanly by Ctrl-C.

Starts (each in its own process group) an embedded Redis when no URL is configured, a
worker, the scheduler and the dashboard when this install has them, and with --demo a
stream of demo jobs. Output of each process is prefixed with its name. Ctrl-C or SIGTERM
stops them all: SIGTERM to each (the worker finishes running jobs), then SIGKILL to
whatever is left of their process groups, then Redis. A second Ctrl-C hurries it up.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

import click

from .. import discover
from ..config import Settings
from ..errors import JobqError
from ..server import LocalRedis
from .app import json_logs, main, shared_options
from .run import dashboard_entry

if TYPE_CHECKING:
    from ..localcluster import LocalCluster

PR_SET_PDEATHSIG = 1
NAME_WIDTH = 9


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if `jobq up` is killed outright (SIGKILL),
    # the kernel sends its children SIGTERM so nothing is left running.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Stack:
    """The processes `jobq up` runs, started in order and stopped in reverse."""

    def __init__(self, say: Callable[..., None], as_json: bool) -> None:
        self.say = say
        self.as_json = as_json
        self.server: LocalRedis | None = None
        self.cluster: LocalCluster | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.readers: list[threading.Thread] = []
        self.hurry = threading.Event()
        self.published: Path | None = None

    def start_redis(self, data_dir: Path) -> str:
        redis_dir = data_dir / "redis"
        sock = redis_dir / "redis.sock"
        if sock.is_socket() and _answers(f"unix://{sock}"):
            raise JobqError(f"a Redis is already running on {sock}: is another `jobq up` "
                            "running in this folder? Stop it, or use another --data-dir")
        # A unix socket path must fit in 107 bytes; deep folders get a TCP port instead.
        port = _free_port() if len(str(sock)) > 100 else 0
        self.server = LocalRedis(redis_dir, persist=True, port=port,
                                 preexec_fn=_die_with_parent).start()
        self.say("redis", binary=self.server.binary, dir=str(redis_dir), url=self.server.url,
                 pid=self.server.proc.pid if self.server.proc else None)
        # Queue(), workers and `jobq` commands started in this folder (or below) read it.
        self.published = data_dir
        discover.publish(data_dir, self.server.url)
        return self.server.url

    def start_cluster(self, data_dir: Path, primaries: int) -> str:
        """A fresh local cluster of `primaries` primaries (no replicas) in `data_dir`/cluster,
        on free loopback ports; its data goes with it when `jobq up` stops."""
        from ..localcluster import LocalCluster

        cluster_dir = data_dir / "cluster"
        shutil.rmtree(cluster_dir, ignore_errors=True)  # a cluster is made anew each time
        self.cluster = LocalCluster(cluster_dir, n_primaries=primaries, n_replicas=0,
                                    preexec_fn=_die_with_parent).start()
        self.say("cluster", binary=self.cluster.binary, dir=str(cluster_dir),
                 url=self.cluster.url, primaries=primaries,
                 pids=[n.proc.pid for n in self.cluster.nodes if n.proc])
        self.published = data_dir
        discover.publish(data_dir, self.cluster.url)
        return self.cluster.url

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str]) -> None:
        proc = subprocess.Popen(list(argv), env=env, start_new_session=True,
                                preexec_fn=_die_with_parent, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        self.say("started", process=name, pid=proc.pid)

    def relay_output(self) -> None:
        """Copy each process's output to ours, prefixed with its name (after all spawns,
        so no thread exists while we fork)."""
        for name, proc in self.procs.items():
            t = threading.Thread(target=_relay, args=(name, proc.stdout, self.as_json),
                                 name=f"jobq-up-{name}", daemon=True)
            t.start()
            self.readers.append(t)

    def exited(self) -> tuple[str, int] | None:
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                return name, code
        servers = [self.server] if self.server is not None else []
        servers += self.cluster.nodes if self.cluster is not None else []
        for server in servers:
            code = server.proc.poll() if server.proc is not None else None
            if code is not None:
                return "redis", code
        return None

    def stop(self, wait_s: float) -> None:
        for name in reversed(list(self.procs)):
            _signal(self.procs[name], signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            while proc.poll() is None and time.monotonic() < deadline:
                if self.hurry.is_set():
                    self.hurry.clear()
                    _signal(proc, signal.SIGTERM)  # a second SIGTERM stops a worker at once
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(0.1)
            if proc.poll() is None:
                self.say("killing", process=name, pid=proc.pid)
        for proc in self.procs.values():
            # Whatever is left in the process group (a stuck job, a server's children).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        for t in self.readers:
            t.join(2)
        if self.published is not None:
            discover.withdraw(self.published)
        if self.server is not None:
            self.server.stop()
            self.say("stopped", process="redis")
        if self.cluster is not None:
            self.cluster.destroy()
            self.say("stopped", process="redis cluster")


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)


def _relay(name: str, stream: IO[bytes] | None, as_json: bool) -> None:
    if stream is None:
        return
    prefix = f"{name:<{NAME_WIDTH}}| "
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\n")
        # With --json the processes log JSON lines; pass them through untouched.
        text = line if as_json else prefix + line
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
    stream.close()


def _answers(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout_s: float, alive: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # 401/403/404 still means it answers
        except OSError:
            time.sleep(0.1)
    return False


def dashboard_login(settings: Settings, data_dir: Path) -> tuple[str, str | None,
                                                                  dict[str, str]]:
    """(user, password or None if configured elsewhere, env for the dashboard).

    Without configured credentials a password is made once and kept in the data folder
    (readable by this user only), so the login stays the same across runs."""
    if settings.dashboard_user:
        return settings.dashboard_user, None, {}
    from werkzeug.security import generate_password_hash

    env: dict[str, str] = {}
    password = _secret(data_dir / "dashboard-password")
    env["JOBQ_DASHBOARD_USER"] = "admin"
    env["JOBQ_DASHBOARD_PASSWORD_HASH"] = generate_password_hash(password)
    if not settings.dashboard_secret_key:
        env["JOBQ_DASHBOARD_SECRET_KEY"] = _secret(data_dir / "dashboard-secret-key", 32)
    return "admin", password, env


def _secret(path: Path, nbytes: int = 12) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@main.command()
@shared_options
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              envvar="JOBQ_DATA_DIR", default=None,
              help="Where the embedded Redis keeps its data, and the dashboard password "
                   "[env JOBQ_DATA_DIR; .jobq].")
@click.option("--demo", is_flag=True, help="Also enqueue a stream of demo jobs (queue demo).")
@click.option("-q", "--queue", "queues", multiple=True,
              help="Queue of yours the worker also serves (repeatable) [default, when "
                   "--import is given].")
@click.option("-i", "--import", "imports", multiple=True,
              help="Module registering your tasks; the worker then serves your queues too.")
@click.option("-c", "--concurrency", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--host", envvar="JOBQ_DASHBOARD_HOST", default=None,
              help="Dashboard interface [env JOBQ_DASHBOARD_HOST; 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), envvar="JOBQ_DASHBOARD_PORT",
              default=None, help="Dashboard port [env JOBQ_DASHBOARD_PORT; 5000].")
@click.option("--no-dashboard", is_flag=True, help="Do not start the dashboard.")
@click.option("--cluster", "cluster", type=click.IntRange(1, 16), default=None, metavar="N",
              help="Start a local Redis Cluster of N primaries (fresh each time, on free "
                   "local ports) instead of one Redis, and print its redis+cluster:// URL.")
def up(url: str | None, prefix: str | None, as_json: bool, data_dir: Path | None, demo: bool,
       queues: Sequence[str], imports: Sequence[str], concurrency: int, host: str | None,
       port: int | None, no_dashboard: bool, cluster: int | None) -> None:
    """Run everything on this machine: Redis (embedded when no URL is set), a worker, the
    scheduler and the dashboard. Ctrl-C stops them all.

    The worker serves the queue `demo` (the demo tasks), and with --import your queues
    (--queue, default `default`) with your tasks. Other processes started in this folder,
    or below it, find the embedded Redis without a URL."""
    if cluster and url:
        raise click.UsageError("--cluster starts a cluster of its own: drop --url (and "
                               "unset JOBQ_REDIS_URL / REDIS_URL)")
    json_logs(as_json)
    say = _sayer(as_json)
    settings = Settings.from_env(redis_url=url, prefix=prefix or None)
    _check_given_redis(settings, given=bool(url and not cluster))
    data_dir = (data_dir or Path(settings.data_dir)).resolve()
    stack = Stack(say, as_json)
    # Installed explicitly: a shell starting us in the background sets SIGINT to ignored.
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    stopping = threading.Event()
    code = 0
    try:
        settings = _own_redis(stack, settings, data_dir, url, cluster)
        env = {**os.environ, "JOBQ_REDIS_URL": settings.redis_url,
               "JOBQ_PREFIX": settings.prefix, "PYTHONUNBUFFERED": "1"}
        env.pop("REDIS_URL", None)
        common = ["--json"] if as_json else []
        base = [sys.executable, "-m", "jobq_core"]
        worker = [*base, "worker", *common, "-c", str(concurrency), "-i", "jobq_core.demo"]
        worker += [a for i in imports for a in ("-i", i)]
        worker += [a for q in served_queues(queues, imports) for a in ("-q", q)]
        stack.spawn("worker", worker, env)
        stack.spawn("scheduler", [*base, "scheduler", *common, "-i", "jobq_core.demo"], env)
        dash_url = login = None
        if not no_dashboard and _available(dashboard_entry, "dashboard", say):
            dash_url, login = _spawn_dashboard(stack, settings, data_dir, host, port,
                                               [*base, "dashboard", *common], env)
        stack.relay_output()
        if dash_url and not _wait_http(dash_url, 20, lambda: stack.exited() is None):
            say("warning", message=f"the dashboard did not answer at {dash_url}")
        say("ready", redis_url=settings.redis_url, dashboard_url=dash_url, login=login,
            demo=demo, queues=served_queues(queues, imports), found=url is None)
        if demo:
            _start_demo(settings, stopping)
        while (gone := stack.exited()) is None:
            time.sleep(0.2)
        say("exited", process=gone[0], code=gone[1])
        code = 1
    except KeyboardInterrupt:
        pass
    finally:
        stopping.set()
        say("stopping")
        signal.signal(signal.SIGINT, lambda s, f: stack.hurry.set())
        signal.signal(signal.SIGTERM, lambda s, f: stack.hurry.set())
        stack.stop(settings.grace_s + 10)
        say("stopped")
    sys.exit(code)


def _own_redis(stack: Stack, settings: Settings, data_dir: Path, url: str | None,
               cluster: int | None) -> Settings:
    """Settings on the Redis `jobq up` starts: a cluster of `cluster` primaries, else one
    Redis unless a URL was given (the option also reads JOBQ_REDIS_URL and REDIS_URL)."""
    if cluster:
        return settings.replace(redis_url=stack.start_cluster(data_dir, cluster))
    if not url:
        return settings.replace(redis_url=stack.start_redis(data_dir))
    return settings


def _check_given_redis(settings: Settings, given: bool) -> None:
    """Refuse at once when the URL `jobq up` was `given` (--url, or JOBQ_REDIS_URL /
    REDIS_URL left in the shell) names a Redis that does not answer: it then starts no Redis
    of its own, and its worker, scheduler and dashboard only logged "cannot reach Redis ...
    start one with `jobq up`" over and over."""
    if not given:
        return
    from ..connection import connect, translated
    from ..errors import RedisUnavailable

    try:
        with translated(settings.redis_url):
            connect(settings).ping()
    except RedisUnavailable as exc:
        # "cannot reach Redis at URL (why)", without its advice to start `jobq up`
        what = str(exc).split(": start one with", 1)[0]
        raise JobqError(f"{what}, the URL given by --url, JOBQ_REDIS_URL or REDIS_URL: start "
                        "that Redis, or unset them so that `jobq up` starts one of its "
                        "own") from None


def _spawn_dashboard(stack: Stack, settings: Settings, data_dir: Path, host: str | None,
                     port: int | None, command: list[str],
                     env: dict[str, str]) -> tuple[str, str]:
    """Start the dashboard; returns its URL and the login to show."""
    user, password, login_env = dashboard_login(settings, data_dir)
    h = host or settings.dashboard_host
    p = port or settings.dashboard_port
    stack.spawn("dashboard", [*command, "--host", h, "--port", str(p)], {**env, **login_env})
    url = f"http://{'127.0.0.1' if h in ('0.0.0.0', '') else h}:{p}/"
    return url, f"{user} / {password}" if password else f"{user} (password as configured)"


def served_queues(queues: Sequence[str], imports: Sequence[str]) -> list[str]:
    """The queues `jobq up`'s worker serves: yours first (those given, or `default` once you
    import tasks), then `demo`. Without --import it leaves `default` alone, so the jobs of
    your own `jobq worker` are never claimed by a worker that does not know their task."""
    from ..demo import DEMO_QUEUE  # late: the demo module loads the scheduler (croniter)

    mine = list(queues) or (["default"] if imports else [])
    return list(dict.fromkeys([*mine, DEMO_QUEUE]))


def _available(entry: Callable[[], Any], name: str, say: Callable[..., None]) -> bool:
    try:
        entry()
        return True
    except JobqError as exc:
        say("skipped", process=name, reason=str(exc))
        return False


def _start_demo(settings: Settings, stopping: threading.Event) -> None:
    from ..demo import produce

    threading.Thread(target=produce, args=(settings, stopping.is_set), name="jobq-demo",
                     daemon=True).start()


_TEXT = {
    "redis": "started Redis {binary} (pid {pid}), data in {dir}",
    "cluster": "started a Redis Cluster of {primaries} primaries ({binary}, pids {pids}) in "
               "{dir}; its data goes when this stops",
    "started": "started {process} (pid {pid})",
    "skipped": "no {process}: {reason}",
    "warning": "warning: {message}",
    "exited": "{process} exited with code {code}; stopping everything",
    "killing": "{process} (pid {pid}) did not stop in time; killing it",
    "stopping": "stopping (Ctrl-C again to hurry)",
    "stopped": "stopped",
}


def _sayer(as_json: bool) -> Callable[..., None]:
    def say(event: str, **fields: Any) -> None:
        if as_json:
            line = json.dumps({"event": event, **fields}, default=str)
        elif event == "ready":
            line = _ready_text(**fields)
        elif event == "stopped" and fields.get("process"):
            line = f"stopped {fields['process']}"
        else:
            line = _TEXT[event].format(**fields)
        click.echo(line if as_json else "\n".join(f"{'up':<{NAME_WIDTH}}| {x}"
                                                   for x in line.splitlines()))

    return say


def _ready_text(redis_url: str, dashboard_url: str | None, login: str | None,
                demo: bool, queues: Sequence[str], found: bool) -> str:
    lines = [f"Redis Cluster: {redis_url}" if "+cluster://" in redis_url
             else f"Redis: {redis_url}"]
    if found:
        lines.append("  (found by Queue(), workers and jobq commands started in this folder "
                     "or below it;")
        lines.append(f"   elsewhere set JOBQ_REDIS_URL={redis_url})")
    if dashboard_url:
        lines.append(f"dashboard: {dashboard_url}  login: {login}")
    lines.append(f"worker serves: {', '.join(queues)}")
    if demo:
        lines.append("demo jobs: a stream of fast, slow, failing and scheduled jobs on queue "
                     "demo")
    lines.append("try, in another shell in this folder: "
                 "jobq enqueue jobq_core.demo.add '[1, 2]' --queue demo --wait 10")
    lines.append("press Ctrl-C to stop everything")
    return "\n".join(lines)
