"""A Flask app that enqueues a job from a request and shows its result.

How to run it: README.md beside this file (tests/integration/test_flask_example.py runs
those steps as written). The jobs run in worker threads inside the app
(JOBQ_EMBEDDED_WORKER, default on here); with JOBQ_EMBEDDED_WORKER=0 a separate
`jobq worker --import examples.flask_app.tasks` runs them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, abort, jsonify, render_template_string, request, url_for

from jobq_core.embedded import FlaskJobq

from . import tasks

jobq = FlaskJobq()

PAGE = """<!doctype html>
<title>word count</title>
<form method="post" action="{{ url_for('count') }}">
  <textarea name="text" rows="4" cols="60">{{ text }}</textarea><br>
  <button>Count words in the background</button>
</form>
{% if job %}
<p>job {{ job.id }}: <b>{{ job.status }}</b>
{% if job.status == "completed" %} — {{ job.return_value.words }} words,
  {{ job.return_value.characters }} characters
{% elif job.error %}<pre>{{ job.error.strip().splitlines()[-1] }}</pre>
{% else %} <a href="{{ url_for('show', job_id=job.id) }}">refresh</a>{% endif %}
</p>
{% endif %}
"""


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        JOBQ_EMBEDDED_WORKER=os.environ.get("JOBQ_EMBEDDED_WORKER", "1") not in ("0", ""),
        JOBQ_WORKER_CONCURRENCY=2,
    )
    app.config.update(config or {})
    jobq.init_app(app)

    @app.get("/")
    def index() -> str:
        return render_template_string(PAGE, job=None, text="")

    @app.post("/count")
    def count() -> Any:
        text = request.form.get("text") or (request.get_json(silent=True) or {}).get("text", "")
        job = jobq.queue("default").enqueue(tasks.word_count, text)
        if request.is_json:
            return jsonify(id=job.id, status=job.status,
                           url=url_for("show", job_id=job.id)), 202
        return render_template_string(PAGE, job=job, text=text), 202

    @app.get("/jobs/<job_id>")
    def show(job_id: str) -> Any:
        job = jobq.queue("default").job(job_id)
        if job is None:
            abort(404)
        if request.accept_mimetypes.best == "application/json":
            return jsonify(id=job.id, status=job.status, result=job.return_value,
                           error=job.error.strip().splitlines()[-1:] or None)
        return render_template_string(PAGE, job=job, text="")

    return app
