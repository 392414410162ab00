"""The jobq operator dashboard (Flask + htmx).

    from dashboard import create_app
    app = create_app()                      # standalone; gunicorn dashboard.wsgi:app
    host.register_blueprint(make_blueprint(), url_prefix="/jobq")   # inside your app
    serve(settings, "127.0.0.1", 5000)      # what `jobq dashboard` runs
"""

from __future__ import annotations

from .app import create_app, make_blueprint
from .serving import serve

__all__ = ["create_app", "make_blueprint", "serve"]
