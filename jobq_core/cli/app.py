"""The `jobq` click group, the options every command shares, and how commands print.

Every command takes `--url`, `--prefix` and `--json` (declared once, in `common_options`,
each with its env var). Errors a user can cause (bad URL, Redis down, unknown job id, bad
arguments) end as one line on stderr and a non-zero exit: 1 for a failed action, 2 for bad
usage; no traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

import click
import redis

from ..admin import Admin
from ..config import Settings
from ..connection import translated
from ..errors import JobqError
from ..inspect import Inspector
from ..layout import ensure_layout

F = TypeVar("F", bound=Callable[..., Any])

USAGE_EXIT, FAILURE_EXIT = 2, 1
# `jobq enqueue --job-id X` when job X exists: nothing was written (not a failure, not a
# success either: scripts that must know can tell it apart).
EXISTS_EXIT = 3


class Failure(click.ClickException):
    """An action failed: shown as one line `jobq: error: <message>`, exit status 1.

    With --json (or JOBQ_JSON) the line is a JSON object instead:
    `{"error": "failed"|"usage", "message": ..., "exit_code": ...}`."""

    exit_code = FAILURE_EXIT
    kind = "failed"
    as_json = False

    def show(self, file: IO[Any] | None = None) -> None:
        if self.as_json:
            line = json.dumps({"error": self.kind, "message": self.format_message(),
                               "exit_code": self.exit_code}, ensure_ascii=False)
        else:
            line = f"jobq: error: {self.format_message()}"
        click.echo(line, err=True, file=file)


class BadUsage(Failure):
    """The command line itself is wrong (bad JSON, missing argument): exit status 2."""

    exit_code = USAGE_EXIT
    kind = "usage"


class JobqGroup(click.Group):
    """Turns JobqError, Redis errors and usage errors into one line and an exit code."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        # The group's own options are parsed here, before invoke(): `jobq --bogus` must end
        # as one line too, not click's usage block.
        as_json = _wants_json(args)
        try:
            ctx = super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise _usage(exc, as_json) from None
        ctx.meta["jobq.json"] = as_json
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        as_json = bool(ctx.meta.get("jobq.json"))
        try:
            return super().invoke(ctx)
        except Failure as exc:
            exc.as_json = as_json
            raise
        except JobqError as exc:
            raise _failure(Failure(_one_line(str(exc))), as_json) from None
        except redis.RedisError as exc:
            raise _failure(Failure(f"Redis error: {_one_line(str(exc))}"), as_json) from None
        except click.UsageError as exc:
            raise _usage(exc, as_json) from None
        except KeyboardInterrupt:
            raise click.exceptions.Exit(130) from None


def _wants_json(args: list[str]) -> bool:
    # Errors are shaped before (or while) the command's own --json option is parsed, so the
    # raw arguments and JOBQ_JSON decide; a word after `--` is an argument, not the option.
    words = args[:args.index("--")] if "--" in args else args
    env = os.environ.get("JOBQ_JSON", "").strip().lower()
    return "--json" in words or env in ("1", "true", "yes", "on", "y", "t")


FailureT = TypeVar("FailureT", bound=Failure)


def _failure(exc: FailureT, as_json: bool) -> FailureT:
    exc.as_json = as_json
    return exc


def _usage(exc: click.UsageError, as_json: bool) -> BadUsage:
    name = exc.ctx.command_path if exc.ctx is not None else "jobq"
    return _failure(BadUsage(f"{_flat(exc)} (see '{name} --help')"), as_json)


def _flat(exc: click.UsageError) -> str:
    """click's message on one line: "Missing argument 'STATE' (one of: a, b)" rather than
    a "Choose from:" list of one choice per line."""
    text = exc.format_message()
    head, sep, choices = text.partition("Choose from:")
    if sep:
        names = ", ".join(c.strip().rstrip(",.") for c in choices.split() if c.strip(",."))
        return f"{head.strip().rstrip('.')} (one of: {names})"
    return " ".join(text.split())


def _one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if len(lines) <= 1 else f"{lines[0]} ({lines[-1].strip()})"


