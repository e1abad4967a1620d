import logging
from typing import Any

import numpy as np
import pytest
from rasa.shared.core.events import BotUttered, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.training_data.message import Message

from models.emotion import EmotionEstimate, TurnEmotion
from plugin import metadata as metadata_contract
from plugin.metadata import TURN_KEY, TurnMetadata
from plugin.nlu import PARSE_KEY, EmotionRecognizer, conversation_context, shared_text_model


def message(text: str, metadata: object = None) -> Message:
    return Message(data={"text": text, "message_id": "m-1", "metadata": metadata})


def parsed(recognizer: EmotionRecognizer, msg: Message) -> TurnEmotion:
    recognizer.process([msg])
    assert PARSE_KEY in msg.as_dict(only_output_properties=True), "the emotion must reach the parse data"
    return TurnEmotion.from_dict(msg.get(PARSE_KEY))


def test_every_customer_message_gets_a_text_emotion(recognizer: EmotionRecognizer) -> None:
    turn = parsed(recognizer, message("This is the third time I'm calling and nobody has fixed my internet!"))
    assert turn.weights == {"text": 1.0}
    assert turn.valence < 0, f"an angry complaint must read negative, got {turn.to_dict()}"


def test_the_model_is_loaded_once_per_process(rasa_context: tuple[Any, ...], recognizer: EmotionRecognizer) -> None:
    again = EmotionRecognizer.create(EmotionRecognizer.get_default_config(), *rasa_context)
    assert again.text_model is recognizer.text_model is shared_text_model(None, None)


def test_voice_in_metadata_is_fused(recognizer: EmotionRecognizer) -> None:
    voice = EmotionEstimate.from_probs("voice", {"angry": 0.97, "neutral": 0.03}).to_dict()
    text_only = parsed(recognizer, message("Okay, thank you for checking that."))
    fused = parsed(recognizer, message("Okay, thank you for checking that.", {"toneline": {"voice": voice}}))
    assert set(fused.weights) == {"text", "voice"}
    assert fused.probs[3] > text_only.probs[3], "an angry voice raises the fused anger"
    assert fused.valence < text_only.valence


@pytest.mark.parametrize(
    "metadata",
    [
        {"toneline": "angry"},
        {"toneline": {"voice": {"probs": [1, 2]}}},
        {"toneline": {"face": "x", "voice": None}},
        {"toneline": {"voice": {"probs": {"rage": 1}}}},
        {"toneline": {"customer_id": 5}},
        "not-a-dict",
        None,
    ],
)
def test_malformed_metadata_is_warned_about_never_fatal(
    recognizer: EmotionRecognizer, metadata: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    turn = parsed(recognizer, message("I need help with my bill", metadata))
    assert turn.weights == {"text": 1.0}
    if isinstance(metadata, dict):  # a toneline block was sent, and each of these is broken
        assert "toneline.metadata.malformed" in caplog.text


def test_agent_turns_are_never_analysed(recognizer: EmotionRecognizer) -> None:
    msg = message("I understand, let me check.", {"toneline": {"role": "agent"}})
    recognizer.process([msg])
    assert msg.get(PARSE_KEY) is None


def test_empty_text_with_a_voice_estimate_uses_the_voice(recognizer: EmotionRecognizer) -> None:
    voice = EmotionEstimate.from_probs("voice", {"sad": 0.8, "neutral": 0.2}).to_dict()
    turn = parsed(recognizer, message("", {"toneline": {"voice": voice}}))
    assert turn.weights == {"voice": 1.0} and turn.label == "sad"


def test_the_turns_before_a_message_are_its_context(recognizer: EmotionRecognizer) -> None:
    tracker = DialogueStateTracker.from_events(
        "c-ctx",
        [
            UserUttered("from an earlier session"),
            SessionStarted(),
            UserUttered("My refund still hasn't arrived."),
            BotUttered("I'm afraid the refund was rejected."),
            UserUttered("   "),
        ],
    )
    assert conversation_context(tracker, 2) == [
        "My refund still hasn't arrived.",
        "I'm afraid the refund was rejected.",
    ]
    assert conversation_context(tracker, 5)[0] == "My refund still hasn't arrived.", "never across a session start"
    assert conversation_context(None, 2) == [] and conversation_context(tracker, 0) == []

    with_context, alone = message("Oh, great."), message("Oh, great.")
    recognizer.process([with_context], tracker)
    recognizer.process([alone])
    text_probs = [TurnEmotion.from_dict(m.get(PARSE_KEY)).estimates[0].probs for m in (with_context, alone)]
    expected = recognizer.text_model.predict("Oh, great.", conversation_context(tracker, 2))
    assert np.allclose(text_probs[0], expected.probs, atol=1e-5)
    assert not np.allclose(text_probs[0], text_probs[1], atol=1e-3), "the tracker's turns must reach the text model"


def test_the_metadata_is_read_once_into_the_parse_data_for_the_policy_and_the_handoff(
    recognizer: EmotionRecognizer,
) -> None:
    block = TurnMetadata("c-42", "twilio", call_id="CA1").to_dict()
    assert metadata_contract.parse(block) == TurnMetadata("c-42", "twilio", call_id="CA1")
    msg = message("Where is my refund?", block)
    recognizer.process([msg])
    output = msg.as_dict(only_output_properties=True)
    identity = TurnMetadata.from_identity(output[TURN_KEY])
    assert (identity.customer_id, identity.channel, identity.is_agent) == ("c-42", "twilio", False)
    agent = message("Let me check.", {"toneline": {"role": "agent"}})
    recognizer.process([agent])
    assert TurnMetadata.from_identity(agent.get(TURN_KEY)).is_agent and agent.get(PARSE_KEY) is None
