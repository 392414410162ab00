"""Reading CLUSTER NODES: roles, link states, slot ranges, and which primary holds a queue."""

from __future__ import annotations

from jobq_core.keys import Keyspace
from jobq_core.nodes import parse_cluster_nodes, queue_slot

REPLY = """\
d63 127.0.0.1:7302@17302 master - 0 1796552321189 2 connected 5461-10922
5136 127.0.0.1:7301@17301 myself,master - 0 0 1 connected 0-5460 [93->-efbb]
efbb 127.0.0.1:7303@17303 master,fail - 0 1796552320185 3 disconnected 10923-16383
a1a1 127.0.0.1:7304@17304 slave,fail? 5136 0 1796552320185 1 connected
"""


def test_roles_links_and_slots() -> None:
    nodes = {n.address: n for n in parse_cluster_nodes(REPLY)}
    assert [n.role for n in nodes.values()] == ["primary", "primary", "primary", "replica"]
    assert nodes["127.0.0.1:7301"].slots == ((0, 5460),)  # the migrating mark is not a range
    assert nodes["127.0.0.1:7302"].slot_count == 10922 - 5461 + 1
    assert nodes["127.0.0.1:7303"].link == "fail"
    assert nodes["127.0.0.1:7304"].link == "pfail"
    assert nodes["127.0.0.1:7304"].primary_id == "5136"


def test_a_queue_is_one_slot_held_by_one_primary() -> None:
    keys = Keyspace("jobq")
    slot = queue_slot(keys, "emails")
    # Every key of the queue hashes to that slot (the `{queue}` tag).
    from redis.crc import key_slot
    assert key_slot(keys.job("emails", "x1").encode()) == slot
    assert key_slot(keys.marker("emails").encode()) == slot
    owners = [n.address for n in parse_cluster_nodes(REPLY) if n.serves(slot)]
    assert len(owners) == 1
