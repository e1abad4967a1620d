"""The provider-neutral call core with fakes for Whisper, espeak-ng, Rasa and the provider's REST API.

The real VAD, codec, session and stream run; each test takes well under a
second. End-to-end tests with the real parts are beside these
(test_twilio_call.py, test_vonage_call.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import numpy as np
import pytest
import pytest_asyncio
from numpy.typing import NDArray

from connectors.bot import BotReply
from connectors.call.channel import barge_in_mode, no_input_settings, reprompt_settings
from connectors.call.session import (
    CallServices,
    CallSession,
    CallSettings,
    NoInputSettings,
    Provider,
    RepromptSettings,
    SendFrame,
)
from connectors.call.stream import CallStream
from connectors.frames import (
    AudioIn,
    AudioOut,
    CallStart,
    Clear,
    Mark,
    MarkPlayed,
    OutboundFrame,
    PlaybackCleared,
    ProviderIds,
)
from connectors.speech.codec import MULAW_8K, Linear16Codec, WireCodec
from connectors.speech.runtime import RuntimeSettings, SpeechRuntime
from connectors.transport import WebSocketTransport
from connectors.twilio.serializer import TwilioSerializer
from models.emotion import EmotionEstimate
from tests.connectors.fakes import FakeBot, FakeRecognizer, FakeTransfer, FakeTts, caller_speech, silence

pytestmark = pytest.mark.asyncio
L16 = Linear16Codec(16000)
START = CallStart("S1", "C1", ProviderIds("testline"), "+15550100", "audio/l16", 16000, 1)


@dataclass
class Line:
    """The provider's side of one call, in memory: what the session sent; the socket can drop."""

    sent: list[OutboundFrame] = field(default_factory=list)
    drop_after: int | None = None  # audio frames accepted before the socket goes

    async def send(self, frame: OutboundFrame) -> bool:
        audio = sum(isinstance(f, AudioOut) for f in self.sent)
        if self.drop_after is not None and isinstance(frame, AudioOut) and audio >= self.drop_after:
            return False
        self.sent.append(frame)
        return True

    def of(self, kind: type) -> list[OutboundFrame]:
        return [f for f in self.sent if isinstance(f, kind)]


@dataclass
class Call:
    session: CallSession
    line: Line
    tts: FakeTts
    bot: FakeBot
    recognizer: FakeRecognizer
    transfer: FakeTransfer

    async def say(self, pcm: NDArray[Any], codec: WireCodec = L16, live: bool = False) -> None:
        """Stream caller audio: at once, or in real time (`live`, 20 ms a frame) as a provider does."""
        for chunk in codec.frames(pcm):
            await self.session.handle(AudioIn(chunk, None, None, "inbound"))
            if live:
                await asyncio.sleep(0.02)

    async def play_marks(self) -> None:
        """The provider finished playing everything: every mark comes back."""
        for mark in self.line.of(Mark):
            assert isinstance(mark, Mark)
            await self.session.handle(MarkPlayed(mark.name))


DEFAULT_REPROMPT = RepromptSettings()
DEFAULT_NO_INPUT = NoInputSettings()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


@pytest_asyncio.fixture
async def make_call() -> AsyncIterator[Callable[..., Call]]:
    runtimes: list[SpeechRuntime] = []

    def build(
        lines: list[str],
        reply: Callable[[str], BotReply] | None = None,
        tts: FakeTts | None = None,
        transfer: FakeTransfer | None = None,
        codec: WireCodec = L16,
        delay_s: float = 0.0,
        line: Line | None = None,
        reprompt: RepromptSettings | None = DEFAULT_REPROMPT,
        barge_in: str = "speech",
        no_input: NoInputSettings | None = DEFAULT_NO_INPUT,
        disclosure: str | None = None,
        consent: Callable[[str], bool | None] | None = None,
        retain: Callable[[str, str, list[float]], None] | None = None,
    ) -> Call:
        recognizer = FakeRecognizer(lines, delay_s=delay_s)
        tts = tts or FakeTts()
        # No reply cache: these tests watch every sentence the bot says arrive at the fake TTS.
        runtime = SpeechRuntime(RuntimeSettings(tts_cache_s=0), tts=tts, loader=lambda _: recognizer)
        runtimes.append(runtime)
        bot = FakeBot() if reply is None else FakeBot(reply)
        transfer = transfer or FakeTransfer()
        line = line or Line()
        provider = Provider("testline", codec, ("inbound",), transfer)
        settings = CallSettings(
            mark_grace_s=0.2,
            drain_s=5.0,
            reprompt=reprompt,
            barge_in=barge_in,
            no_input=no_input,
            disclosure=disclosure,
        )
        session = CallSession(START, line.send, bot, CallServices(runtime, provider, settings, consent, retain))
        return Call(session, line, tts, bot, recognizer, transfer)

    yield build
    for runtime in runtimes:
        runtime.close()


