"""Every queue of a cluster with its node, and Redis health per node: the read API,
`jobq info` and the dashboard's overview and queues pages."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner

from dashboard import create_app
from jobq_core import Queue, Settings
from jobq_core.cli import main
from jobq_core.inspect import Inspector
from jobq_core.localcluster import LocalCluster, queue_names_on_distinct_primaries
from tests import tasks


@pytest.fixture
def spread(cluster_url: str) -> tuple[Settings, list[str]]:
    """Settings on the cluster and three queues, one per primary, each with a job."""
    settings = Settings(redis_url=cluster_url, prefix=f"t{uuid.uuid4().hex[:10]}")
    names = queue_names_on_distinct_primaries(3, 3, f"v{uuid.uuid4().hex[:4]}-")
    for name in names:
        Queue(name, settings=settings).enqueue(tasks.add, 1, 2)
    return settings, names


def _addresses(cluster: LocalCluster) -> tuple[list[str], list[str]]:
    return ([f"127.0.0.1:{n.port}" for n in cluster.primaries],
            [f"127.0.0.1:{n.port}" for n in cluster.replicas])


def test_read_api_names_the_primary_of_each_queue_and_every_node(
        spread: tuple[Settings, list[str]], redis_cluster: LocalCluster) -> None:
    settings, names = spread
    primaries, replicas = _addresses(redis_cluster)
    insp = Inspector(settings)
    where = insp.queue_nodes(names)
    assert [where[q] for q in names] == primaries  # one queue per primary, in slot order
    nodes = insp.nodes(names)
    assert [n.address for n in nodes] == sorted(primaries) + sorted(replicas)
    by = {n.address: n for n in nodes}
    for q, addr in zip(names, primaries, strict=True):
        n = by[addr]
        assert n.role == "primary" and n.link == "connected" and not n.error
        assert n.queues == (q,) and n.slots > 5000 and n.used_memory > 0
    for addr in replicas:
        assert by[addr].role == "replica" and by[addr].primary in primaries
        assert by[addr].queues == ()


def test_jobq_info_shows_each_queue_with_its_node(spread: tuple[Settings, list[str]],
                                                   redis_cluster: LocalCluster) -> None:
    settings, names = spread
    primaries, replicas = _addresses(redis_cluster)
    env = {"JOBQ_REDIS_URL": settings.redis_url, "JOBQ_PREFIX": settings.prefix}
    run = CliRunner().invoke(main, ["info", "--json"], env=env)
    assert run.exit_code == 0, run.output
    data = json.loads(run.output)
    assert {q["name"]: q["node"] for q in data["queues"]} == dict(zip(names, primaries,
                                                                      strict=True))
    assert len(data["nodes"]) == len(primaries) + len(replicas)
    text = CliRunner().invoke(main, ["info"], env={**env, "COLUMNS": "200"})
    assert text.exit_code == 0, text.output
    assert "Redis nodes" in text.output
    for addr in primaries + replicas:
        assert addr in text.output


def test_dashboard_pages_show_nodes(spread: tuple[Settings, list[str]],
                                    redis_cluster: LocalCluster) -> None:
    settings, names = spread
    primaries, _ = _addresses(redis_cluster)
    app = create_app(settings)
    app.config["TESTING"] = True
    client = app.test_client()
    overview = client.get("/").get_data(as_text=True)
    assert 'id="redis-nodes"' in overview
    queues = client.get("/queues").get_data(as_text=True)
    for q, addr in zip(names, primaries, strict=True):
        assert f'id="node-{q}">{addr}<' in overview
        assert f'id="node-{q}">{addr}<' in queues
    api = client.get("/api/queues").get_json()
    assert {q["name"]: q["node"] for q in api} == dict(zip(names, primaries, strict=True))
