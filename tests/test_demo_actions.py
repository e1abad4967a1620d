"""The demo bot's custom actions, run directly with rasa_sdk trackers (the e2e tests run them through Rasa)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from rasa_project.actions.actions import ActionAccountStatus, ActionSessionStart, account_digits


@pytest.mark.parametrize(
    ("said", "digits"),
    [
        ("123456", "123456"),
        ("one two three four five six", "123456"),
        ("Six. Nine. Four. Two. Seven.", "69427"),
        ("0, 7, 3, 3, 1, 9", "073319"),
        ("oh five 55 12", "055512"),
        ("my account", None),
        ("", None),
    ],
)
def test_account_digits_reads_numbers_as_whisper_writes_them(said: str, digits: str | None) -> None:
    assert account_digits(said) == digits


def tracker(slots: dict[str, Any]) -> Tracker:
    return Tracker("c-1", slots, {}, [], False, None, None, "action_listen")


def run(
    action: Any, slots: dict[str, Any], domain: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker(slots), domain or {}))
    return dispatcher.messages, events


def test_without_an_account_number_the_bot_asks_for_it() -> None:
    messages, events = run(ActionAccountStatus(), {"account_number": None})
    assert [m["response"] for m in messages] == ["utter_ask_account_number"] and events == []


def test_a_spoken_account_number_is_normalised_and_used_for_the_topic() -> None:
    messages, events = run(ActionAccountStatus(), {"account_number": "four eight 1 5 9 2 7", "account_topic": "outage"})
    assert messages[0]["response"] == "utter_account_outage" and messages[0]["spoken"] == "4 8 1 5 9 2 7"
    assert events == [{"event": "slot", "timestamp": None, "name": "account_number", "value": "4815927"}]


@pytest.mark.parametrize("said", ["three four five", "1 2 3 4 5 6 7 8 9 0 1 2 3", "the number"])
def test_what_is_no_account_number_is_asked_again_and_forgotten(said: str) -> None:
    messages, events = run(ActionAccountStatus(), {"account_number": said})
    assert messages[0]["response"] == "utter_account_number_unclear"
    assert events[0]["name"] == "account_number" and events[0]["value"] is None


def test_a_new_session_carries_slots_over_but_not_a_past_handoff() -> None:
    slots = {"handed_off": True, "toneline_escalation_reason": "asked", "account_number": "123456", "x": None}
    domain = {"session_config": {"carry_over_slots_to_new_session": True}}
    _, events = run(ActionSessionStart(), slots, domain)
    assert events[0]["event"] == "session_started" and events[-1]["name"] == "action_listen"
    carried = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
    assert carried == {"account_number": "123456"}


def test_a_new_session_opens_with_the_disclosure_unless_a_connector_gave_it() -> None:
    from rasa_project.actions.actions import disclosure_for

    notice = disclosure_for(None, None)
    assert notice is not None and "stop the emotion detection" in notice
    assert disclosure_for({"toneline": {"channel": "twilio", "disclosed": True}}, "toneline_twilio") is None
    assert disclosure_for({"toneline": "malformed"}, "rest") == notice, "a bad block still discloses"