async def test_a_turn_is_heard_answered_in_the_bots_tone_and_followed_by_a_mark(make_call: Callable[..., Call]) -> None:
    call = make_call(["my internet is down"])
    await call.say(np.concatenate([silence(0.3), caller_speech(1.2), silence(0.8)]))
    await until(lambda: bool(call.line.of(Mark)))
    await call.session.close()

    assert [(sender, text) for sender, text, _ in call.bot.turns] == [("C1", "my internet is down")]
    block = call.bot.turns[0][2]["toneline"]
    assert block == {"channel": "testline", "role": "customer", "call_id": "C1", "customer_id": "+15550100"}
    assert call.tts.spoken == [("You said my internet is down.", "calm")]
    audio = call.line.of(AudioOut)
    assert audio and all(isinstance(f, AudioOut) and len(f.payload) == L16.frame_bytes for f in audio)
    assert isinstance(call.line.sent[-1], Mark)


async def test_the_early_asr_pass_serves_the_turn_with_one_pass(make_call: Callable[..., Call]) -> None:
    call = make_call(["hello"], delay_s=0.1)
    await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))
    await until(lambda: bool(call.bot.turns))
    await call.session.close()
    assert (call.session.early_used, call.session.early_dropped) == (1, 0)
    assert len(call.recognizer.passes) == 1


async def test_a_caller_who_goes_on_talking_drops_the_early_pass(make_call: Callable[..., Call]) -> None:
    call = make_call(["one long turn"])
    # A 300 ms pause passes the early point (200 ms) but not the end of turn (450 ms).
    more = caller_speech(0.8, seed=3)[4800:]  # no lead-in: the caller goes straight on
    await call.say(np.concatenate([caller_speech(0.8), silence(0.3), more, silence(0.8)]))
    await until(lambda: bool(call.bot.turns))
    await call.session.close()
    # The pass started in the short pause is dropped; the one started in the final pause serves the turn.
    assert (call.session.early_dropped, call.session.early_used) == (1, 1)
    assert [text for _, text, _ in call.bot.turns] == ["one long turn"]


async def test_one_baseline_per_call_learns_only_from_the_turns_the_bot_answers(make_call: Callable[..., Call]) -> None:
    first, second = make_call(["hello", "", "my bill is wrong"]), make_call(["hi"])
    more = caller_speech(0.8, seed=3)[4800:]  # the caller goes on after a short pause: that early pass is dropped
    await first.say(np.concatenate([caller_speech(0.8), silence(0.3), more, silence(0.8)]))
    await first.say(np.concatenate([caller_speech(0.8, seed=1), silence(0.8)]))  # heard as no words
    await first.say(np.concatenate([caller_speech(0.8, seed=2), silence(0.8)]))
    await second.say(np.concatenate([caller_speech(0.8), silence(0.8)]))
    await until(lambda: len(first.bot.turns) == 2 and len(second.bot.turns) == 1)
    await first.session.close()
    await second.session.close()
    assert {id(b) for b in first.recognizer.baselines} == {id(first.session.baseline)}
    assert second.recognizer.baselines == [second.session.baseline]
    assert first.session.baseline is not second.session.baseline
    assert (first.session.baseline.turns, second.session.baseline.turns) == (2, 1)  # not the dropped, not the empty


async def test_talking_over_the_bot_clears_its_audio_and_stops_the_rest_of_the_reply(
    make_call: Callable[..., Call],
) -> None:
    three = BotReply(("First sentence. Second sentence. Third sentence.",), "neutral")
    call = make_call(["tell me everything"], reply=lambda _: three, tts=FakeTts(delay_s=0.3))
    await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))
    await until(lambda: bool(call.line.of(Mark)))
    assert call.session.bot_speaking
    await call.say(caller_speech(0.5))  # the caller talks over the first sentence
    await until(lambda: bool(call.line.of(Clear)))
    await call.session.close()
    assert len(call.line.of(Clear)) == 1
    assert len(call.tts.spoken) < 3  # the rest of the reply was not spoken


