"""Disclosure settings, the opt-out flag in the turn contract, and consent kept per customer in real Redis.

After an opt-out no model runs for that customer: the text model the recognizer holds is
wrapped in a counter (the same `predict` the recognizer calls), and it must not be called.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import pytest
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.training_data.message import Message

from models.emotion import EmotionEstimate
from models.fusion import load_fusion
from models.text import TextEmotionModel
from plugin import settings as toneline_settings
from plugin.consent import Consent, Reading, StoredConsent, asked
from plugin.metadata import CONSENT_KEY, PARSE_KEY, TurnMetadata, parse
from plugin.nlu import EmotionRecognizer, shared_text_model
from plugin.outbox import outbox_for
from plugin.redis_client import connect
from plugin.schema import ConvKey, CustKey, Keys
from plugin.settings import ConsentSettings, RedisSettings, Settings, SettingsError
from plugin.state import ConversationInfo, StateStore
from plugin.turn import ConversationLog, TurnService
from scripts.stack import RedisEndpoint

ANGRY_VOICE = EmotionEstimate.from_probs("voice", {"angry": 0.9, "neutral": 0.1})


class CountingTextModel:
    """The shipped text model behind the recognizer's own entry point, counting each call."""

    def __init__(self, model: TextEmotionModel) -> None:
        self.model = model
        self.context_turns = model.context_turns
        self.calls: list[str] = []

    def predict(self, text: str, context: Sequence[str] = ()) -> EmotionEstimate:
        self.calls.append(text)
        return self.model.predict(text, context)


def settings_on(redis_endpoint: RedisEndpoint, prefix: str, **redis_args: Any) -> Settings:
    return Settings(
        redis=RedisSettings(url=redis_endpoint.url, cluster=redis_endpoint.cluster, prefix=prefix, **redis_args)
    )


def recognizer_on(settings: Settings) -> tuple[EmotionRecognizer, CountingTextModel]:
    counting = CountingTextModel(shared_text_model(None, None))
    config = EmotionRecognizer.get_default_config()
    recognizer = EmotionRecognizer(config, counting, load_fusion(), TurnService.connected(settings))  # type: ignore[arg-type]
    return recognizer, counting


def turn(text: str, intent: str, customer: str, channel: str = "rest", **block: Any) -> Message:
    toneline = {"customer_id": customer, "channel": channel, **block}
    return Message(
        data={"text": text, "intent": {"name": intent, "confidence": 0.99}, "metadata": {"toneline": toneline}}
    )


# -- settings and contract ------------------------------------------------------------------------
def test_disclosure_is_on_by_default_per_channel_and_can_be_turned_off() -> None:
    default = Settings().disclosure
    assert default.enabled and "emotion" in (default.for_channel("rest") or "")
    loaded = toneline_settings.from_mapping(
        {
            "disclosure": {
                "text": "We read emotion.",
                "channels": {"twilio": "On calls we read your voice.", "video": "off"},
            }
        },
        env={},
    ).disclosure
    assert loaded.for_channel("rest") == "We read emotion."
    assert loaded.for_channel("twilio") == "On calls we read your voice."
    assert loaded.for_channel("video") is None
    assert (
        toneline_settings.from_mapping({"disclosure": {"enabled": False}}, env={}).disclosure.for_channel("rest")
        is None
    )


@pytest.mark.parametrize(
    "section",
    [
        {"disclosure": {"channels": ["twilio"]}},
        {"disclosure": {"channels": {"twilio": 3}}},
        {"disclosure": {"txt": "typo"}},
        {"analytics": {"administrators": "alice"}},
        {"adaptation": {"retention_days": "long"}},
    ],
)
def test_bad_consent_and_disclosure_settings_fail_at_start_naming_the_key(section: dict[str, Any]) -> None:
    with pytest.raises(SettingsError):
        toneline_settings.from_mapping(section, env={})


def test_the_demo_config_discloses_on_every_channel() -> None:
    settings = toneline_settings.load(Path(__file__).resolve().parents[2] / "rasa_project" / "toneline.yml", env={})
    for channel in ("rest", "twilio", "vonage", "video"):
        assert "stop the emotion detection" in (settings.disclosure.for_channel(channel) or "")


