"""Job ids as URL path segments (dashboard/jobids.py)."""

from __future__ import annotations

import pytest

from dashboard.jobids import job_id_from_url, job_id_to_url


@pytest.mark.parametrize("job_id", ["a/b", "what?x=1&y=2", "frag#1", "100% sure", "naïve-日本",
                                    "<script>alert(9)</script>", "tilde~41~", ".", "..",
                                    "x/../y", "~2F", "\ufffd"])
def test_any_id_round_trips_through_one_path_segment(job_id: str) -> None:
    segment = job_id_to_url(job_id)
    assert set(segment) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                               "0123456789_.:-~")
    assert segment.strip(".")  # never a dot-segment a browser would resolve away
    assert job_id_from_url(segment) == job_id


def test_ids_jobq_makes_are_written_as_they_are() -> None:
    assert job_id_to_url("a1b2c3d4e5f6a7b8") == "a1b2c3d4e5f6a7b8"
    assert job_id_to_url("nightly:2026-12-06T18:00") == "nightly:2026-12-06T18:00"
    assert job_id_from_url("plain-id") == "plain-id"


def test_a_hand_written_segment_that_is_not_utf8_reads_as_a_replacement() -> None:
    assert job_id_from_url("a~FFb~zz") == "a\ufffdb~zz"