async def test_with_barge_in_on_words_a_sound_over_the_bot_does_not_stop_it_and_words_do(
    make_call: Callable[..., Call],
) -> None:
    three = BotReply(("First sentence. Second sentence. Third sentence.",), "neutral")
    call = make_call(["tell me everything", "", "stop"], reply=lambda _: three, barge_in="words")
    await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))
    await until(lambda: len(call.line.of(Mark)) == 3)
    assert call.session.bot_speaking
    await call.say(np.concatenate([caller_speech(0.4), silence(0.8)]))  # a cough: speech to the VAD, no words
    await until(lambda: len(call.recognizer.passes) >= 2)
    await asyncio.sleep(0.1)
    assert not call.line.of(Clear) and call.session.bot_speaking
    await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))  # words: the bot stops, then answers
    await until(lambda: bool(call.line.of(Clear)) and len(call.bot.turns) == 2)
    await call.session.close()
    assert len(call.line.of(Clear)) == 1 and [t for _, t, _ in call.bot.turns] == ["tell me everything", "stop"]


async def test_with_barge_in_off_the_caller_never_clears_the_bots_audio(make_call: Callable[..., Call]) -> None:
    call = make_call(["read me the terms", "wait"], barge_in="off")
    await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))
    await until(lambda: bool(call.line.of(Mark)))
    await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))
    await until(lambda: len(call.bot.turns) == 2 and len(call.line.of(Mark)) == 2)
    await call.session.close()
    assert not call.line.of(Clear)


def test_barge_in_mode_comes_from_credentials_or_the_environment_and_fails_fast(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert barge_in_mode({}, "twilio") == "speech" and barge_in_mode({"barge_in": "Words"}, "twilio") == "words"
    assert barge_in_mode({"barge_in": False}, "twilio") == "off"  # YAML 1.1's reading of a bare off
    monkeypatch.setenv("TONELINE_TWILIO_BARGE_IN", "off")
    assert barge_in_mode({"barge_in": "words"}, "twilio") == "off"
    with pytest.raises(ValueError, match="barge_in must be one of speech, words, off"):
        barge_in_mode({"barge_in": "sometimes"}, "vonage")
    with pytest.raises(ValueError, match="barge_in must be one of"):
        CallSettings(barge_in="always")


async def test_a_provider_that_acknowledges_the_clear_ends_the_pending_marks(make_call: Callable[..., Call]) -> None:
    call = make_call(["hello"])
    await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))
    await until(lambda: bool(call.line.of(Mark)))
    assert call.session.bot_speaking
    await call.session.handle(PlaybackCleared())
    assert not call.session.bot_speaking
    await call.session.close()


async def test_a_handoff_waits_for_the_announcement_then_moves_the_call_once(make_call: Callable[..., Call]) -> None:
    handoff = BotReply(("Let me get you a person.",), "empathetic", handoff=True)
    call = make_call(["I want a person", "are you there"], reply=lambda _: handoff)
    await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))
    await until(lambda: bool(call.line.of(Mark)))
    assert not call.transfer.moved  # the announcement is still playing
    await call.play_marks()
    await until(lambda: bool(call.transfer.moved))
    await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))  # the bot no longer answers
    await call.session.close()
    assert call.transfer.moved[0][0] == "C1" and len(call.transfer.moved) == 1
    assert len(call.bot.turns) == 1 and call.tts.spoken == [("Let me get you a person.", "empathetic")]


async def test_a_hang_up_during_the_announcement_moves_the_call_at_once(make_call: Callable[..., Call]) -> None:
    handoff = BotReply(("Let me get you a person.",), "empathetic", handoff=True)
    call = make_call(["a person please"], reply=lambda _: handoff, tts=FakeTts(seconds=5.0))
    await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))
    await until(lambda: bool(call.line.of(Mark)))
    started = asyncio.get_running_loop().time()
    await call.session.close()  # no mark will come back: the 5 s announcement's timeout is not waited out
    assert asyncio.get_running_loop().time() - started < 2.0
    assert [call_id for call_id, _ in call.transfer.moved] == ["C1"]


async def test_a_refused_transfer_is_logged_and_the_call_closes_cleanly(
    make_call: Callable[..., Call], caplog: pytest.LogCaptureFixture
) -> None:
    handoff = BotReply(("Transferring you now.",), "calm", handoff=True)
    call = make_call(["a person please"], reply=lambda _: handoff, transfer=FakeTransfer(fail_status=503))
    with caplog.at_level(logging.INFO):
        await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))
        await until(lambda: "testline.handoff.failed" in caplog.text)  # after the mark's grace time
        await call.session.close()
    assert "testline.handoff.failed call_id=C1 status=503" in caplog.text
    assert "testline.call.closed call_id=C1 turns=1" in caplog.text


