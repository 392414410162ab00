"""Redis clients with timeouts on every connection, and translation of redis-py errors."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import redis

from .config import Settings
from .errors import ConfigError, JobqError, RedisUnavailable

if TYPE_CHECKING:
    import redis.asyncio

P = ParamSpec("P")
T = TypeVar("T")


def _client_options(settings: Settings, blocking: bool, name: str = "jobq") -> dict[str, Any]:
    """The options every jobq client gets, sync or async (see connect() for `blocking`).

    Replies that are not UTF-8 decode with U+FFFD in place of the bad bytes, not an error:
    jobq writes only text, so such bytes come from another writer, and with strict decoding
    one of them in a job's fields made the claim reply raise out of the worker's loop (every
    worker that claimed the job died) and the job's dashboard page answer 500. Replaced,
    the payload no longer parses and the job goes to dead as malformed."""
    timeout = settings.socket_timeout_s + (settings.block_s if blocking else 0.0)
    return {
        "decode_responses": True, "encoding_errors": "replace", "protocol": 2,
        "socket_timeout": timeout,
        "socket_connect_timeout": settings.connect_timeout_s, "health_check_interval": 30,
        "client_name": name}


def connect(settings: Settings, *, blocking: bool = False, name: str = "jobq") -> redis.Redis:
    """A client for `settings.redis_url` with socket and connect timeouts.

    `blocking=True` gives a client whose socket timeout outlasts the longest blocking
    command jobq issues (BZPOPMIN for `block_s`), so a wait is never cut short, while a
    server that stops answering is still noticed. Its connections are named `name`
    (CLIENT SETNAME, on every connect): a worker's are named after it (workers.py).
    """
    options = _client_options(settings, blocking, name)
    if is_sentinel(settings):
        return _sentinel_master(settings.redis_url, options)
    if settings.redis_url.startswith(CLUSTER_SCHEMES):
        from redis.cluster import ClusterNode, RedisCluster

        hosts, kwargs = parse_cluster_url(settings.redis_url)
        from redis.retry import Retry

        cluster = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in hosts],  # type: ignore[no-untyped-call]
                               retry=Retry(**cluster_retry()), **{**options, **kwargs})
        # RedisCluster has Redis's command methods but is no subclass; jobq code that needs
        # a connection pool asks is_cluster() first.
        return cast(redis.Redis, cluster)
    try:
        return redis.Redis.from_url(settings.redis_url, **options)
    except ValueError as exc:
        raise ConfigError(f"bad Redis URL {settings.redis_url!r}: {exc}") from None


_SENTINEL_SCHEMES = ("redis+sentinel://", "rediss+sentinel://")
CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def cluster_retry() -> dict[str, Any]:
    """How a cluster client retries a command across a failover or migration (redirects,
    refused connections, TRYAGAIN): 10 tries, 10 ms doubling to at most 100 ms apart, then
    the error reaches jobq, which waits it out. redis-py's cap (1 s) left a worker up to a
    second idle after the new primary took over (fault scenario 15)."""
    from redis.backoff import ExponentialWithJitterBackoff

    return {"backoff": ExponentialWithJitterBackoff(base=0.01, cap=0.1), "retries": 10}
CLUSTER_HINT = ("use redis+cluster://host:port[,host:port...] (rediss+cluster:// for TLS) "
                "as the URL")


def is_cluster(client: object) -> bool:
    """Whether `client` is a redis-py cluster client (sync or asyncio)."""
    from redis.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        return True
    mod = type(client).__module__
    return mod == "redis.asyncio.cluster"


def is_sentinel(settings: Settings) -> bool:
    """Whether `settings.redis_url` reaches Redis through Sentinel (`redis+sentinel://` or
    `rediss+sentinel://`)."""
    return settings.redis_url.startswith(_SENTINEL_SCHEMES)


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """(startup nodes, client options) of
    `redis+cluster://[[user]:password@]host:port[,host:port...][/][?option=value&...]`
    (`rediss+cluster://` for TLS). Options are those of a `redis://` URL's query string
    (ssl_cert_reqs, socket_keepalive, ...); a cluster has only database 0."""
    from redis.connection import parse_url

    scheme, _, rest = url.partition("://")
    rest, _, query = rest.partition("?")
    creds, _, rest = rest.rpartition("@")
    hosts, _, path = rest.partition("/")
    if path.strip("/") not in ("", "0"):
        raise ConfigError(f"bad cluster URL {_redact(url)!r}: a Redis Cluster has only "
                          "database 0 (drop the /{path})")
    nodes = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        if not name or not _digits(port):
            raise ConfigError(f"bad cluster node address {host!r} in {_redact(url)!r}: "
                              "expected host:port")
        nodes.append((name.strip("[]"), int(port)))
    plain = "rediss" if scheme.startswith("rediss") else "redis"
    try:
        options: dict[str, Any] = parse_url(  # type: ignore[no-untyped-call]
            f"{plain}://{creds + '@' if creds else ''}h:1/?{query}")
    except ValueError as exc:
        raise ConfigError(f"bad cluster URL {_redact(url)!r}: {exc}") from None
    for key in ("host", "port", "db", "connection_class"):
        options.pop(key, None)
    if plain == "rediss":
        options["ssl"] = True
    return nodes, options


def check_not_cluster_node(client: redis.Redis, url: str) -> None:
    """Raise ConfigError when a plain (non-cluster) URL reaches a node of a Redis Cluster:
    most keys would answer MOVED. One INFO at start-up (Worker, `jobq` commands)."""
    if url.startswith(CLUSTER_SCHEMES) or is_cluster(client):
        return
    if str(client.info("cluster").get("cluster_enabled", 0)) == "1":
        raise ConfigError(f"Redis at {_redact(url)} is a node of a Redis Cluster: "
                          f"{CLUSTER_HINT}")


def aconnect(settings: Settings, *, blocking: bool = False) -> redis.asyncio.Redis:
    """connect() for asyncio: a redis.asyncio client with the same timeouts and options.
    Bound to the event loop it is first used on (as every redis.asyncio client is)."""
    import redis.asyncio  # here: only async producers pay for importing it

    options = _client_options(settings, blocking)
    if settings.redis_url.startswith(CLUSTER_SCHEMES):
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        hosts, kwargs = parse_cluster_url(settings.redis_url)
        from redis.asyncio.retry import Retry as AsyncRetry

        cluster = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in hosts],
                               retry=AsyncRetry(**cluster_retry()), **{**options, **kwargs})
        return cast("redis.asyncio.Redis", cluster)  # as connect(): same command methods
    if is_sentinel(settings):
        from redis.asyncio.sentinel import Sentinel

        sentinels, service, db, username, password, tls = parse_sentinel_url(settings.redis_url)
        timeouts = {k: options[k] for k in ("socket_timeout", "socket_connect_timeout")}
        sentinel = Sentinel(sentinels, sentinel_kwargs={**timeouts, "ssl": tls},
                            username=username, password=password, ssl=tls, db=db)
        master: redis.asyncio.Redis = sentinel.master_for(service, **options)
        return master
    try:
        return redis.asyncio.Redis.from_url(settings.redis_url, **options)
    except ValueError as exc:
        raise ConfigError(f"bad Redis URL {settings.redis_url!r}: {exc}") from None


def parse_sentinel_url(url: str) -> tuple[list[tuple[str, int]], str, int, str | None,
                                         str | None, bool]:
    """(sentinels, service, db, username, password, tls) of
    `redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]`
    (`rediss+sentinel://` for TLS). User and password are the master's; the sentinels are
    asked without credentials."""
    from urllib.parse import unquote

    scheme, _, rest = url.partition("://")
    creds, _, rest = rest.rpartition("@")
    hosts, _, path = rest.partition("/")
    parts = [p for p in path.split("/") if p]
    if not hosts or not parts or len(parts) > 2 or (len(parts) == 2 and not _digits(parts[1])):
        raise ConfigError(f"bad Sentinel URL {_redact(url)!r}: expected "
                          "redis+sentinel://[:password@]host:26379[,host:26379]/service[/db]")
    sentinels = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "26379")
        if not name or not _digits(port):
            raise ConfigError(f"bad Sentinel address {host!r} in {_redact(url)!r}")
        sentinels.append((name, int(port)))
    user, _, password = creds.partition(":") if ":" in creds else ("", "", creds)
    return (sentinels, parts[0], int(parts[1]) if len(parts) == 2 else 0,
            unquote(user) or None, unquote(password) or None, scheme.startswith("rediss"))


def _sentinel_master(url: str, options: dict[str, Any]) -> redis.Redis:
    # A client of the current master: redis-py asks the sentinels again after a failover.
    from redis.sentinel import Sentinel

    sentinels, service, db, username, password, tls = parse_sentinel_url(url)
    timeouts = {k: options[k] for k in ("socket_timeout", "socket_connect_timeout")}
    sentinel = Sentinel(sentinels, sentinel_kwargs={**timeouts, "ssl": tls},  # type: ignore[no-untyped-call, unused-ignore]
                        username=username, password=password, ssl=tls, db=db)
    client: redis.Redis = sentinel.master_for(service, **options)  # type: ignore[no-untyped-call, unused-ignore]
    return client


def follow_master(clients: Sequence[redis.Redis]) -> tuple[str, int]:
    """(host, port) of the master the sentinels name now, asked through the first of these
    Sentinel clients' pools (one sentinel round trip); each other pool whose last known master
    differs asks too. A pool that learns of a new master drops its idle connections, and each
    connection in use when it is released (redis-py's SentinelConnectionPool): without this a
    pool whose connections all stay open to a demoted-but-writable server never asks again.
    Raises redis.ConnectionError (MasterNotFoundError) when no sentinel names one."""
    master: tuple[str, int] = clients[0].connection_pool.get_master_address()  # type: ignore[attr-defined]
    for client in clients[1:]:
        pool: Any = client.connection_pool
        if pool.master_address != master:
            pool.get_master_address()
    return master


def configure(settings: Settings | None, url: str | None,
              client: redis.Redis | None) -> tuple[Settings, redis.Redis]:
    """Settings (from the environment unless given, `url` on top) and a client (the given one,
    to share its connection pool, or a new one): what every API object starts from."""
    base = settings or Settings.from_env()
    chosen = base.replace(redis_url=url) if url else base
    return chosen, client if client is not None else connect(chosen)


def _digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() accepts "²", which int() then rejects."""
    return text.isascii() and text.isdigit()


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@contextmanager
def translated(url: str) -> Iterator[None]:
    """Turn redis-py connection errors into RedisUnavailable (and OOM into a clear JobqError)."""
    try:
        yield
    except JobqError:  # ours (some are OSError subclasses, e.g. Timeout): pass through
        raise
    except Exception as exc:
        ours = _translation(exc, url)
        if ours is None:
            raise
        raise ours from exc


def _translation(exc: Exception, url: str) -> JobqError | None:
    """The JobqError a redis-py (or socket) error stands for; None: raise it as it is."""
    if isinstance(exc, redis.AuthenticationError):  # a ConnectionError subclass: first
        return JobqError(f"Redis refused jobq's credentials: {exc}")
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | OSError):
        reason = " ".join(str(exc).split()).rstrip(". ")
        return RedisUnavailable(
            f"cannot reach Redis at {_redact(url)} ({reason}): start one with `jobq up` in "
            "this folder, or set JOBQ_REDIS_URL (or REDIS_URL) to where yours runs")
    if isinstance(exc, redis.exceptions.NoPermissionError):
        # redis-py strips the NOPERM prefix when it raises this class.
        return JobqError(f"Redis refused the command for jobq's user (ACL): {exc}. The user "
                         "needs the keys ~<prefix>:* (see docs/production.md)")
    if isinstance(exc, redis.exceptions.AskError | redis.exceptions.ClusterError
                  | redis.exceptions.TryAgainError | redis.exceptions.RedisClusterException):
        return _cluster_error(url, exc)
    if isinstance(exc, redis.ResponseError):
        return _response_error(exc)
    return None


