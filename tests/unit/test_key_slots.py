"""Every script touches one Redis Cluster slot, and none mixes the control slot's global keys
with a queue's keys (issue 14), checked without a server: the KEYS each wrapper of
scripts.py passes (test_lua_contract's calls) are hashed as a cluster would hash them."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest
from redis.crc import key_slot

from jobq_core.keys import CONTROL_TAG, QUEUE_NAME_RE, Keyspace
from tests.unit.test_lua_contract import CALLS, Recording

KEYS = Keyspace("jobq")
CONTROL_SLOT = key_slot(KEYS.queues().encode())


def tag(key: str) -> str:
    """The hash tag a cluster hashes `key` by (the whole key when it has none)."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1:end] if start >= 0 and end > start + 1 else key


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_script_is_given_keys_of_one_slot_and_never_control_with_queue_keys(
        name: str) -> None:
    call, reply = CALLS[name]
    s = Recording(reply)
    call(s)
    [(_, keys, _)] = s.calls
    tags = {tag(k) for k in keys}
    control = {t for t in tags if "{" + t + "}" == CONTROL_TAG}
    assert not control or tags == control, f"{name}.lua mixes {tags}"
    if name == "claim":  # a single server's multi-queue claim; on a cluster, one slot a call
        assert tags == {"q", "r"}
        return
    assert len({key_slot(k.encode()) for k in keys}) == 1, f"{name}.lua spans slots: {keys}"


def _key_methods() -> dict[str, Callable[..., str]]:
    return {n: m for n, m in inspect.getmembers(KEYS, inspect.ismethod)
            if not n.startswith("_") and n != "check"}


def test_every_key_is_a_queue_key_or_a_control_key() -> None:
    # A method whose first parameter is the queue builds that queue's key; every other key
    # is global and must be in the control slot, whatever its arguments.
    assert len(_key_methods()) > 40
    for name, method in _key_methods().items():
        params = list(inspect.signature(method).parameters)
        args = ["x"] * len(params)
        key = method(*args)
        if params[:1] == ["queue"]:
            assert tag(key) == "x", name
        else:
            assert "{" + tag(key) + "}" == CONTROL_TAG, f"{name}: {key}"
            assert key_slot(key.encode()) == CONTROL_SLOT, name


def test_the_control_tag_is_no_queue_name() -> None:
    inner = CONTROL_TAG.strip("{}")
    assert not QUEUE_NAME_RE.fullmatch(inner)
    # A worker id or session digest after the tag cannot move the key to another slot.
    assert tag(KEYS.worker("{evil}")) == inner and tag(KEYS.schedule("a}b{c")) == inner