async def test_a_socket_that_drops_mid_reply_ends_the_reply_not_the_call(
    make_call: Callable[..., Call], caplog: pytest.LogCaptureFixture
) -> None:
    two = BotReply(("First sentence here. Second sentence here.",), "neutral")
    call = make_call(["hello", "still there"], reply=lambda _: two, line=Line(drop_after=3))
    with caplog.at_level(logging.INFO):
        await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))
        await until(lambda: len(call.tts.spoken) == 2)
        await call.session.close()
    assert len(call.line.of(AudioOut)) == 3 and not call.line.of(Mark)  # no mark for audio that never went
    assert "turn.failed" not in caplog.text and "testline.call.closed" in caplog.text


async def test_a_turn_whisper_finds_no_words_in_is_not_sent_to_the_bot(
    make_call: Callable[..., Call], caplog: pytest.LogCaptureFixture
) -> None:
    call = make_call([""], reprompt=None)
    with caplog.at_level(logging.INFO):
        await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))
        await until(lambda: "testline.turn.no_speech" in caplog.text)
        await call.session.close()
    assert not call.bot.turns and not call.tts.spoken  # reprompts off: the turn passes quietly


async def test_speech_without_words_is_reprompted_in_the_bots_last_tone_and_never_sent_to_the_bot(
    make_call: Callable[..., Call], caplog: pytest.LogCaptureFixture
) -> None:
    call = make_call(["my bill is wrong", ""])
    with caplog.at_level(logging.INFO):
        await call.say(np.concatenate([caller_speech(1.2), silence(0.8)]))
        await until(lambda: len(call.tts.spoken) == 1)
        await call.play_marks()
        await call.say(np.concatenate([caller_speech(1.2), silence(0.8)]))
        await until(lambda: len(call.tts.spoken) == 3)
        await call.session.close()
    assert [text for _, text, _ in call.bot.turns] == ["my bill is wrong"]
    # Said sentence by sentence like any reply, in the tone of the bot's last reply (FakeBot's are calm).
    assert call.tts.spoken[1:] == [("Sorry, I didn't catch that.", "calm"), ("Could you say it again?", "calm")]
    assert "testline.turn.reprompted call_id=C1" in caplog.text and "in_a_row=1" in caplog.text
    assert len(call.line.of(Mark)) == 3


async def test_a_short_sound_without_words_passes_quietly(
    make_call: Callable[..., Call], caplog: pytest.LogCaptureFixture
) -> None:
    call = make_call([""])
    with caplog.at_level(logging.INFO):
        await call.say(np.concatenate([caller_speech(0.4), silence(0.8)]))  # a cough: 0.7 s with the pre-roll
        await until(lambda: "testline.turn.no_speech" in caplog.text)
        await call.session.close()
    assert not call.tts.spoken and not call.bot.turns


async def test_reprompts_stop_after_the_most_in_a_row_and_words_start_the_count_again(
    make_call: Callable[..., Call], caplog: pytest.LogCaptureFixture
) -> None:
    call = make_call(["", "", "", "hello", ""], reprompt=RepromptSettings(text="Pardon?", max_in_a_row=2))
    with caplog.at_level(logging.INFO):
        for turn in range(1, 6):  # each turn answered (spoken or passed quietly) before the next is said

            def answered(turn: int = turn) -> bool:
                return len(call.tts.spoken) + caplog.text.count("testline.turn.no_speech") == turn

            await call.say(np.concatenate([caller_speech(1.2), silence(0.8)]))
            await until(answered)
            await call.play_marks()
        await call.session.close()
    said = [text for text, _ in call.tts.spoken]
    assert said == ["Pardon?", "Pardon?", "You said hello.", "Pardon?"]  # the third no-word turn: quiet
    assert caplog.text.count("testline.turn.no_speech") == 1


QUICK_NO_INPUT = NoInputSettings(after_s=0.3, text="Hello? Are you there?", max_in_a_row=2)


async def test_a_caller_silent_after_the_bot_finished_is_prompted_and_then_left_in_peace(
    make_call: Callable[..., Call], caplog: pytest.LogCaptureFixture
) -> None:
    call = make_call(["what are your opening hours"], no_input=QUICK_NO_INPUT)
    with caplog.at_level(logging.INFO):
        await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))
        await until(lambda: len(call.tts.spoken) == 1)
        await asyncio.sleep(0.5)
        assert len(call.tts.spoken) == 1  # the bot's audio has not played yet: no timer
        for prompts in (1, 2):
            await call.play_marks()  # the provider played everything so far
            await until(lambda prompts=prompts: len(call.tts.spoken) == 1 + 2 * prompts)  # type: ignore[misc]
        await call.play_marks()
        await asyncio.sleep(0.6)
        await call.session.close()
    assert call.tts.spoken[1:] == [("Hello?", "calm"), ("Are you there?", "calm")] * 2  # then no more
    assert "testline.turn.no_input call_id=C1 after_s=0.3 in_a_row=2" in caplog.text
    assert len(call.bot.turns) == 1  # a prompt is the connector's: nothing reaches Rasa


