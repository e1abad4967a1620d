"""The metadata block's identifiers: bounded, printable, or dropped with a named problem."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from plugin import metadata


def test_good_identifiers_pass_through() -> None:
    parsed = metadata.parse({"toneline": {"customer_id": "c-42 (VIP)", "channel": "twilio"}})
    assert (parsed.customer_id, parsed.channel, parsed.problems) == ("c-42 (VIP)", "twilio", ())


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ({"customer_id": "x" * 63_000}, "customer_id"),
        ({"customer_id": "bad\nid"}, "customer_id"),
        ({"customer_id": "\ud800"}, "customer_id"),
        ({"channel": "Twilio Premium Line"}, "channel"),
        ({"channel": "x" * 33}, "channel"),
        ({"channel": 7}, "channel"),
    ],
)
def test_unusable_identifiers_are_dropped_and_logged(
    block: dict[str, Any], problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    parsed = metadata.parse({"toneline": block}, "m-1")
    assert parsed.customer_id is None and parsed.channel is None
    assert any(problem in p for p in parsed.problems)
    assert "toneline.metadata.malformed" in caplog.text and "x" * 200 not in caplog.text


def test_a_long_sender_id_becomes_a_bounded_distinct_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    a, b = metadata.bounded_id("s" * 5000), metadata.bounded_id("s" * 5001)
    assert len(a) <= metadata.MAX_ID_CHARS and a != b and a.startswith("s" * 96 + "~")
    assert metadata.bounded_id("short-id") == "short-id"
    assert "toneline.id.truncated" in caplog.text


def test_an_estimate_near_the_float_limit_still_sums_to_one() -> None:
    # Found by the fuzzer: 1e308 + 1e308 overflowed the normalising sum to infinity (all probabilities 0).
    parsed = metadata.parse({"toneline": {"voice": {"probs": {"angry": 1e308, "neutral": 1e308}}}})
    (voice,) = parsed.estimates
    assert sum(voice.probs) == pytest.approx(1.0) and voice.label in ("angry", "neutral")
