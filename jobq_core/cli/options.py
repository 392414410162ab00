"""The job option flags of `jobq enqueue`, declared from the fields of JobOptions."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import click

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
                       f"{raw!r}") from None


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