async def test_words_from_the_caller_give_back_the_no_input_prompts_they_had_used_up(
    make_call: Callable[..., Call], caplog: pytest.LogCaptureFixture
) -> None:
    call = make_call(["hello", "sorry I was away"], no_input=NoInputSettings(after_s=0.3, max_in_a_row=1))
    with caplog.at_level(logging.INFO):
        await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))
        await until(lambda: len(call.tts.spoken) == 1)
        await call.play_marks()
        await until(lambda: len(call.tts.spoken) == 2)  # the one prompt allowed
        await call.play_marks()
        await asyncio.sleep(0.6)
        assert len(call.tts.spoken) == 2  # spent: the bot waits quietly
        await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))
        await until(lambda: len(call.bot.turns) == 2 and len(call.tts.spoken) == 3)
        await call.play_marks()
        await until(lambda: len(call.tts.spoken) == 4)  # words reset the count: a prompt again
        await call.session.close()
    said = [text for text, _ in call.tts.spoken]
    assert said == ["You said hello.", "Are you still there?", "You said sorry I was away.", "Are you still there?"]
    assert caplog.text.count("turn.no_input ") == 2


async def test_a_cough_in_the_silence_restarts_the_wait_instead_of_ending_it(
    make_call: Callable[..., Call], caplog: pytest.LogCaptureFixture
) -> None:
    call = make_call(["hello", ""], no_input=NoInputSettings(after_s=0.8))
    with caplog.at_level(logging.INFO):
        await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))
        await until(lambda: len(call.tts.spoken) == 1)
        await call.play_marks()
        await call.say(np.concatenate([silence(0.2), caller_speech(0.4), silence(0.6)]))  # a cough, no words
        await until(lambda: "testline.turn.no_speech" in caplog.text)
        coughed = time.monotonic()
        await until(lambda: len(call.tts.spoken) == 2)
        waited = time.monotonic() - coughed
        await call.session.close()
    assert call.tts.spoken[1] == ("Are you still there?", "calm")
    assert 0.6 < waited < 2.0  # counted from the cough, not from the bot's last word


async def test_no_prompt_while_the_caller_talks_over_the_bot_for_longer_than_the_wait(
    make_call: Callable[..., Call], caplog: pytest.LogCaptureFixture
) -> None:
    call = make_call(["hello", "let me tell you the whole story"], no_input=NoInputSettings(after_s=0.3))
    with caplog.at_level(logging.INFO):
        await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))
        await until(lambda: bool(call.line.of(Mark)))
        talking = asyncio.ensure_future(call.say(np.concatenate([caller_speech(2.0), silence(0.8)]), live=True))
        await until(lambda: bool(call.line.of(Clear)))
        await call.play_marks()  # the provider returns the cleared marks while the caller is still talking
        await talking
        await until(lambda: len(call.bot.turns) == 2)
        await call.session.close()
    assert "turn.no_input" not in caplog.text


def test_no_input_settings_come_from_credentials_and_fail_fast() -> None:
    assert no_input_settings({}) == NoInputSettings()
    assert no_input_settings({"no_input_s": "off"}) is None and no_input_settings({"no_input_s": False}) is None
    custom = no_input_settings({"no_input_s": 5, "no_input_prompt": "Still with me?", "no_input_max_in_a_row": 3})
    assert custom == NoInputSettings(5.0, "Still with me?", 3)
    with pytest.raises(ValueError, match="must be numbers"):
        no_input_settings({"no_input_s": "soon"})
    with pytest.raises(ValueError, match="after_s > 0"):
        no_input_settings({"no_input_s": 0})


def test_another_voice_head_is_named_in_the_environment_and_checked_at_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TONELINE_VOICE_HEAD", raising=False)
    assert RuntimeSettings.from_env().voice_head is None
    head = tmp_path / "fold-0" / "voice_head.pt"
    monkeypatch.setenv("TONELINE_VOICE_HEAD", str(head))
    with pytest.raises(ValueError, match="TONELINE_VOICE_HEAD=.*no voice head"):
        RuntimeSettings.from_env()
    head.parent.mkdir()
    head.write_bytes(b"weights")
    with pytest.raises(ValueError, match="sidecar"):  # a head without its JSON (temperature, held-out speakers)
        RuntimeSettings.from_env()
    head.with_suffix(".json").write_text("{}")
    assert RuntimeSettings.from_env().voice_head == head


