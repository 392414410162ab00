"""Parsing Sentinel URLs (no server)."""

from __future__ import annotations

import pytest

from jobq_core import ConfigError
from jobq_core.connection import parse_sentinel_url


def test_parse_full() -> None:
    assert parse_sentinel_url("rediss+sentinel://app:p%40ss@s1:26380,s2/jobs/3") == (
        [("s1", 26380), ("s2", 26379)], "jobs", 3, "app", "p@ss", True)


def test_parse_minimal() -> None:
    assert parse_sentinel_url("redis+sentinel://10.0.0.1/mymaster") == (
        [("10.0.0.1", 26379)], "mymaster", 0, None, None, False)
    assert parse_sentinel_url("redis+sentinel://:pw@h:1/m")[4] == "pw"


@pytest.mark.parametrize("url", ["redis+sentinel://h:1", "redis+sentinel:///m",
                                 "redis+sentinel://h:x/m", "redis+sentinel://h/m/db"])
def test_parse_bad(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_sentinel_url(url)


@pytest.mark.parametrize("url", ["redis+sentinel://h:2\u00b2/svc", "redis+sentinel://h:1/svc/\u00b2",
                                 "redis+sentinel://h:\u0661\u0662/svc"])
def test_unicode_digits_are_a_config_error(url: str) -> None:
    # str.isdigit() accepts them; int() then raised ValueError (or read another number).
    with pytest.raises(ConfigError):
        parse_sentinel_url(url)
