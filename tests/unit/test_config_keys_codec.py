"""Pure units: settings parsing, key names, the JSON codec, backoff (no server)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import IntEnum

import pytest

from jobq_core import ConfigError, PayloadError, Settings
from jobq_core.job import JobSpec, decode_call, encode_args
from jobq_core.keys import Keyspace, require_job_id, require_stored_job_id


class Priority(IntEnum):
    HIGH = 5


def test_settings_from_env() -> None:
    s = Settings.from_env({"REDIS_URL": "redis://heroku:1/0", "JOBQ_LEASE_S": "10",
                           "JOBQ_CONCURRENCY": "4", "JOBQ_EAGER": "yes"})
    assert s.redis_url == "redis://heroku:1/0" and s.lease_s == 10.0
    assert s.concurrency == 4 and s.eager is True
    s2 = Settings.from_env({"REDIS_URL": "redis://a", "JOBQ_REDIS_URL": "redis://b"})
    assert s2.redis_url == "redis://b"


@pytest.mark.parametrize("env", [{"JOBQ_LEASE_S": "soon"}, {"JOBQ_CONCURRENCY": "-1"},
                                 {"JOBQ_PREFETCH": "-2"}, {"JOBQ_PREFETCH": "lots"},
                                 {"JOBQ_POOL": "fork"}, {"JOBQ_HEARTBEAT_S": "20"},
                                 {"JOBQ_EAGER": "maybe"}, {"JOBQ_PREFIX": "a{b}"}])
def test_bad_settings_are_clear_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)


def test_every_queue_key_has_the_hash_tag() -> None:
    k = Keyspace("jq")
    names = [k.pending("q"), k.processing("q"), k.scheduled("q"), k.completed("q"),
             k.failed("q"), k.dead("q"), k.cancelled("q"), k.marker("q"), k.seq("q"),
             k.stats("q"), k.history("q"), k.meta("q"), k.job("q", "1"), k.attempts("q", "1"),
             k.notify("q", "1"), k.corrupt("q", "pending")]
    assert all(n.startswith("jq:{q}:") for n in names)
    assert len(set(names)) == len(names)
    assert k.job_prefix("q") + "1" == k.job("q", "1")


@pytest.mark.parametrize("bad", ["", "a b", "x" * 129, "<script>", None, 5])
def test_job_id_validation(bad: object) -> None:
    with pytest.raises(ConfigError):
        require_job_id(bad)


@pytest.mark.parametrize("check", [require_job_id, require_stored_job_id])
def test_a_refused_job_id_is_echoed_short(check: Callable[[object], str]) -> None:
    # require_job_id echoed the whole id it refused (a caller's megabytes, into a log).
    with pytest.raises(ConfigError) as err:
        check("\n" + "x" * 10_000)
    assert len(str(err.value)) < 400 and "job id '\\nxxx" in str(err.value)


def test_codec_round_trip_and_compactness() -> None:
    a, k = encode_args((1, "é", [True, None]), {"x": {"y": 1.5}}, 1000)
    assert a == '[1,"é",[true,null]]' and k == '{"x":{"y":1.5}}'
    assert decode_call({"args": a, "kwargs": k}) == ([1, "é", [True, None]], {"x": {"y": 1.5}})
    spec = JobSpec(id="1", task="t.f", args_json=a, kwargs_json="")
    assert spec.fields() == ["task", "t.f", "args", a]  # defaults are not stored


@pytest.mark.parametrize("args", [
    (), (1.5,), (0.1, -0.0, 1e300, 5e-324, -3, 2**62, True, False, None),
    ("", "é\n\"\\ \u2028 \x00", "\U0001f600"),
])
def test_flat_args_take_the_short_way_with_the_same_text(args: tuple[object, ...]) -> None:
    """Flat calls (str, int, float, bool, None) skip JSONEncoder (producer's time before the
    send) and must give exactly what dumps() gives."""
    from jobq_core.job import _flat_json, dumps

    assert _flat_json(args) == dumps(list(args), "args")
    assert encode_args(args, {}, 1000)[0] == (dumps(list(args), "args") if args else "[]")


@pytest.mark.parametrize("args", [([1],), ({"a": 1},), (float("inf"),), (float("nan"),),
                                  ("a\udcff",), (10**5000,), (Priority.HIGH,)])
def test_other_args_go_the_long_way(args: tuple[object, ...]) -> None:
    """Containers, subclasses (an IntEnum), and values dumps refuses or escapes are left to
    dumps: the same text or the same PayloadError as before."""
    from jobq_core.job import _flat_json, dumps

    assert _flat_json(args) == ""
    try:
        expected = dumps(list(args), "args")
    except PayloadError:
        with pytest.raises(PayloadError):
            encode_args(args, {}, 1 << 20)
    else:
        assert encode_args(args, {}, 1 << 20)[0] == expected


def test_a_flat_int_past_a_lowered_digit_limit_is_a_payload_error() -> None:
    """A process may lower Python's int-to-str digit limit (to 640 digits at least): an int
    below the short way's 4,000 bits but past that limit is refused as dumps refuses it, with
    a PayloadError saying what is wrong, not a bare ValueError from int.__repr__."""
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        with pytest.raises(PayloadError, match="args must be JSON-serialisable"):
            encode_args((10**700,), {}, 1 << 20)
        assert encode_args((10**600,), {}, 1 << 20)[0] == f"[{10**600}]"
    finally:
        sys.set_int_max_str_digits(limit)


@pytest.mark.parametrize("text", [
    "[1796592686.9252844]", '[1,"é",[true,null],{"a":-0.5e3}]', "{}", "[]", "7", '"s"',
    " [1]", "[1] ", "\n[1]\n", "[1]x", "[1", "", "  ", "\ufeff[1]", "[NaN,Infinity]",
    "[" * 100_000, "[1" + "0" * 5000 + "]",
])
def test_stored_json_is_read_as_json_loads_reads_it(text: str) -> None:
    """The scanner's short way (decode_call, before every job's first line) gives what
    json.loads gives: the same value, or the same error (type and message)."""
    import json

    from jobq_core.job import _loads

    try:
        expected = json.loads(text)
    except (ValueError, RecursionError) as exc:
        with pytest.raises(type(exc)) as got:
            _loads(text)
        assert str(got.value) == str(exc)
    else:
        assert repr(_loads(text)) == repr(expected)


@pytest.mark.parametrize("fields", [{"args": "{bad"}, {"args": '{"a": 1}'},
                                    {"args": "[]", "kwargs": "[1]"}])
def test_malformed_payloads(fields: dict[str, str]) -> None:
    with pytest.raises(PayloadError, match="malformed"):
        decode_call(fields)


def test_kwargs_need_string_keys() -> None:
    with pytest.raises(PayloadError):
        encode_args((), {1: 2}, 100)  # type: ignore[dict-item]


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    import threading

    from jobq_core.job import Claimed
    from jobq_core.worker.recorder import Recorder

    s = Settings(retry_backoff_s=1.0, retry_backoff_max_s=10.0)
    rec = Recorder(s, None, "w", threading.Event(), lambda j: None)  # type: ignore[arg-type]
    delays = [rec._backoff(Claimed("1", "q", "t", {"retries": str(n)}), None, None)
              for n in range(8)]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and 2.0 <= delays[2] <= 4.0
    assert all(5.0 <= d <= 10.0 for d in delays[4:])
    assert rec._backoff(Claimed("1", "q", "t", {}), None, 0.25) == 0.25


@pytest.mark.parametrize("name", ["default\n", "default\r\n", "\ndefault", "def ault", ""])
def test_names_are_matched_in_full(name: str) -> None:
    # `$` matches before a trailing newline: "default\n" passed re.match("^...$").
    from jobq_core.keys import check_queue_name, valid_job_id
    from jobq_core.registry import check_task_name
    from jobq_core.schedule import check_schedule_name

    with pytest.raises(ConfigError):
        check_queue_name(name)
    assert not valid_job_id(name.replace("default", "abc"))
    with pytest.raises(ConfigError):
        check_schedule_name(name)
    with pytest.raises(ConfigError):
        check_task_name(name.replace("default", "tasks.add"))