def test_reprompt_settings_come_from_credentials_and_fail_fast() -> None:
    assert reprompt_settings({}) == RepromptSettings()
    assert reprompt_settings({"reprompt": "off"}) is None and reprompt_settings({"reprompt": False}) is None
    assert reprompt_settings({"reprompt": True}) == RepromptSettings()  # `reprompt: on` is not a sentence to say
    custom = reprompt_settings({"reprompt": "Say again?", "reprompt_min_speech_ms": 600, "reprompt_max_in_a_row": 1})
    assert custom == RepromptSettings("Say again?", 0.6, 1)
    with pytest.raises(ValueError, match="must be numbers"):
        reprompt_settings({"reprompt_max_in_a_row": "twice"})
    with pytest.raises(ValueError, match="max_in_a_row >= 1"):
        reprompt_settings({"reprompt_max_in_a_row": 0})
    with pytest.raises(ValueError, match="empty"):
        reprompt_settings({"reprompt": "  "})


async def test_mulaw_callers_are_heard_the_same_way(make_call: Callable[..., Call]) -> None:
    call = make_call(["hello over mu-law"], codec=MULAW_8K)
    await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]), codec=MULAW_8K)
    await until(lambda: bool(call.line.of(Mark)))
    await call.session.close()
    assert [text for _, text, _ in call.bot.turns] == ["hello over mu-law"]
    assert all(isinstance(f, AudioOut) and len(f.payload) == 160 for f in call.line.of(AudioOut))


class MemorySocket:
    """A WebSocket in memory: queued messages to receive, then the peer closes; records sends and the close."""

    def __init__(self, messages: list[str | bytes]) -> None:
        self.incoming = list(messages)
        self.sent: list[str | bytes] = []
        self.close_code: int | None = None

    async def recv(self) -> str | bytes | None:
        await asyncio.sleep(0)
        return self.incoming.pop(0) if self.incoming else None

    async def send(self, data: str | bytes) -> None:
        self.sent.append(data)

    async def close(self, code: int, reason: str) -> None:
        self.close_code = code


TWILIO_START: dict[str, Any] = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "streamSid": "MZ1",
        "callSid": "CA1",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
}


async def run_stream(messages: list[str | bytes], caplog: pytest.LogCaptureFixture) -> tuple[MemorySocket, Call | None]:
    socket = MemorySocket(messages)
    opened: list[Call] = []
    recognizer = FakeRecognizer([])
    runtime = SpeechRuntime(RuntimeSettings(tts_cache_s=0), tts=FakeTts(), loader=lambda _: recognizer)

    def open_session(start: CallStart, send: SendFrame) -> CallSession:
        provider = Provider("twilio", MULAW_8K, ("inbound",), FakeTransfer())
        session = CallSession(start, send, FakeBot(), CallServices(runtime, provider, CallSettings(drain_s=1.0)))
        opened.append(Call(session, Line(), FakeTts(), FakeBot(), recognizer, FakeTransfer()))
        return session

    with caplog.at_level(logging.INFO):
        await CallStream(WebSocketTransport(socket, "twilio"), TwilioSerializer(), "twilio", open_session).run()
    runtime.close()
    return socket, (opened[0] if opened else None)


