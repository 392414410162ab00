"""Parsing redis+cluster:// URLs (no server)."""

from __future__ import annotations

import pytest

from jobq_core import ConfigError
from jobq_core.connection import parse_cluster_url


def test_parse_hosts_credentials_and_options() -> None:
    nodes, opts = parse_cluster_url(
        "rediss+cluster://app:p%40ss@n1:7000,n2:7001/?ssl_cert_reqs=none&socket_keepalive=true")
    assert nodes == [("n1", 7000), ("n2", 7001)]
    assert opts == {"username": "app", "password": "p@ss", "ssl": True,
                    "ssl_cert_reqs": "none", "socket_keepalive": True}


def test_parse_minimal() -> None:
    assert parse_cluster_url("redis+cluster://10.0.0.1:6380") == ([("10.0.0.1", 6380)], {})
    assert parse_cluster_url("redis+cluster://h:1/0")[0] == [("h", 1)]
    assert parse_cluster_url("redis+cluster://:pw@h:1")[1] == {"password": "pw"}


@pytest.mark.parametrize("url", ["redis+cluster://h", "redis+cluster://h:x",
                                 "redis+cluster://h:1/2", "redis+cluster://:1",
                                 "redis+cluster://h:1,h2", "redis+cluster://h:\u0661"])
def test_parse_bad(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_cluster_url(url)
