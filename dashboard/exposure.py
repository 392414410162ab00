"""When the dashboard may serve without a login: only to this machine, and only when
nothing could be relaying the world to it. Fails closed.

Without an account the dashboard is full admin to whoever reaches it, so every request
must pass all of these, however the server was started (`jobq dashboard`, `flask run`,
gunicorn on 0.0.0.0, a reverse proxy):
- this process listens on no TCP address beyond loopback (its listening sockets are
  looked at directly, so a server bound to 0.0.0.0 is seen whatever started it);
- the peer is a loopback address and the request carries no proxy forwarding header;
- the Host header names this machine (localhost, 127.0.0.1, ::1, or a name listed in
  dashboard_allowed_hosts), so a DNS-rebinding page cannot read or post.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import threading
import time

from flask import request

from jobq_core import Settings

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
FORWARDING_HEADERS = ("X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded",
                      "X-Real-Ip", "X-Client-Ip", "True-Client-Ip", "Cf-Connecting-Ip", "Via")
LISTEN_CHECK_S = 2.0  # listening sockets rarely change; look again at most this often

_lock = threading.Lock()
_cached: tuple[float, list[str] | None] = (float("-inf"), None)


def is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def host_name(host: str) -> str:
    """The name part of a Host header, lower case, without port or IPv6 brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """The extra Host names of dashboard_allowed_hosts (comma-separated)."""
    return frozenset(h for h in (host_name(x) for x in settings.dashboard_allowed_hosts.split(","))
                     if h)


def listening_addresses() -> list[str] | None:
    """The local addresses of this process's listening TCP sockets; None if they cannot
    be listed on this system (then nothing counts as safe)."""
    global _cached
    with _lock:
        at, found = _cached
        if time.monotonic() - at < LISTEN_CHECK_S:
            return found
        found = _scan()
        _cached = (time.monotonic(), found)
        return found


def forget_listeners() -> None:
    """Look at the listening sockets again on the next request (after binding a new one)."""
    global _cached
    with _lock:
        _cached = (float("-inf"), None)


def _scan() -> list[str] | None:
    fd_dir = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    try:
        fds = [int(name) for name in os.listdir(fd_dir) if name.isascii() and name.isdigit()]
    except OSError:
        return None
    out = []
    for fd in fds:
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(fd))  # a duplicate: closing it leaves theirs
        except OSError:
            continue
        try:
            if (sock.family in (socket.AF_INET, socket.AF_INET6)
                    and sock.type == socket.SOCK_STREAM
                    and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)):
                out.append(str(sock.getsockname()[0]))
        except OSError:
            pass
        finally:
            sock.close()
    return out


def loopback_refusal(settings: Settings) -> str:
    """Why this request may not use the no-login mode ('' when it may)."""
    listening = listening_addresses()
    if listening is None:
        return "cannot tell which addresses this process listens on"
    public = sorted({a for a in listening if not is_loopback(a)})
    if public:
        return f"this process listens on {', '.join(public)}, beyond this machine"
    if not is_loopback(request.remote_addr):
        return f"the request came from {request.remote_addr or 'an unknown address'}"
    sent = [h for h in FORWARDING_HEADERS if h in request.headers]
    if sent:
        return f"the request was forwarded by a proxy ({', '.join(sent)})"
    name = host_name(request.host)
    if name not in LOOPBACK_HOSTS | allowed_hosts(settings):
        return (f"the Host header {name[:80]!r} is not this machine (a DNS-rebinding page?); "
                "list trusted names in JOBQ_DASHBOARD_ALLOWED_HOSTS")
    return ""
