"""A job whose id jobq would not have made (written by another client: `/`, `?`, `#`, `%`,
spaces, non-ASCII, markup) opens from its link on the list, shows its id escaped, and can be
requeued, cancelled and purged from its page (POST with the CSRF token, as any job)."""

from __future__ import annotations

import html
import re

import pytest
import redis
from flask.testing import FlaskClient

from jobq_core import Queue, Settings
from jobq_core.keys import Keyspace
from tests.dashboard.conftest import post
from tests.helpers import drain

ODD_IDS = ["a/b/logs", "what?x=1&y=2", "frag#1", "100%25 %zz", "with space", "naïve-日本",
           "<script>alert(9)</script>", "tilde~41~", "..", "x/../y"]


def _odd_dead_job(settings: Settings, queue: Queue, r: redis.Redis, odd: str) -> None:
    """A job another client wrote under `odd` into the pending list: its task is unknown, so
    a worker moves it to dead."""
    keys = Keyspace(settings.prefix)
    job = queue.enqueue("tests.tasks.no_such_task", 1)
    r.rename(keys.job("default", job.id), keys.job("default", odd))
    score = r.zscore(keys.pending("default"), job.id)
    assert score is not None
    r.zrem(keys.pending("default"), job.id)
    r.zadd(keys.pending("default"), {odd: score})
    drain(settings, unknown_task_grace_s=0)
    assert r.zscore(keys.dead("default"), odd) is not None


def _link(page: str, odd: str) -> str:
    found = re.search(r'<a class="mono" href="([^"]+)">' + re.escape(html.escape(odd)) + "</a>",
                      page)
    assert found, f"no link to {odd!r}"
    return html.unescape(found.group(1))


def _form(page: str, action: str) -> str:
    found = re.search(r'<form method="post" action="([^"]+/' + action + ')"', page)
    assert found, f"no {action} form"
    return html.unescape(found.group(1))


@pytest.mark.parametrize("odd", ODD_IDS)
def test_a_job_with_an_odd_id_opens_and_is_acted_on_from_its_page(
        client: FlaskClient, settings: Settings, queue: Queue, r: redis.Redis,
        odd: str) -> None:
    _odd_dead_job(settings, queue, r, odd)
    listing = client.get("/jobs/dead?queue=default").get_data(as_text=True)
    assert "<script>alert" not in listing
    url = _link(listing, odd)
    page = client.get(url)
    assert page.status_code == 200, (url, page.data[:300])
    text = page.get_data(as_text=True)
    assert f'<code class="mono" id="job-id">{html.escape(odd)}</code>' in text
    assert "<script>alert" not in text
    api = client.get("/api" + url)
    assert api.status_code == 200 and api.get_json()["id"] == odd

    requeue = _form(text, "requeue")
    assert client.post(requeue, data={"state": "dead"}).status_code == 403  # no CSRF token
    moved = post(client, requeue, {"state": "dead", "requeues": "0"})
    assert moved.status_code == 302 and moved.headers["Location"].endswith(url), url
    assert r.zscore(Keyspace(settings.prefix).pending("default"), odd) is not None

    text = client.get(url).get_data(as_text=True)
    cancel = _form(text, "cancel")
    assert b"Cancel 1 pending job" in post(client, cancel).data
    assert post(client, cancel, {"confirm": "1"}).status_code == 302
    assert r.zscore(Keyspace(settings.prefix).cancelled("default"), odd) is not None

    text = client.get(url).get_data(as_text=True)
    assert post(client, _form(text, "purge"), {"confirm": "1"}).status_code == 302
    assert not r.exists(Keyspace(settings.prefix).job("default", odd))
    assert client.get(url).status_code == 404
