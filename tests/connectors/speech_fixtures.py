"""Synthesised callers for connector tests: espeak-ng speech, as canonical audio or Twilio wire audio."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from numpy.typing import NDArray

from connectors.speech.tts import EspeakEngine

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng; .ci/run installs it)"
)


async def speak(text: str, rate: int = 150) -> NDArray[Any]:
    """A caller saying `text`: espeak-ng's en-us male variant 3 (transcribes best over mu-law), at `rate` wpm."""
    engine = EspeakEngine(voice="en-us+m3")
    return await engine.synthesize(text, "neutral") if rate == 170 else await _at_rate(engine, text, rate)


async def _at_rate(engine: EspeakEngine, text: str, rate: int) -> NDArray[Any]:
    from connectors.speech.tts import Prosody

    caller = EspeakEngine(voice=engine.voice, prosody={"neutral": Prosody(rate=rate, pitch=45)})
    return await caller.synthesize(text, "neutral")
