"""Flow control on the pages: limits and pause on the Queues page, deferred jobs in the
scheduled list, and a job's dependencies on its page."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from jobq_core import Queue, Settings
from jobq_core.keys import Keyspace
from jobq_core.scripts import Scripts
from tests import tasks
from tests.helpers import drain


def _html(client: FlaskClient, url: str) -> str:
    resp = client.get(url)
    assert resp.status_code == 200, (url, resp.status_code, resp.data[:300])
    return resp.get_data(as_text=True)


def test_queues_page_shows_limits_in_use(client: FlaskClient, settings: Settings,
                                         queue: Queue) -> None:
    queue.set_limit(tasks.add, concurrency=1)
    queue.set_limit("api.example.com", rate=100, per_s=60)
    queue.enqueue_many([(tasks.add, [i, i]) for i in range(3)])
    claimed = Scripts(queue.client, settings).claim(["default"], 3, "w-test")
    assert len(claimed.jobs) == 1  # the other two are parked under the cap of 1
    html = _html(client, "/queues")
    limits = html.split('id="limits"')[1]
    row = re.search(r'<tr id="limit-default-\d+">\s*<th scope="row">default</th>\s*'
                    r'<td class="mono">tests.tasks.add</td>(.*?)</tr>', limits, re.S)
    assert row is not None, limits
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert [c.strip() for c in cells[:4]] == ["1", "1", "—", "none"]
    assert cells[4].strip() == "2" and "when a running job ends" in cells[5]
    assert "api.example.com" in limits and "100 per 60 s" in limits


def test_queues_page_without_limits(client: FlaskClient, queue: Queue) -> None:
    queue.enqueue(tasks.add, 1, 1)
    assert "No limits set" in _html(client, "/queues")


def test_paused_queue_says_what_paused_means(client: FlaskClient, queue: Queue) -> None:
    queue.enqueue(tasks.add, 1, 1)
    queue.pause()
    html = _html(client, "/queues")
    assert "st-paused" in html and "accepts jobs, none claimed" in html and ">Resume<" in html


def test_deferred_jobs_wait_on_dependencies(client: FlaskClient, settings: Settings,
                                            queue: Queue) -> None:
    parent = queue.enqueue(tasks.add, 1, 2)
    child = queue.enqueue_call(tasks.add, args=(3, 4), depends_on=parent)
    delayed = queue.enqueue_in(3600, tasks.add, 5, 6)
    assert _html(client, "/queues").count('id="deferred-default">1<') == 1
    listing = _html(client, "/jobs/scheduled?queue=default")
    rows = {m.group(1): m.group(0) for m in re.finditer(
        r'<tr class="">.*?href="/jobs/default/([0-9a-f]+)".*?</tr>', listing, re.S)}
    assert "waiting on dependencies" in rows[child.id] and "checked again" in rows[child.id]
    assert "waiting on dependencies" not in rows[delayed.id] and "in 59 min" in rows[delayed.id]

    page = _html(client, f"/jobs/default/{child.id}")
    deps = page.split('id="dependencies"')[1].split("</section>")[0]
    assert "Depends on (1)" in deps and f'href="/jobs/default/{parent.id}"' in deps
    assert "st-pending" in deps and "waits for it" in deps
    assert "waiting on 1 of 1 dependencies" in page
    raw = client.get(f"/jobs/default/{child.id}/raw/depends_on")
    assert raw.mimetype == "text/plain" and raw.get_data(as_text=True) == f'["default/{parent.id}"]'

    drain(settings)  # runs the parent, then the child it released
    page = _html(client, f"/jobs/default/{child.id}")
    deps = page.split('id="dependencies"')[1].split("</section>")[0]
    assert "st-completed" in deps and "heard it ended" in deps
    assert "waiting on" not in page


def test_dependency_in_another_queue_and_gone(client: FlaskClient, settings: Settings,
                                              queue: Queue, other_queue: Queue) -> None:
    parent = other_queue.enqueue(tasks.add, 1, 2)
    child = queue.enqueue_call(tasks.add, args=(3, 4), depends_on=[parent],
                               allow_failure=True)
    other_queue.client.delete(Keyspace(settings.prefix).job("emails", parent.id))
    page = _html(client, f"/jobs/default/{child.id}")
    deps = page.split('id="dependencies"')[1].split("</section>")[0]
    assert f'href="/jobs/emails/{parent.id}"' in deps and "gone (expired or purged)" in deps
    assert "allow_failure" in deps


def test_job_without_dependencies_has_no_section(client: FlaskClient, queue: Queue) -> None:
    job = queue.enqueue(tasks.add, 1, 2)
    assert 'id="dependencies"' not in _html(client, f"/jobs/default/{job.id}")
