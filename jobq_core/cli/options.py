"""The inputs of `jobq enqueue`: the job option flags (declared from the fields of
JobOptions), ARGS and --kwargs, and the lines of --file."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from ..job import JSON_ERRORS, short_error
from ..options import JobOptions
from .app import BadUsage


def json_arg(raw: str | None, what: str) -> Any:
    """The JSON value of a flag or argument (None if not given); BadUsage if not JSON."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadUsage(f"{what} is not valid JSON ({exc.msg} at position {exc.pos}): "
                       f"{raw[:200]!r}") from None
    except JSON_ERRORS as exc:  # a number past Python's digits, nesting past its stack
        raise BadUsage(f"{what} is JSON jobq cannot take ({short_error(exc)})") from None


def job_option_flags(f: Callable[..., Any]) -> Callable[..., Any]:
    """A click option for every JobOptions field that has a flag: its name with dashes, its
    help and type from the field (so the CLI offers exactly the options an enqueue takes)."""
    for fld in reversed(dataclasses.fields(JobOptions)):
        kind, help_text = fld.metadata["cli"], fld.metadata["help"]
        flag = "--" + fld.name.replace("_", "-")
        if kind is None:
            continue
        if kind is bool:
            f = click.option(flag, fld.name, is_flag=True, help=help_text)(f)
        elif kind is list:
            f = click.option(flag, fld.name, multiple=True, metavar="REF", help=help_text)(f)
        elif kind is dict:
            f = click.option(flag, fld.name, metavar="JSON", help=help_text)(f)
        else:
            f = click.option(flag, fld.name, type=kind, help=help_text)(f)
    return f


def job_options(flags: dict[str, Any]) -> JobOptions:
    """The JobOptions of the values of job_option_flags (JSON flags parsed, checked)."""
    values: dict[str, Any] = {}
    for fld in dataclasses.fields(JobOptions):
        if fld.name not in flags:
            continue
        value, kind = flags[fld.name], fld.metadata["cli"]
        flag = "--" + fld.name.replace("_", "-")
        if kind is dict:
            value = json_arg(value, flag)
            if value is not None and not isinstance(value, dict):
                raise BadUsage(f"{flag} must be a JSON object")
        elif kind is list:
            value = list(value) or None
        values[fld.name] = value
    return JobOptions(**values)


def call_args(raw_args: str | None, raw_kwargs: str | None) -> tuple[list[Any], dict[str, Any]]:
    value = json_arg(raw_args, "ARGS")
    kwargs = json_arg(raw_kwargs, "--kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise BadUsage("--kwargs must be a JSON object, e.g. '{\"x\": 1}'")
    if value is None:
        return [], kwargs or {}
    if isinstance(value, dict):
        if kwargs:
            raise BadUsage("ARGS is an object (keyword arguments) and --kwargs is given too; "
                          "pass one")
        return [], value
    if not isinstance(value, list):
        raise BadUsage("ARGS must be a JSON array of positional arguments, e.g. '[1, 2]', or an "
                      "object of keyword arguments")
    return value, kwargs or {}


def read_calls(file: Path, task: str | None, queue: str) -> Iterator[dict[str, Any]]:
    stream = sys.stdin if str(file) == "-" else None
    try:
        lines = stream.read().splitlines() if stream else file.read_text().splitlines()
    except OSError as exc:
        raise BadUsage(f"cannot read {file}: {exc.strerror}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadUsage(f"{file}:{n}: not valid JSON ({exc.msg})") from None
        except JSON_ERRORS as exc:
            raise BadUsage(f"{file}:{n}: JSON jobq cannot take ({short_error(exc)})") from None
        if isinstance(value, list) and task:
            value = {"args": value}
        if not isinstance(value, dict):
            raise BadUsage(f"{file}:{n}: expected a JSON object with \"task\" and \"args\"")
        value.setdefault("task", task)
        if not value["task"]:
            raise BadUsage(f"{file}:{n}: no \"task\" (give one per line or as TASK)")
        value.setdefault("queue", queue)
        yield value
