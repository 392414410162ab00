"""Self-tests of the harness parts that touch processes and sockets: a few seconds, one server."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from .harness.proxy import TcpProxy
from .harness.sentinel import LINK_RECONNECT_MS, SERVICE, SentinelServer
from .harness.server import RedisServer, ServerNotFound, ServerOptions, find_server_binary, no_retry


@pytest.fixture
def server_binary() -> str:
    try:
        return find_server_binary()
    except ServerNotFound as exc:
        pytest.skip(str(exc))


@pytest.fixture
def aof_server(server_binary: str) -> Iterator[RedisServer]:
    srv = RedisServer(ServerOptions(appendonly=True, appendfsync="always"), binary=server_binary)
    srv.start()
    yield srv
    srv.close()


def test_server_never_uses_default_port_and_survives_kill9_with_aof_always(
    aof_server: RedisServer,
) -> None:
    assert aof_server.port != 6379
    c = aof_server.client()
    c.rpush("k", *range(100))
    aof_server.restart(down_s=0.1)
    assert aof_server.starts == 2
    assert aof_server.client().llen("k") == 100


def test_frozen_server_times_out_then_answers_after_thaw(aof_server: RedisServer) -> None:
    c = aof_server.client(socket_timeout=0.3)
    aof_server.freeze()
    try:
        t0 = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            c.ping()
        assert time.monotonic() - t0 < 2
    finally:
        aof_server.thaw()
    assert aof_server.client().ping()


def test_server_options_reach_the_server(server_binary: str) -> None:
    opts = ServerOptions(maxmemory="4mb", maxmemory_policy="allkeys-lru")
    with RedisServer(opts, binary=server_binary) as srv:
        cfg = srv.client().config_get("maxmemory*")
        assert cfg["maxmemory"] == str(4 * 1024 * 1024)
        assert cfg["maxmemory-policy"] == "allkeys-lru"
        assert srv.client().config_get("appendonly")["appendonly"] == "no"


@pytest.fixture
def proxied(aof_server: RedisServer) -> Iterator[TcpProxy]:
    proxy = TcpProxy(aof_server.port)
    proxy.start()
    yield proxy
    proxy.stop()


def test_proxy_modes(proxied: TcpProxy) -> None:
    c = redis.Redis(
        port=proxied.port, socket_timeout=0.5, socket_connect_timeout=0.5, retry=no_retry()
    )
    assert c.set("p", "1") and c.get("p") == b"1"

    proxied.set_mode("latency", latency_s=0.2)
    t0 = time.monotonic()
    assert c.get("p") == b"1"
    assert time.monotonic() - t0 >= 0.2

    proxied.set_mode("blackhole")
    with pytest.raises(redis.TimeoutError):
        c.get("p")

    proxied.set_mode("reset")
    with pytest.raises(redis.ConnectionError):
        c.get("p")

    proxied.set_mode("pass")
    assert c.ping()  # reconnect first: in half_open even the handshake reply would be lost
    proxied.set_mode("half_open")
    with pytest.raises(redis.TimeoutError):
        c.incr("half")  # the command reaches Redis; only its reply is lost
    proxied.set_mode("pass")
    assert c.get("half") == b"1"


def test_proxy_blackhole_accepts_new_connections_but_never_answers(proxied: TcpProxy) -> None:
    proxied.set_mode("blackhole")
    with socket.create_connection(("127.0.0.1", proxied.port), timeout=0.5) as s:
        s.sendall(b"PING\r\n")
        with pytest.raises(socket.timeout):
            s.recv(10)


def test_proxy_resets_new_connections_in_reset_mode(proxied: TcpProxy) -> None:
    proxied.set_mode("reset")
    c = redis.Redis(
        port=proxied.port, socket_timeout=0.5, socket_connect_timeout=0.5, retry=no_retry()
    )
    with pytest.raises(redis.ConnectionError):
        c.ping()


def test_sentinels_wait_out_their_link_reconnect_before_declaring_a_primary_down(
    aof_server: RedisServer, tmp_path: Path,
) -> None:
    # Below the reconnect period a primary promoted a moment ago can be declared down before
    # the sentinel's first PING reaches it, and failed over again (harness/sentinel.py).
    sentinel = SentinelServer(aof_server.port, tmp_path / "sentinel")
    sentinel.dir.mkdir(parents=True)
    sentinel.start()
    try:
        info = sentinel.client().sentinel_master(SERVICE)
        assert int(info["down-after-milliseconds"]) > LINK_RECONNECT_MS
    finally:
        sentinel.close()
