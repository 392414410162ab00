"""The dashboard in a real browser: live counts, actions, confirmations, escaping."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from jobq_core import Queue, Settings
from tests import tasks
from tests.helpers import drain

PAYLOAD = '<script>alert("xss-script")</script><img src=x onerror="alert(\'xss-img\')">'


def test_htmx_is_the_vendored_version(page: Any, live_url: str) -> None:
    page.goto(live_url + "/")
    assert page.evaluate("htmx.version") == "2.0.11"


def test_live_count_changes_when_a_job_is_enqueued(page: Any, live_url: str,
                                                    queue: Queue) -> None:
    page.goto(live_url + "/")
    expect(page.locator("#total-pending")).to_have_text("0")
    queue.enqueue(tasks.add, 1, 2)
    expect(page.locator("#total-pending")).to_have_text("1", timeout=10_000)
    expect(page.locator("#count-default-pending")).to_have_text("1")


def test_live_updates_pause_and_resume(page: Any, live_url: str, queue: Queue) -> None:
    page.goto(live_url + "/")
    page.click("#live-toggle")
    expect(page.locator("#live-toggle")).to_have_text("Live: paused")
    queue.enqueue(tasks.add, 1, 2)
    page.wait_for_timeout(4_000)  # more than one poll interval
    expect(page.locator("#total-pending")).to_have_text("0")
    page.reload()  # the choice is remembered
    expect(page.locator("#live-toggle")).to_have_text("Live: paused")
    page.click("#live-toggle")
    expect(page.locator("#total-pending")).to_have_text("1", timeout=10_000)


def test_requeue_failed_job_from_its_page(page: Any, live_url: str, queue: Queue,
                                          settings: Settings) -> None:
    job = queue.enqueue(tasks.boom_once, "card declined")
    drain(settings)
    page.goto(f"{live_url}/jobs/default/{job.id}")
    expect(page.locator("h1 .badge")).to_have_text("failed")
    page.click("#action-requeue")
    expect(page.locator("h1 .badge")).to_have_text("pending")
    expect(page.locator(".flash")).to_contain_text("Requeued job")
    assert queue.job(job.id).status == "pending"  # type: ignore[union-attr]


def test_purge_all_dead_with_confirmation(page: Any, live_url: str, queue: Queue,
                                          settings: Settings) -> None:
    for i in range(7):
        queue.enqueue("tests.tasks.missing_task", i)
    drain(settings, unknown_task_grace_s=0)  # dead at once
    page.goto(f"{live_url}/jobs/dead?queue=default")
    expect(page.locator("#list-total")).to_have_text("7")
    page.click("#bulk-purge")
    expect(page.locator("h1")).to_contain_text("Purge all 7 dead jobs in queue default?")
    assert queue.count("dead") == 7  # the confirmation page changed nothing
    page.click("#confirm-button")
    expect(page.locator("#op-progress")).to_have_attribute("data-finished", "yes",
                                                           timeout=10_000)
    expect(page.locator("#op-status")).to_contain_text("7 jobs purged")
    assert queue.count("dead") == 0
    page.goto(f"{live_url}/jobs/dead?queue=default")
    expect(page.locator("#list-total")).to_have_text("0")
    page.goto(f"{live_url}/audit")
    expect(page.locator("#audit")).to_contain_text("purge all: finished")


def test_requeue_selected_rows(page: Any, live_url: str, queue: Queue,
                               settings: Settings) -> None:
    for i in range(3):
        queue.enqueue(tasks.boom_once, str(i))
    drain(settings)
    page.goto(f"{live_url}/jobs/failed?queue=default")
    boxes = page.locator("input[name=ids]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.wait_for_timeout(3_500)  # a poll would wipe the ticks; it must be held back
    expect(page.locator("input[name=ids]:checked")).to_have_count(2)
    page.click("button[value=requeue]")
    expect(page.locator(".flash")).to_contain_text("Requeued 2 of 2")
    expect(page.locator("#list-total")).to_have_text("1")


def test_script_payloads_render_as_text(page: Any, live_url: str, queue: Queue,
                                        settings: Settings) -> None:
    failed = queue.enqueue(tasks.boom_once, PAYLOAD)
    done = queue.enqueue(tasks.echo, PAYLOAD, note=PAYLOAD)
    drain(settings)
    pending = queue.enqueue(tasks.echo, PAYLOAD)
    for url in ["/", "/jobs/failed", "/jobs/completed", "/jobs/pending",
                f"/jobs/default/{failed.id}", f"/jobs/default/{done.id}",
                f"/jobs/default/{pending.id}", "/jobs/failed?text=xss"]:
        page.goto(live_url + url)
        page.wait_for_timeout(300)
        assert page.locator("img[src=x]").count() == 0, url
        assert page.evaluate("document.querySelectorAll('main script').length") == 0, url
    page.goto(f"{live_url}/jobs/default/{failed.id}")
    expect(page.locator("#field-args")).to_contain_text('<script>alert(\\"xss-script\\")')
    expect(page.locator("#field-error")).to_contain_text("onerror=")
    assert re.search(r"Job .* · jobq", page.title())
    # page fixture asserts no dialog fired and no CSP violation was reported.


def test_disable_then_enable_a_schedule(page: Any, live_url: str, settings: Settings) -> None:
    from jobq_core import Schedule
    from jobq_core.inspect import Inspector
    from jobq_core.scheduler import Scheduler

    Scheduler(settings).add(Schedule("nightly-report", "tests.tasks.echo", cron="0 3 * * *",
                                     timezone="Europe/Berlin"))
    insp = Inspector(settings)
    page.goto(f"{live_url}/schedules")
    row = page.locator("#schedule-nightly-report")
    expect(row.locator(".state")).to_have_text("enabled")
    page.click("#disable-nightly-report")
    expect(page.locator(".flash-ok")).to_contain_text("Disabled schedule nightly-report")
    expect(row.locator(".state")).to_have_text("disabled")
    expect(row.locator(".next-run")).to_have_text("—")
    assert not insp.schedule("nightly-report").enabled  # type: ignore[union-attr]
    page.click("#enable-nightly-report")
    expect(page.locator(".flash-ok")).to_contain_text("Enabled schedule nightly-report")
    expect(row.locator(".state")).to_have_text("enabled")
    expect(row.locator(".next-run")).to_contain_text("UTC")
    assert insp.schedule("nightly-report").enabled  # type: ignore[union-attr]
    page.goto(f"{live_url}/audit")
    expect(page.locator("#audit")).to_contain_text("enable schedule")
    expect(page.locator("#audit")).to_contain_text("disable schedule")


def test_killed_worker_shows_as_a_problem_until_its_job_is_back(page: Any, live_url: str,
                                                                 queue: Queue,
                                                                 settings: Settings) -> None:
    import dataclasses
    import time

    from tests.helpers import kill_group, start_worker

    # Heartbeats of 0.25 s: the registry entry of a killed worker expires 0.75 s later.
    fast = dataclasses.replace(settings, heartbeat_s=0.25, lease_s=3.0)
    Queue("idle", settings=settings).enqueue(tasks.add, 1, 1)  # a queue without workers
    page.goto(live_url + "/")
    expect(page.locator('#problems [data-kind="no_worker"]')).to_contain_text(
        "no live worker serves it")
    proc = start_worker(fast, "-q", "default")
    try:
        job = queue.enqueue(tasks.sleep_for, 60)
        deadline = time.monotonic() + 20
        while job.refresh().status != "processing":
            assert time.monotonic() < deadline, "the worker did not claim the job"
            time.sleep(0.05)
    finally:
        kill_group(proc)
        proc.wait(10)
    killed = time.monotonic()
    lost = page.locator('#problems [data-kind="lost_worker"]', has_text=job.id)
    expect(lost).to_be_visible(timeout=2_000)
    assert time.monotonic() - killed <= 2.5  # 2 s, plus the assertion's own polling
    expect(lost).to_contain_text("no worker serves default to reap it")
    # It stays while the job is processing, past the lease end (no reaper serves default).
    page.wait_for_timeout(int(fast.lease_s * 1000) + 500)
    expect(lost).to_be_visible()
    assert job.refresh().status == "processing"
    lost.locator("button", has_text="Hand back 1 job now").click()
    expect(page.locator(".flash")).to_contain_text("Handed back 1 job(s)")
    expect(lost).to_have_count(0)
    # Until the registry forgets it, the worker itself is still listed, holding nothing.
    expect(page.locator('#problems [data-kind="lost_worker"]')).to_contain_text(
        "holds no jobs now")
    assert job.refresh().status == "pending"


def test_errors_page_requeues_one_group(page: Any, live_url: str, queue: Queue,
                                        settings: Settings) -> None:
    queue.enqueue_many([(tasks.raise_kind, ("key", i)) for i in range(40)])
    queue.enqueue_many([(tasks.raise_kind, ("value", i)) for i in range(7)])
    queue.enqueue(tasks.boom_once, PAYLOAD)
    drain(settings, concurrency=4)
    page.goto(live_url + "/errors")
    rows = page.locator("#error-groups tbody tr")
    expect(rows).to_have_count(3)
    key = rows.filter(has_text="KeyError")
    expect(key.locator("td.num").first).to_have_text("40")
    expect(rows.filter(has_text="ValueError").filter(has_text="amount")).to_contain_text(
        "amount <n> for '…' is over the limit")
    expect(page.locator("#error-groups")).to_contain_text('<script>alert("xss-script")')
    key.locator("button", has_text="Requeue 40").click()
    expect(page.locator("#group-progress")).to_have_text("40 done: finished")
    assert Queue("default", settings=settings).count("pending") == 40
    page.goto(live_url + "/errors")
    expect(page.locator("#error-groups tbody tr", has_text="KeyError").locator(
        "td.num").nth(1)).to_have_text("0")


def test_group_action_chains_its_steps_with_progress(page: Any, live_url: str, queue: Queue,
                                                     settings: Settings,
                                                     monkeypatch: Any) -> None:
    from dashboard.views import errors

    monkeypatch.setattr(errors, "STEP_S", 0.0)  # one batch per step
    monkeypatch.setattr(errors, "BATCH", 10)
    queue.enqueue_many([(tasks.raise_kind, ("key", i)) for i in range(35)])
    drain(settings, concurrency=4)
    page.goto(live_url + "/errors")
    page.locator("button", has_text="Purge…").click()
    expect(page.locator("h1")).to_contain_text("Purge 35 failed or dead jobs")
    page.click("#confirm-button")
    expect(page.locator("#group-progress")).to_contain_text("10 done, 25 left")
    expect(page.locator("#group-progress")).to_have_text("35 done: finished", timeout=10_000)
    assert Queue("default", settings=settings).count("failed") == 0


def test_throughput_chart_hover_and_queue_choice(page: Any, live_url: str, queue: Queue,
                                                 settings: Settings) -> None:
    queue.enqueue_many([(tasks.add, (i, i)) for i in range(3)])
    Queue("emails", settings=settings).enqueue(tasks.add, 1, 1)
    drain(settings, ["default", "emails"])
    page.goto(live_url + "/")
    last = page.locator("#throughput-chart .bar").last  # this minute
    tip = last.locator(".tip")
    expect(tip).to_be_hidden()
    last.hover()
    expect(tip).to_be_visible()
    expect(tip).to_have_text(re.compile(r"^\d\d:\d\d UTC: 4 completed, 0 failed$"))
    page.select_option("#chart-queue", "emails")  # htmx swaps the overview, no reload
    expect(page.locator("h2", has_text="Throughput")).to_have_text(
        "Throughput, last 60 minutes in emails")
    assert page.url.endswith("/?queue=emails")
    last = page.locator("#throughput-chart .bar").last
    last.hover()
    expect(last.locator(".tip")).to_have_text(re.compile(r"UTC: 1 completed, 0 failed$"))


def test_job_page_tails_the_log_of_a_running_job(page: Any, live_url: str, queue: Queue,
                                                 settings: Settings, tmp_path: Any) -> None:
    from tests.helpers import worker_thread

    gate = tmp_path / "gate"
    job = queue.enqueue(tasks.print_until, str(gate))
    with worker_thread(settings.replace(log_flush_s=0.1), pool="thread", concurrency=1):
        page.goto(f"{live_url}/jobs/default/{job.id}")
        expect(page.locator("#logs-live")).to_be_visible(timeout=10_000)
        expect(page.locator("#job-log")).to_contain_text("tick 3", timeout=10_000)
        # The tail grows without a reload while the job runs.
        expect(page.locator("#job-log")).to_contain_text("tick 60", timeout=15_000)
        gate.touch()
        job.result(timeout_s=10)
    expect(page.locator("#job-log")).to_contain_text("done", timeout=10_000)
    expect(page.locator("#logs-live")).to_have_count(0)  # the job ended: the poll stopped
