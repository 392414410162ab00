"""The Errors page and GET/POST /api/errors: groups with counts, escaped, acted on whole."""

from __future__ import annotations

from flask.testing import FlaskClient

from jobq_core import Queue, Settings
from jobq_core.errorgroups import error_groups
from jobq_core.inspect import Inspector
from tests import tasks
from tests.dashboard.conftest import XSS, csrf_token, post
from tests.helpers import drain


def _fail(settings: Settings, queue: Queue) -> None:
    queue.enqueue_many([(tasks.raise_kind, ("key", i)) for i in range(30)])
    queue.enqueue_many([(tasks.raise_kind, ("value", i)) for i in range(12)])
    queue.enqueue_many([(tasks.boom_once, (f"bad {XSS} {i}",)) for i in range(3)])
    drain(settings, concurrency=4)


def test_errors_page_lists_groups_escaped(client: FlaskClient, settings: Settings,
                                          queue: Queue) -> None:
    assert b"No failed or dead jobs" in client.get("/errors").data
    _fail(settings, queue)
    html = client.get("/errors").get_data(as_text=True)
    assert "3 error groups" in html and "KeyError" in html and "ValueError" in html
    assert "amount &lt;n&gt; for &#39;…&#39; is over the limit" in html
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    frag = client.get("/errors", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in frag and "KeyError" in frag


def test_requeue_group_from_the_page_and_purge_confirms(client: FlaskClient,
                                                        settings: Settings,
                                                        queue: Queue) -> None:
    _fail(settings, queue)
    insp = Inspector(settings)
    key = next(g for g in error_groups(insp) if g.type == "KeyError")
    resp = post(client, f"/errors/default/{key.id}/requeue")
    assert resp.status_code == 200 and b"30 done: finished" in resp.data
    assert insp.counts()["default"]["pending"] == 30
    assert insp.counts()["default"]["failed"] == 15
    assert insp.audit().entries[0].action == "requeue error group"
    value = next(g for g in error_groups(insp)
                 if g.type == "ValueError" and g.task.endswith("raise_kind"))
    ask = post(client, f"/errors/default/{value.id}/purge")
    assert b"Purge 12 failed or dead jobs" in ask.data and insp.counts()["default"]["failed"] == 15
    post(client, f"/errors/default/{value.id}/purge", {"confirm": "1"})
    assert insp.counts()["default"]["failed"] == 3
    assert client.post(f"/errors/default/{value.id}/purge").status_code == 403  # no CSRF
    assert post(client, "/errors/default/0123456789abcdef/requeue").status_code == 404
    assert post(client, "/errors/default/not-a-group/requeue").status_code == 400


def test_api_errors(client: FlaskClient, settings: Settings, queue: Queue) -> None:
    _fail(settings, queue)
    groups = client.get("/api/errors").get_json()
    assert sorted((g["type"], g["count"]) for g in groups) == [
        ("KeyError", 30), ("ValueError", 3), ("ValueError", 12)]
    key = next(g for g in groups if g["type"] == "KeyError")
    resp = client.post(f"/api/errors/default/{key['id']}/requeue", json={},
                       headers={"X-CSRF-Token": csrf_token(client)})
    body = resp.get_json()
    assert resp.status_code == 200 and body["done"] == 30 and body["left"] == 0
    assert Inspector(settings).counts()["default"]["pending"] == 30
