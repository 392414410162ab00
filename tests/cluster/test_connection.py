"""A redis+cluster:// URL reaches a real local cluster (tests/conftest.py: redis_cluster);
a plain redis:// URL naming one of its nodes is refused with the scheme to use."""

from __future__ import annotations

import pytest

from jobq_core import AsyncQueue, ConfigError, Queue, Settings, Worker
from jobq_core.cli.app import main
from jobq_core.connection import connect, is_cluster
from jobq_core.localcluster import LocalCluster, queue_names_on_distinct_primaries
from tests import tasks
from tests.helpers import drain, run_async


def test_queues_on_three_primaries_enqueue_and_read(csettings: Settings,
                                                     redis_cluster: LocalCluster) -> None:
    names = queue_names_on_distinct_primaries(3, 3)
    assert sorted(redis_cluster.primary_of(f"{{{n}}}") for n in names) == [0, 1, 2]
    client = connect(csettings)
    assert is_cluster(client)
    for name in names:
        q = Queue(name, settings=csettings)
        job = q.enqueue(tasks.add, 1, 2)
        assert q.job(job.id) is not None and q.job(job.id).status == "pending"  # type: ignore[union-attr]
        # The job's hash lives on the primary its queue's slot belongs to.
        node = redis_cluster.primaries[redis_cluster.primary_of(f"{{{name}}}")]
        with redis_cluster.client(node) as plain:
            assert plain.exists(f"{csettings.prefix}:{{{name}}}:job:{job.id}") == 1


def test_async_queue_enqueues_on_a_cluster(csettings: Settings) -> None:
    name = queue_names_on_distinct_primaries(3, 3)[2]

    async def main() -> str:
        aq = AsyncQueue(name, settings=csettings)
        job = await aq.enqueue(tasks.add, 2, 3)
        found = await aq.job(job.id)
        await aq.aclose()
        assert found is not None
        return str(found.status)

    assert run_async(main) == "pending"


def test_plain_url_to_a_cluster_node_names_the_cluster_scheme(
        redis_cluster: LocalCluster) -> None:
    node = redis_cluster.primaries[0]
    s = Settings(redis_url=f"redis://127.0.0.1:{node.port}/0", prefix="tplain")
    # A queue whose slot another primary serves: the node answers MOVED.
    name = queue_names_on_distinct_primaries(3, 3)[1]
    with pytest.raises(ConfigError, match=r"redis\+cluster://"):
        Queue(name, settings=s).enqueue(tasks.add, 1, 1)


def test_cli_reads_a_cluster_url(cluster_url: str) -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["info", "--url", cluster_url, "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_worker_with_a_plain_url_to_a_cluster_node_stops_at_start(
        redis_cluster: LocalCluster) -> None:
    node = redis_cluster.primaries[0]
    s = Settings(redis_url=f"redis://127.0.0.1:{node.port}/0", prefix="tplainw")
    w = Worker(["default"], s, pool="thread", imports=["tests.tasks"])
    with pytest.raises(ConfigError, match=r"is a node of a Redis Cluster.*redis\+cluster://"):
        w.work(burst=True)


def test_burst_worker_drains_a_queue_on_the_cluster(csettings: Settings) -> None:
    name = queue_names_on_distinct_primaries(3, 3)[1]
    q = Queue(name, settings=csettings)
    jobs = [q.enqueue(tasks.add, i, i) for i in range(20)]
    assert drain(csettings, [name]) == 20
    assert [j.result(timeout_s=5) for j in jobs] == [2 * i for i in range(20)]
