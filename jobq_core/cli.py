"""The `jobq` command line: one click group, shared options declared once with their env vars."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from .config import Settings
from .errors import JobqError

F = TypeVar("F", bound=Callable[..., Any])


def _url_option(f: F) -> F:
    return click.option("--url", envvar=["JOBQ_REDIS_URL", "REDIS_URL"], default=None,
                        help="Redis URL [env JOBQ_REDIS_URL, then REDIS_URL].")(f)


def _settings(url: str | None, **overrides: Any) -> Settings:
    return Settings.from_env(redis_url=url, **overrides)


class JobqGroup(click.Group):
    """Turns JobqError into one clear line and exit status 1 (no traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except JobqError as exc:
            click.echo(f"jobq: error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=JobqGroup)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.version_option(package_name="jobq")
def main(verbose: int) -> None:
    """jobq: a Redis-backed background job queue."""
    level = logging.WARNING - 10 * verbose if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@_url_option
@click.option("-q", "--queue", "queues", multiple=True, default=["default"], show_default=True,
              help="Queue to serve; repeat for several, first served first.")
@click.option("-i", "--import", "imports", multiple=True, help="Module that registers tasks.")
@click.option("-c", "--concurrency", type=click.IntRange(1, 1024), envvar="JOBQ_CONCURRENCY")
@click.option("--pool", type=click.Choice(["process", "thread"]), envvar="JOBQ_POOL")
@click.option("--prefetch", type=click.IntRange(0, 10_000), envvar="JOBQ_PREFETCH",
              help="Jobs claimed ahead of free slots (speeds up short jobs).")
@click.option("--lease-s", type=float, envvar="JOBQ_LEASE_S", help="Lease length.")
@click.option("--heartbeat-s", type=float, envvar="JOBQ_HEARTBEAT_S", help="Heartbeat period.")
@click.option("--grace-s", type=float, envvar="JOBQ_GRACE_S", help="Shutdown grace.")
@click.option("--name", help="Worker id (default host:pid:random).")
@click.option("--burst", is_flag=True, help="Exit when there is nothing left to do.")
def worker(url: str | None, queues: Sequence[str], imports: Sequence[str],
           concurrency: int | None, pool: str | None, prefetch: int | None,
           lease_s: float | None,
           heartbeat_s: float | None, grace_s: float | None, name: str | None,
           burst: bool) -> None:
    """Run jobs from the given queues until SIGTERM/SIGINT (twice: at once)."""
    from .worker import Worker

    sys.path.insert(0, os.getcwd())  # so --import finds the project's own modules
    settings = _settings(url, concurrency=concurrency, pool=pool, prefetch=prefetch,
                         lease_s=lease_s,
                         heartbeat_s=heartbeat_s, grace_s=grace_s)
    try:
        w = Worker(queues, settings, imports=imports, name=name)
    except ImportError as exc:
        raise JobqError(f"cannot import task module: {exc}") from None
    w.work(burst=burst)


@main.command()
@_url_option
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".jobq"), show_default=True,
              help="Where the embedded Redis keeps its data.")
@click.option("--demo", is_flag=True, help="Also enqueue a stream of demo jobs.")
@click.option("-c", "--concurrency", type=click.IntRange(1, 64), default=2, show_default=True)
def up(url: str | None, data_dir: Path, demo: bool, concurrency: int) -> None:
    """Run everything on this machine: Redis (embedded if no URL is set) and a worker."""
    from .server import LocalRedis

    server = None
    if not url:
        server = LocalRedis(data_dir.resolve() / "redis", persist=True).start()
        url = server.url
        click.echo(f"jobq up: started Redis ({server.binary}) with data in {server.dir}")
    env = {**os.environ, "JOBQ_REDIS_URL": url}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "jobq_core", "worker", "--import", "jobq_core.demo",
             "-c", str(concurrency)], env=env, start_new_session=True))
        click.echo(f"jobq up: worker started (pid {procs[-1].pid}); Redis at {url}")
        click.echo("jobq up: press Ctrl-C to stop")
        if demo:
            from .demo import produce

            produce(Settings.from_env(env, redis_url=url), stop_when=lambda: _any_exited(procs))
        else:
            while not _any_exited(procs):
                time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("jobq up: stopping")
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        if server is not None:
            server.stop()
        click.echo("jobq up: stopped")


def _any_exited(procs: Sequence[subprocess.Popen[bytes]]) -> bool:
    return any(p.poll() is not None for p in procs)