@pytest.mark.parametrize(
    ("messages", "close", "code"),
    [
        (["{not json"], 1002, "malformed_json"),
        ([json.dumps({"event": "media", "media": {"payload": ""}})], 1002, "before_start"),
        ([b"\x00\x01"], 1003, "unexpected_binary"),
        (
            [
                json.dumps(
                    {**TWILIO_START, "start": {**TWILIO_START["start"], "mediaFormat": {"encoding": "audio/l16"}}}
                )
            ],
            1003,
            "unsupported_codec",
        ),
        (
            [json.dumps(TWILIO_START), json.dumps({"event": "media", "media": {"payload": "%%%"}})],
            1002,
            "malformed_message",
        ),
    ],
)
async def test_malformed_frames_close_that_call_with_a_named_code(
    messages: list[str | bytes], close: int, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    socket, _ = await run_stream(messages, caplog)
    assert socket.close_code == close
    assert "twilio.stream.bad_message" in caplog.text and f"code={code}" in caplog.text


async def test_unknown_and_stale_messages_are_skipped_and_a_hang_up_closes_normally(
    caplog: pytest.LogCaptureFixture,
) -> None:
    messages: list[str | bytes] = [
        json.dumps(TWILIO_START),
        json.dumps({"event": "transcription", "sequenceNumber": "2"}),
        json.dumps({"event": "dtmf", "sequenceNumber": "1", "dtmf": {"digit": "5"}}),
        json.dumps({"event": "stop", "sequenceNumber": "3"}),
    ]
    socket, call = await run_stream(messages, caplog)
    assert socket.close_code == 1000 and call is not None
    assert "code=unknown_event" in caplog.text and "code=out_of_order" in caplog.text
    assert "twilio.call.stopped call_id=CA1" in caplog.text and "twilio.call.closed call_id=CA1" in caplog.text


def test_every_providers_serializer_implements_the_one_protocol() -> None:
    from connectors.audiohook.serializer import AudioHookSerializer
    from connectors.serializer import CallSerializer, WireSerializer
    from connectors.vonage.serializer import VonageSerializer

    assert isinstance(TwilioSerializer(), CallSerializer) and isinstance(VonageSerializer(), CallSerializer)
    assert isinstance(AudioHookSerializer("session-1"), WireSerializer)
    assert not isinstance(AudioHookSerializer("session-1"), CallSerializer)  # it listens; it never starts a call


class HangingSocket(MemorySocket):
    """Delivers its messages, then waits for ever (the peer neither talks nor closes)."""

    async def recv(self) -> str | bytes | None:
        if self.incoming:
            return await super().recv()
        await asyncio.Event().wait()
        return None


async def test_a_stream_cancelled_twice_still_closes_its_call(caplog: pytest.LogCaptureFixture) -> None:
    recognizer = FakeRecognizer([])
    runtime = SpeechRuntime(RuntimeSettings(tts_cache_s=0), tts=FakeTts(), loader=lambda _: recognizer)

    def open_session(start: CallStart, send: SendFrame) -> CallSession:
        provider = Provider("twilio", MULAW_8K, ("inbound",), FakeTransfer())
        return CallSession(start, send, FakeBot(), CallServices(runtime, provider, CallSettings(drain_s=1.0)))

    socket = HangingSocket([json.dumps(TWILIO_START)])
    stream = CallStream(WebSocketTransport(socket, "twilio"), TwilioSerializer(), "twilio", open_session)
    with caplog.at_level(logging.INFO):
        task = asyncio.create_task(stream.run())
        await until(lambda: stream.session is not None)
        task.cancel()  # Sanic: the client's close frame...
        await asyncio.sleep(0)
        task.cancel()  # ...then the lost connection
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: "twilio.call.closed call_id=CA1" in caplog.text)
    runtime.close()
    assert socket.close_code == 1000


def test_the_demo_bots_phone_channels_read_reprompt_and_barge_in_from_credentials_yml() -> None:
    from rasa.shared.utils.io import read_yaml_file

    from connectors.twilio.channel import TwilioMediaStreamsInput

    credentials = read_yaml_file(Path(__file__).resolve().parents[2] / "rasa_project" / "credentials.yml")
    channel = TwilioMediaStreamsInput.from_credentials(credentials["connectors.twilio.channel.TwilioMediaStreamsInput"])
    assert isinstance(channel, TwilioMediaStreamsInput) and channel.settings.reprompt == RepromptSettings()
    assert channel.settings.barge_in == "speech" and channel.settings.no_input == NoInputSettings()


NOTICE = "This call uses automated emotion recognition. Say stop the emotion detection to turn it off."


async def test_the_notice_is_spoken_first_whole_and_the_bot_does_not_repeat_it(make_call: Callable[..., Call]) -> None:
    call = make_call(["hello"], disclosure=NOTICE, tts=FakeTts(seconds=0.5))
    await call.session.begin()
    await call.session.opened()
    assert [text for text, _ in call.tts.spoken] == [
        "This call uses automated emotion recognition.",
        "Say stop the emotion detection to turn it off.",
    ]
    assert call.session.disclosing
    await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))  # the caller talks over it
    await until(lambda: bool(call.bot.turns))
    assert not call.line.of(Clear), "the notice is never interrupted"
    await call.play_marks()
    await until(lambda: len(call.tts.spoken) == 3)
    await call.session.close()
    assert call.bot.turns[0][2]["toneline"]["disclosed"] is True


