"""`serve`: run the dashboard on a threaded development-grade server (what `jobq dashboard`
calls). Production: gunicorn -k gthread dashboard.wsgi:app."""

from __future__ import annotations

import ipaddress
import logging

from werkzeug.serving import make_server

from jobq_core import ConfigError, Settings

from .app import create_app
from .auth import Accounts

log = logging.getLogger("jobq.dashboard")


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'; False for 0.0.0.0, '' and other names."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, host: str) -> None:
    """Refuse to listen beyond this machine when no dashboard account is configured."""
    if not is_loopback_host(host) and not Accounts(settings).configured:
        raise ConfigError(
            f"refusing to serve the dashboard on {host} without a login: set "
            "JOBQ_DASHBOARD_USER and JOBQ_DASHBOARD_PASSWORD_HASH (make the hash with "
            "`python -m dashboard.hashpw`), or bind 127.0.0.1")


def serve(settings: Settings | None = None, host: str | None = None, port: int | None = None,
          *, echo: bool = True) -> None:
    """Serve the dashboard until interrupted. Binds settings.dashboard_host (127.0.0.1)
    unless told; raises ConfigError for a non-loopback host without credentials."""
    s = settings or Settings.from_env()
    host = host or s.dashboard_host
    port = s.dashboard_port if port is None else port
    check_bind(s, host)
    app = create_app(s)
    server = make_server(host, port, app, threaded=True)
    shown = f"[{host}]" if ":" in host else host
    if echo:
        print(f"jobq dashboard: http://{shown}:{server.server_port}/", flush=True)
        if Accounts(s).configured:
            names = ", ".join(f"{a.name} ({a.role})" for a in Accounts(s).accounts)
            print(f"jobq dashboard: log in as {names}", flush=True)
        else:
            print("jobq dashboard: no login configured; only this machine can connect",
                  flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