def _response_error(exc: redis.ResponseError) -> JobqError | None:
    # redis-py turns the reply's error code into the exception class and strips it from
    # the text ("-OOM command not allowed..." -> OutOfMemoryError("command not allowed...")),
    # so match on the class; the text prefix covers replies it does not map.
    text = str(exc)
    if isinstance(exc, redis.exceptions.OutOfMemoryError) or text.startswith("OOM"):
        return JobqError(
            f"Redis is out of memory and refused the write ({text}); nothing was queued. "
            "Raise maxmemory or drain/purge jobs.")
    if text.startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
        return JobqError(f"Redis refused jobq's credentials: {text}")
    if isinstance(exc, redis.exceptions.ReadOnlyError) or text.startswith("READONLY"):
        return RedisUnavailable(f"Redis is a read-only replica: {text}")
    if text.startswith(("BUSY ", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")):
        # Passing states (a long script, a failover): wait them out like a dropped link.
        return RedisUnavailable(f"Redis cannot answer for now: {text}")
    return None


def _cluster_error(url: str, exc: Exception) -> JobqError:
    """What a cluster reply (MOVED, ASK, CLUSTERDOWN, TRYAGAIN, no node for a slot) means
    for jobq. MOVED to a plain client: the URL names a cluster node (a configuration
    error). Anything else, or to a cluster client (which follows MOVED itself; one that
    escapes is a migration or failover it gave up waiting on): a passing state, waited out
    like a dropped link. CROSSSLOT (a jobq bug) is not one of these and is raised as is."""
    if isinstance(exc, redis.exceptions.MovedError) and not url.startswith(CLUSTER_SCHEMES):
        return ConfigError(f"Redis at {_redact(url)} is a node of a Redis Cluster (it "
                           f"answered MOVED {exc}): {CLUSTER_HINT}")
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return RedisUnavailable(f"Redis Cluster cannot answer for now ({reason})")


def redis_errors(method: Callable[P, T]) -> Callable[P, T]:
    """Decorator for methods of objects with a `settings` attribute: translate Redis errors."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        # As `with translated(...)`, without a generator-based context manager's set-up
        # on every call (it runs on every enqueue).
        try:
            return method(*args, **kwargs)
        except JobqError:
            raise
        except Exception as exc:
            settings: Settings = args[0].settings  # type: ignore[attr-defined]
            ours = _translation(exc, settings.redis_url)
            if ours is None:
                raise
            raise ours from exc

    return wrapper


def server_info(client: redis.Redis) -> dict[str, Any]:
    """INFO server+memory fields jobq reports (version, memory, eviction policy)."""
    info: dict[str, Any] = {}
    for section in ("server", "memory", "clients"):
        info.update(client.info(section))
    return info
