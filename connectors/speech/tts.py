"""Text to speech for bot replies, with rate and pitch set by the reply tone.

`TtsEngine` is the pluggable interface (one method, canonical audio out);
`EspeakEngine` is the default: Debian's espeak-ng (GPL-3 program, run as a
separate process, so nothing of it is linked into Toneline), `--stdout` WAV.
"""

from __future__ import annotations

import abc
import asyncio
import io
import re
import shutil
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from models.audio import AudioError, to_canonical

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


class TtsError(RuntimeError):
    """The engine could not speak the text."""


@dataclass(frozen=True)
class Prosody:
    """Speaking rate (words per minute) and pitch (espeak's 0-99 scale, 50 is the voice's own)."""

    rate: int
    pitch: int


# Empathetic: slower and lower; calm: slower, steady; upbeat: brisker and brighter.
DEFAULT_PROSODY: Mapping[str, Prosody] = {
    "empathetic": Prosody(rate=140, pitch=38),
    "calm": Prosody(rate=150, pitch=45),
    "neutral": Prosody(rate=170, pitch=50),
    "upbeat": Prosody(rate=190, pitch=62),
}


def sentences(text: str) -> list[str]:
    """Split a reply so the first sentence can play while the rest is synthesised."""
    return [part.strip() for part in _SENTENCE.split(text) if part.strip()]


class TtsEngine(abc.ABC):
    """Text + tone -> canonical audio (16 kHz mono float32)."""

    name = "tts"

    @abc.abstractmethod
    async def synthesize(self, text: str, tone: str = "neutral") -> NDArray[np.float32]:
        """Speak `text` in the tone; raises `TtsError`."""


class EspeakEngine(TtsEngine):
    """espeak-ng in a subprocess (never blocks the event loop); `voice` is an espeak voice name."""

    name = "espeak-ng"

    def __init__(
        self, voice: str = "en-us", prosody: Mapping[str, Prosody] | None = None, binary: str | None = None
    ) -> None:
        self.voice = voice
        self.prosody = dict(prosody or DEFAULT_PROSODY)
        found = binary or shutil.which("espeak-ng")
        if found is None:
            raise TtsError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
        self.binary = found

    def command(self, text: str, tone: str) -> list[str]:
        p = self.prosody.get(tone, self.prosody["neutral"])
        # "--" ends options, so a reply starting with "-" is spoken, not parsed.
        return [self.binary, "--stdout", "-v", self.voice, "-s", str(p.rate), "-p", str(p.pitch), "--", text]

    async def synthesize(self, text: str, tone: str = "neutral") -> NDArray[np.float32]:
        proc = await asyncio.create_subprocess_exec(
            *self.command(text, tone), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        wav, err = await proc.communicate()
        if proc.returncode != 0 or not wav:
            raise TtsError(f"espeak-ng exited {proc.returncode}: {err.decode(errors='replace')[-200:]}")
        return decode_wav(wav)


def decode_wav(wav: bytes) -> NDArray[np.float32]:
    """WAV bytes at any rate -> canonical audio."""
    try:
        data, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
        return to_canonical(data, int(rate), name="tts")
    except (sf.LibsndfileError, RuntimeError, AudioError) as exc:
        raise TtsError(f"unreadable TTS audio: {exc}") from None