async def test_a_caller_who_opted_out_gets_the_asr_pass_only(make_call: Callable[..., Call]) -> None:
    opted_out: dict[str, bool] = {}
    call = make_call(["my bill is wrong", "stop the emotion detection", "I am furious"], consent=opted_out.get)
    call.recognizer.voice = EmotionEstimate.from_probs("voice", {"angry": 0.9, "neutral": 0.1})

    def reply(text: str) -> BotReply:
        if "stop" in text:  # what the bot does on the opt-out intent: the choice is kept (here, in the dict)
            opted_out["+15550100"] = True
        return BotReply((f"You said {text}.",), "neutral")

    call.bot.reply = reply
    await call.session.begin()
    await call.session.opened()
    for seed in range(3):
        await call.say(np.concatenate([caller_speech(0.8, seed=seed), silence(0.8)]))
        await until(lambda n=seed + 1: len(call.bot.turns) == n)  # type: ignore[misc]
    await call.session.close()
    voices = ["voice" in metadata["toneline"] for _, _, metadata in call.bot.turns]
    assert voices == [True, True, False], "from the turn after the opt-out no voice estimate"
    assert call.recognizer.emotions[-1] is False, "the voice head was not asked to run"
    assert call.session.opted_out


async def test_voice_statistics_are_kept_for_adaptation_only_while_the_caller_has_not_opted_out(
    make_call: Callable[..., Call],
) -> None:
    kept: list[tuple[str, str, list[float]]] = []
    opted_out: dict[str, bool] = {}
    call = make_call(
        ["my bill is wrong", "stop the emotion detection", "I am furious"],
        consent=opted_out.get,
        retain=lambda conv, ref, values: kept.append((conv, ref, values)),
    )

    def reply(text: str) -> BotReply:
        if "stop" in text:
            opted_out["+15550100"] = True
        return BotReply((f"You said {text}.",), "neutral")

    call.bot.reply = reply
    for seed in range(3):
        await call.say(np.concatenate([caller_speech(0.8, seed=seed), silence(0.8)]))
        await until(lambda n=seed + 1: len(call.bot.turns) == n)  # type: ignore[misc]
    await call.session.close()
    refs = [metadata["toneline"].get("turn_ref") for _, _, metadata in call.bot.turns]
    assert all(refs[:2]) and refs[2] is None, refs
    # Only the first turn's statistics: the second opted the caller out, the third was not read at all.
    assert [(conv, ref) for conv, ref, _ in kept] == [("C1", refs[0])]
    assert kept[0][2] == [0.0] * len(kept[0][2]) and len(kept[0][2]) > 100


async def test_a_caller_who_speaks_while_the_call_opens_is_answered_after_the_notice(
    make_call: Callable[..., Call],
) -> None:
    call = make_call(["hello"], disclosure=NOTICE, tts=FakeTts(seconds=0.2, delay_s=0.3))
    await call.session.begin()  # returns at once: the notice is synthesised beside the stream
    await call.say(np.concatenate([caller_speech(1.0), silence(0.8)]))
    await until(lambda: len(call.tts.spoken) == 3)
    await call.session.close()
    assert [text for text, _ in call.tts.spoken][2] == "You said hello.", "no reply before the notice"
    assert call.recognizer.emotions == [True] and call.session.early_used == 0, "heard once the call was open"


async def test_reply_sentences_are_synthesised_once_per_tone_and_never_with_digits() -> None:
    tts = FakeTts(seconds=0.2)
    runtime = SpeechRuntime(RuntimeSettings(tts_cache_s=1.0), tts=tts, loader=lambda _: FakeRecognizer([]))
    first = await runtime.speak("Let me check that for you.", "calm")
    again = await runtime.speak("Let me check that for you.", "calm")
    assert tts.spoken == [("Let me check that for you.", "calm")] and np.array_equal(first, again)
    with pytest.raises(ValueError):  # shared by every call that says it: nobody may change it in place
        again[0] = 1.0
    await runtime.speak("Let me check that for you.", "empathetic")  # another tone is another recording
    for _ in range(2):  # an account number read back is personal: synthesised every time, never kept
        await runtime.speak("Your account 123456 is active.", "calm")
    assert (
        tts.spoken[1:]
        == [("Let me check that for you.", "empathetic")] + [("Your account 123456 is active.", "calm")] * 2
    )
    for n in range(5):  # 1 s of audio in all: the least recently used sentence goes first
        await runtime.speak(f"Sentence number {'x' * n}.", "calm")
    await runtime.speak("Let me check that for you.", "calm")
    assert tts.spoken[-1] == ("Let me check that for you.", "calm")
    uncached = SpeechRuntime(RuntimeSettings(tts_cache_s=0), tts=FakeTts(), loader=lambda _: FakeRecognizer([]))
    for _ in range(2):
        await uncached.speak("Hello.", "neutral")
    assert isinstance(uncached.tts, FakeTts) and len(uncached.tts.spoken) == 2
    runtime.close()
    uncached.close()
