"""`turn_reports`: what each customer turn became, read from a Rasa tracker's JSON."""

from __future__ import annotations

from typing import Any

from connectors.twilio.simulator import turn_reports


def user(text: str, voice: str | None, fused: str, valence: float) -> dict[str, Any]:
    estimates = [{"modality": "text", "label": "neutral"}]
    if voice:
        estimates.append({"modality": "voice", "label": voice})
    toneline = {"label": fused, "valence": valence, "weights": {"text": 0.4, "voice": 0.6}, "estimates": estimates}
    return {"event": "user", "text": text, "parse_data": {"toneline": toneline}}


def test_each_turn_gets_its_readings_the_tone_after_it_and_the_handoff() -> None:
    events = [
        {"event": "action", "name": "action_listen"},
        user("1 2 3 4 5 6", "neutral", "neutral", 0.0),
        {"event": "action", "name": "action_account_status"},
        user("dogs are sitting by the door", "angry", "angry", -0.7),
        {"event": "slot", "name": "toneline_tone", "value": "calm"},
        {"event": "action", "name": "action_handoff"},
        {"event": "pause"},
        {"event": "user", "text": "hello?", "parse_data": {}},
    ]
    first, second, third = turn_reports({"events": events})
    assert (first.voice, first.fused, first.tone, first.handoff) == ("neutral", "neutral", "neutral", False)
    assert (second.voice, second.text, second.tone, second.handoff) == ("angry", "neutral", "calm", True)
    assert second.valence == -0.7 and second.weights == {"text": 0.4, "voice": 0.6}
    assert "HANDOFF" in second.line() and "'dogs are sitting by the door'" in second.line()
    assert (third.fused, third.voice, third.tone) == ("none", None, "calm")