def test_opt_out_travels_in_the_turn_contract_and_bad_values_are_dropped() -> None:
    meta = TurnMetadata("c-1", "rest", opt_out=True, disclosed=True)
    assert parse(meta.to_dict()) == meta
    assert parse({"toneline": {"opt_out": False}}).opt_out is False
    bad = parse({"toneline": {"opt_out": "yes", "disclosed": 1}}, log=False)
    assert bad.opt_out is None and bad.disclosed is False and len(bad.problems) == 2


def test_the_metadata_flag_wins_over_the_intent() -> None:
    settings = ConsentSettings()
    assert asked(TurnMetadata(opt_out=False), "opt_out", settings) == (False, "metadata")
    assert asked(TurnMetadata(), "opt_out", settings) == (True, "intent")
    assert asked(TurnMetadata(), "opt_in", settings) == (False, "intent")
    assert asked(TurnMetadata(), "greet", settings) is None


def test_unreadable_stored_consent_means_none() -> None:
    assert Consent.from_fields({"opted_out": "maybe", "at": "1"}) is None
    assert Consent.from_fields({"opted_out": "1", "at": "nan"}) is None
    assert Consent.from_fields({}) is None
    assert Reading.from_parse({"opted_out": "yes"}) is None


# -- consent in Redis -----------------------------------------------------------------------------
def test_an_opt_out_by_intent_stops_every_model_for_that_customer_on_every_channel(
    redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    settings = settings_on(redis_endpoint, redis_prefix)
    recognizer, text_model = recognizer_on(settings)
    voice: dict[str, Any] = {"voice": ANGRY_VOICE.to_dict()}
    first = turn("my bill is wrong", "billing_question", "cust-9")
    recognizer.process([first])
    assert PARSE_KEY in first.as_dict() and len(text_model.calls) == 1
    before = time.time()
    stop = turn("stop the emotion detection", "opt_out", "cust-9", **voice)
    recognizer.process([stop])
    assert PARSE_KEY not in stop.as_dict(only_output_properties=True), "the opt-out turn itself is not read"
    assert stop.get(CONSENT_KEY)["opted_out"] is True and stop.get(CONSENT_KEY)["changed"] is True
    stored = connect(settings.redis).hgetall(Keys(redis_prefix).cust("cust-9", CustKey.CONSENT))
    assert stored["opted_out"] == "1" and stored["source"] == "intent" and float(stored["at"]) >= before
    # Later turns, on the phone too (another conversation, the voice estimate in the metadata): nothing runs.
    for message in (
        turn("this is ridiculous", "complain", "cust-9"),
        turn("I am furious", "complain", "cust-9", "twilio", **voice),
    ):
        recognizer.process([message])
        assert PARSE_KEY not in message.as_dict(only_output_properties=True)
        assert message.get(CONSENT_KEY) == {"opted_out": True, "changed": False, "at": None}
    assert len(text_model.calls) == 1, "no text model call after the opt-out"
    # Another customer is still read, and the first one can opt back in.
    other = turn("I am furious", "complain", "cust-10")
    recognizer.process([other])
    assert PARSE_KEY in other.as_dict()
    back = turn("turn the emotion detection back on", "opt_in", "cust-9")
    recognizer.process([back])
    assert back.get(CONSENT_KEY)["opted_out"] is False and PARSE_KEY in back.as_dict()
    assert StoredConsent(StateStore(settings.redis))("cust-9") is False


def test_the_metadata_flag_opts_out_without_the_bot_understanding_anything(
    redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    recognizer, text_model = recognizer_on(settings_on(redis_endpoint, redis_prefix))
    message = turn("hello", "greet", "crm-1", "genesys", opt_out=True)
    recognizer.process([message])
    assert PARSE_KEY not in message.as_dict() and not text_model.calls
    assert StoredConsent(StateStore(settings_on(redis_endpoint, redis_prefix).redis))("crm-1") is True


def test_agents_words_never_opt_the_customer_out(redis_endpoint: RedisEndpoint, redis_prefix: str) -> None:
    service = TurnService.connected(settings_on(redis_endpoint, redis_prefix))
    reading = service.consent("cust-1", TurnMetadata("cust-1", role="agent"), "opt_out")
    assert not reading.opted_out and StoredConsent(service.store)("cust-1") is False  # type: ignore[arg-type]


def test_while_redis_is_away_the_conversation_remembers_and_the_choice_waits_on_disk(
    redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    down = Settings(
        redis=RedisSettings(url="redis://127.0.0.1:1/0", prefix=redis_prefix, retry_after_seconds=0.05),
    )
    recognizer, text_model = recognizer_on(down)
    stop = turn("stop the emotion detection", "opt_out", "cust-5")
    recognizer.process([stop])
    assert stop.get(CONSENT_KEY)["opted_out"] is True
    # The next turn: Redis still away; the tracker's previous turn decides.
    tracker = DialogueStateTracker.from_events(
        "cust-5", [UserUttered("stop", parse_data={CONSENT_KEY: stop.get(CONSENT_KEY)})]
    )
    later = turn("I am furious", "complain", "cust-5")
    recognizer.process([later], tracker)
    assert later.get(CONSENT_KEY)["opted_out"] is True and not text_model.calls
    # The held choice reaches Redis once it is back.
    outbox = recognizer.service.outbox
    assert outbox is not None and "cust-5" in outbox.path.read_text()
    up = StateStore(settings_on(redis_endpoint, redis_prefix).redis)
    assert outbox_for(up, "state").flush()
    assert StoredConsent(up)("cust-5") is True


def test_an_opted_out_conversation_is_recorded_without_emotion(
    redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    service = TurnService.connected(settings_on(redis_endpoint, redis_prefix))
    service.keep_consent("cust-7", Consent(True, time.time(), "dashboard"))
    log = ConversationLog(ConversationInfo("conv-7", "cust-7", "genesys"))
    meta = TurnMetadata("cust-7", "genesys", estimates=(ANGRY_VOICE,))
    assert service.turn(log, "I am furious", meta, "m-1") is None
    assert not log.turns
    client = connect(settings_on(redis_endpoint, redis_prefix).redis)
    meta_fields = client.hgetall(Keys(redis_prefix).conv("conv-7", ConvKey.META))
    assert meta_fields["customer_id"] == "cust-7" and meta_fields["n_turns"] == "0" and meta_fields["tone"] == "neutral"


def test_only_analysed_turns_words_are_retained_and_only_when_the_deployment_retains(
    redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    from plugin.settings import AdaptationSettings

    client = connect(settings_on(redis_endpoint, redis_prefix).redis)
    for retain in (False, True):
        prefix = f"{redis_prefix}-{retain}"
        settings = Settings(
            redis=settings_on(redis_endpoint, prefix).redis, adaptation=AdaptationSettings(retain=retain)
        )
        recognizer, _ = recognizer_on(settings)
        tracker = DialogueStateTracker.from_events("conv-r", [])
        words, stop, after = (
            turn("where is my refund", "billing_question", "cust-r", "twilio", turn_ref="ref-1"),
            turn("stop the emotion detection", "opt_out", "cust-r"),
            turn("I am furious", "complain", "cust-r"),
        )
        for i, message in enumerate((words, stop, after)):
            message.set("message_id", f"m{i}")
            recognizer.process([message], tracker)
        keys = Keys(prefix)
        retained = client.hgetall(keys.conv("conv-r", ConvKey.RETAINED))
        if retain:
            assert retained == {"m0": json.dumps({"text": "where is my refund", "voice_ref": "ref-1"})}
            assert 0 < client.ttl(keys.conv("conv-r", ConvKey.RETAINED)) <= 90 * 86400
        else:
            assert retained == {}
        for key in (keys.conv("conv-r", ConvKey.RETAINED), keys.cust("cust-r", CustKey.CONSENT)):  # different slots
            client.delete(key)
