"""The contract between lua/*.lua and scripts.py, checked without a server.

Each script's header names its KEYS and its return codes; the Python wrapper must pass as
many keys and understand every code. Constants kept on both sides must agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import redis

from jobq_core import job as jobmod
from jobq_core import luasource
from jobq_core import scripts as scripts_mod
from jobq_core.errors import InvalidState, JobNotFound, LeaseLost, QueueFull
from jobq_core.job import Claimed, JobSpec
from jobq_core.replies import ROW_FIELDS, _claimed
from jobq_core.scripts import Code, Scripts

JOB = Claimed(id="j1", queue="q", token="w/1", fields={"task": "t"})
SPEC = JobSpec(id="j1", task="t", args_json="[]", kwargs_json="{}")

# One call of each wrapper, and a reply of the right shape for it to parse.
CALLS: dict[str, tuple[Callable[[Scripts], Any], Any]] = {
    "enqueue": (lambda s: s.enqueue("q", [SPEC]), [1]),
    "claim": (lambda s: s.claim(["q", "r"], 1, "w"), [[], [], -1, 0, -1]),
    "extend": (lambda s: s.extend("q", [("j1", "w/1")]), []),
    "complete": (lambda s: s.complete_many("q", [(JOB, "1", 60, 5, "")]), [1]),
    "logs": (lambda s: s.append_logs("jobq:{q}:job:j1", "jobq:{q}:job:j1:logs", "w/1", "ol\n"), 1),
    "fail": (lambda s: s.fail(JOB, "fail"), 2),
    "promote": (lambda s: s.promote("q"), [0, -1]),
    "reap": (lambda s: s.reap("q"), []),
    "trim": (lambda s: s.trim("q"), 0),
    "release": (lambda s: s.release_many("q", [JOB]), [1]),
    "cancel": (lambda s: s.cancel("q", "j1"), 1),
    "kill": (lambda s: s.kill("q", "j1", "killed"), 1),
    "requeue": (lambda s: s.requeue("q", "failed", ["j1"]), [0, 0]),
    "purge": (lambda s: s.purge("q", "failed", ["j1"]), [0, 0]),
    "search": (lambda s: s.search("q", "failed", 0, 10, newest_first=True), [0]),
    "rows": (lambda s: s.rows_page("q", "failed", 0, 10, newest_first=True), [0]),
    "watch": (lambda s: s.watch("q", "j1"), "pending"),
    "depend": (lambda s: s.depend("q", "j1", "q/j2"), "waiting"),
    "resolve": (lambda s: s.resolve("q", "j1", [("q/j2", "completed")]), "pending"),
    "lead": (lambda s: s.lead("tok", 1000, "me"), [1, 0, 1000]),
    "resign": (lambda s: s.resign("tok"), 1),
    "advance": (lambda s: s.advance("tok", "s", "1", 0, 0, "", 0, 0), 1),
    "fire": (lambda s: s.fire("q", "s", 0, 1, SPEC), 1),
    "unknown": (lambda s: s.unknown(JOB, "w", grace_ms=0, known_delay_ms=1,
                                    unknown_delay_ms=1), [1, "w2", "pending"]),
    "advertise": (lambda s: s.advertise("q", "w", 1000, ["t"]), 1),
}

# What a wrapper does with each error code its script returns: raise this error, or hand
# the code to its caller (which acts on it: the scheduler, the worker's recorder).
RETURNED = object()
HANDLING: dict[int, type[Exception] | object] = {
    Code.MISSING: JobNotFound,
    Code.LEASE_NOT_HELD: LeaseLost,
    Code.QUEUE_FULL: QueueFull,
    Code.WRONG_STATE: InvalidState,
}
# Per-job codes (complete, release: the worker logs each refusal), the scheduler's outcomes;
# logs: a refused append is dropped (the job is no longer ours)
RETURNS_CODES = {"complete", "release", "fire", "advance", "logs"}
PER_JOB_CODES = {"complete", "release"}  # a code per job in a list; other scripts return one code


class Recording(Scripts):
    """Scripts whose _run records the call and answers `reply` instead of asking Redis."""

    def __init__(self, reply: Any) -> None:
        client = redis.Redis(unix_socket_path="/nonexistent/jobq-contract.sock",
                             decode_responses=True)
        super().__init__(client, scripts_mod.Settings())
        self.reply = reply
        self.calls: list[tuple[str, list[str], list[Any]]] = []
        self.client.hget = lambda *a: "processing"  # type: ignore[method-assign,assignment]

    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any],
             client: redis.Redis | None = None, via: Any = None) -> Any:
        self.calls.append((name, list(keys), list(args)))
        return self.reply


def _raw(name: str) -> str:
    return (luasource.LUA / f"{name}.lua").read_text()


def header(name: str) -> str:
    """The leading comment block of a script."""
    lines = []
    for line in _raw(name).splitlines():
        if not line.startswith("--"):
            break
        lines.append(line)
    return "\n".join(lines)


def test_every_script_has_a_wrapper_call() -> None:
    assert set(CALLS) == set(scripts_mod.names())


@pytest.mark.parametrize("name", sorted(CALLS))
def test_wrapper_passes_the_keys_the_header_names(name: str) -> None:
    call, reply = CALLS[name]
    s = Recording(reply)
    call(s)
    [(ran, keys, _)] = s.calls
    assert ran == name
    text = header(name)
    if name == "claim":  # KEYS: n per queue, one per queue, the record; called with 2 queues
        per_queue = int(re.search(r"KEYS: (\d+) per queue", text).group(1))  # type: ignore[union-attr]
        assert len(keys) == 2 * (per_queue + 1) + 1
    else:
        named = sorted({int(n) for n in re.findall(r"KEYS\[(\d+)\]", text)})
        assert named == list(range(1, len(named) + 1)), f"{name}: KEYS not numbered 1..n"
        assert len(keys) == len(named), f"{name}.lua names {len(named)} keys"
    used = {int(n) for n in re.findall(r"KEYS\[(\d+)\]", _raw(name)[len(text):])}
    assert used <= set(range(1, len(keys) + 1)), f"{name}.lua uses a key it is not given"


@pytest.mark.parametrize("name", sorted(CALLS))
def test_return_codes_are_codes_and_the_wrapper_handles_each(name: str) -> None:
    body = _raw(name)[len(header(name)):]
    returned = {int(c) for c in re.findall(r"\b(?:return|code =) (-\d+)\b", body)}
    if "lease_check(" in body or "resettled(" in body:  # _lib.lua's: these two
        returned |= {Code.MISSING, Code.LEASE_NOT_HELD}
    codes = {int(c) for c in re.findall(r"(?<![\w\[])(-[1-9])\b", header(name))}
    listed = {c for c in codes if c in {int(x) for x in Code}}
    assert returned <= listed, f"{name}.lua returns {returned - listed} its header omits"
    for code in returned:
        assert code in {int(x) for x in Code}, f"{name}.lua returns {code}, not in Code"
        call, _ = CALLS[name]
        s = Recording([code] if name in PER_JOB_CODES else code)
        if name in RETURNS_CODES:
            got = call(s)
            assert code in (got if isinstance(got, list) else [got])
            continue
        expected = HANDLING.get(code)
        assert isinstance(expected, type), f"{name}: no error for code {code}"
        with pytest.raises(expected):
            call(s)


def test_codes_are_unique_and_raise_for_maps_the_error_ones() -> None:
    assert len({int(c) for c in Code}) == len(Code)
    for code, error in HANDLING.items():
        assert isinstance(error, type)
        with pytest.raises(error):
            scripts_mod.raise_for(code, job_id="j", what="x", queue="q", count=1, state="s")
    scripts_mod.raise_for(1)
    scripts_mod.raise_for([1, -2])


def _lua_number(name: str) -> int:
    match = re.search(rf"^local {name} = (\d+)$", _raw("_lib"), re.M)
    assert match, f"_lib.lua defines no {name}"
    return int(match.group(1))


def test_constants_agree_with_lib_lua() -> None:
    assert _lua_number("PRIORITY_BAND") == jobmod.PRIORITY_BAND
    assert _lua_number("DEFERRED_MS") == jobmod.DEFERRED_MS
    # Pending scores are (100 - priority) * band + seq and must stay below 2**53.
    assert "(100 - (tonumber(priority) or 0)) * PRIORITY_BAND" in _raw("_lib")
    assert (jobmod.MIN_PRIORITY, jobmod.MAX_PRIORITY) == (-100, 100)
    assert (100 - jobmod.MIN_PRIORITY + 1) * jobmod.PRIORITY_BAND < 2**53
    assert "delay_ms (-1: deferred)" in header("enqueue") and jobmod.DEFER == -1


def test_row_fields_match_rows_lua() -> None:
    block = re.search(r"local FIELDS = \{(.*?)\}", _raw("rows"), re.S)
    assert block is not None
    assert tuple(re.findall(r"'([a-z_]+)'", block.group(1))) == ROW_FIELDS


def test_claimed_fields_are_what_claim_lua_sets() -> None:
    # replies._claimed rebuilds the fields claim.lua wrote instead of reading them back.
    sets = re.findall(r"redis\.call\('HSET', job, 'state', 'processing',(.*?)\)", _raw("claim"),
                      re.S)
    assert sets
    written = {f for s in sets for f in re.findall(r"'([a-z_]+)'", s)} | {"state"}
    result = _claimed([[[1, "j1", "w/1", "1", "k", []]], [], -1, 5, -1], ["q"], "w")
    assert set(result.jobs[0].fields) == written