@click.group(cls=JobqGroup, name="jobq")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.version_option(package_name="jobq")
def main(verbose: int) -> None:
    """jobq: a Redis-backed background job queue.

    Every command takes --url (JOBQ_REDIS_URL, then REDIS_URL), --prefix (JOBQ_PREFIX) and
    --json. Exit status: 0 done, 1 the action failed, 2 bad usage, 3 `enqueue --job-id`
    found the job already there (nothing was written).
    """
    level = logging.WARNING - 10 * verbose if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@dataclass
class Target:
    """The jobq installation a command acts on: settings, output mode, read and admin APIs."""

    settings: Settings
    as_json: bool = False
    check_layout: bool = True  # layout.ensure_layout before the first read (one GET)
    _inspector: Inspector | None = field(default=None, repr=False)
    _admin: Admin | None = field(default=None, repr=False)

    @property
    def inspector(self) -> Inspector:
        if self._inspector is None:
            self._inspector = Inspector(self.settings)
            if self.check_layout:  # an older jobq's global keys are moved before reading
                with translated(self.settings.redis_url):
                    ensure_layout(self._inspector.client, self.settings.prefix)
        return self._inspector

    @property
    def admin(self) -> Admin:
        if self._admin is None:
            self._admin = Admin(self.settings, redis=self.inspector.client)
        return self._admin

    def emit(self, data: Any, text: Callable[[], None] | str | None = None) -> None:
        """Print `data` as one JSON document with --json, else run/print `text`."""
        if self.as_json:
            click.echo(json.dumps(data, default=str, ensure_ascii=False))
        elif callable(text):
            text()
        elif text is not None:
            click.echo(text)

    def close(self) -> None:
        if self._inspector is not None:
            self._inspector.client.close()


def make_settings(url: str | None, prefix: str | None, **overrides: Any) -> Settings:
    """Settings of a command: its options over the environment; with no URL anywhere, the
    Redis of a `jobq up` running in this folder or above it (as for Queue() and Worker)."""
    return Settings.from_env(redis_url=url or None, prefix=prefix or None, **overrides)


def common_options(f: F) -> F:
    """Add --url, --prefix and --json; the command receives a `Target` as first argument."""

    @functools.wraps(f)
    def wrapper(*args: Any, url: str | None, prefix: str | None, as_json: bool,
                **kwargs: Any) -> Any:
        target = Target(make_settings(url, prefix), as_json)
        try:
            return f(target, *args, **kwargs)
        finally:
            target.close()

    return shared_options(wrapper)  # type: ignore[return-value]


def wait_replicas_option(f: F) -> F:
    """--wait-replicas N, for the commands that write jobs (Settings.wait_replicas)."""
    return click.option(
        "--wait-replicas", type=click.IntRange(0), envvar="JOBQ_WAIT_REPLICAS", default=None,
        metavar="N", help="Writes of jobs return only once N replicas hold them (WAIT), so a "
                          "failover cannot lose them [env JOBQ_WAIT_REPLICAS; 0].")(f)


def shared_options(f: F) -> F:
    """Just the three shared options (for commands that build their own settings)."""
    f = click.option("--json", "as_json", is_flag=True, envvar="JOBQ_JSON",
                     help="Machine-readable output (JSON) [env JOBQ_JSON].")(f)
    f = click.option("--prefix", envvar="JOBQ_PREFIX", default=None, metavar="PREFIX",
                     help="Key prefix of this jobq installation [env JOBQ_PREFIX; jobq].")(f)
    f = click.option("--url", envvar=["JOBQ_REDIS_URL", "REDIS_URL"], default=None,
                     metavar="URL",
                     help="Redis URL [env JOBQ_REDIS_URL, then REDIS_URL; "
                          "else a `jobq up` running in this folder].")(f)
    return f


class JsonLogFormatter(logging.Formatter):
    """One JSON object per log line: ts, level, logger, message (and exc when present)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(),
               "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def json_logs(enabled: bool) -> None:
    """Switch the root logger to JSON lines (for --json on long-running commands)."""
    if enabled:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonLogFormatter())


@contextmanager
def progress(label: str, total: int, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (only on a terminal and without --json).

    Yields `update(done, total)`.
    """
    if not enabled or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), transient=True,
                  console=_stderr_console()) as bar:
        task_id = bar.add_task(label, total=max(total, 1))

        def update(done: int, new_total: int) -> None:
            bar.update(task_id, completed=done, total=max(new_total, 1))

        yield update


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)
