"""The process-wide speech runtime: models loaded once, a bounded executor, TTS.

Model work (VAD windows, the Whisper pass, the emotion head, audio conversion)
runs in thread pools, never on the event loop:
- `models`: a small pool (`workers` threads) for the Whisper pass. Jobs beyond
  the pool wait; `pending` counts them. When more than `overload_after` turns
  are waiting, new turns are heard without the emotion head (logged): the reply
  must not be dropped, the emotion estimate may be.
- `light`: one thread for VAD windows and codec/resampling, which are cheap but
  must not queue behind a Whisper pass.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
from numpy.typing import NDArray

from connectors.speech.recognizer import Hearing, Recognizer, SpeechRecognizer
from connectors.speech.tts import EspeakEngine, TtsEngine
from models.audio import SAMPLE_RATE
from models.logs import log_event
from models.voice import CallerBaseline

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RuntimeSettings:
    """How much of the machine speech may use."""

    workers: int = 1
    overload_after: int = 2
    emotion: bool = True
    # Another voice head than the shipped one (an adapted one, or a cross-validation fold's head in quality runs).
    voice_head: Path | None = None
    # Seconds of synthesised reply audio kept to be played again (0: none); see `SpokenCache`.
    tts_cache_s: float = 600.0

    @classmethod
    def from_env(cls) -> RuntimeSettings:
        return cls(
            workers=int(os.environ.get("TONELINE_SPEECH_WORKERS", "1")),
            overload_after=int(os.environ.get("TONELINE_SPEECH_OVERLOAD_AFTER", "2")),
            emotion=os.environ.get("TONELINE_SPEECH_EMOTION", "1") != "0",
            voice_head=_voice_head(os.environ.get("TONELINE_VOICE_HEAD", "")),
            tts_cache_s=float(os.environ.get("TONELINE_TTS_CACHE_S", "600")),
        )


def _voice_head(named: str) -> Path | None:
    """`TONELINE_VOICE_HEAD`, checked at start-up: a named head that is not there fails now, not mid-call."""
    if not named:
        return None
    path = Path(named).expanduser()
    if not path.is_file() or not path.with_suffix(".json").is_file():
        raise ValueError(f"TONELINE_VOICE_HEAD={named}: no voice head (.pt with its .json sidecar) there")
    return path


class SpokenCache:
    """Reply sentences already synthesised, per tone, most recently used kept, up to `seconds` of audio in all.

    A bot says the same sentences again and again ("Let me check that for you."): synthesising each once per
    tone takes the TTS off the reply's critical path (issue 33). Only sentences without digits are kept, so an
    account number, an amount or a date read back to one caller never stays in memory; the audio is read-only.
    """

    def __init__(self, seconds: float) -> None:
        self.budget = int(seconds * SAMPLE_RATE)
        self.held = 0
        self._audio: OrderedDict[tuple[str, str], NDArray[np.float32]] = OrderedDict()

    @staticmethod
    def keeps(text: str) -> bool:
        return not any(ch.isdigit() for ch in text)

    def get(self, text: str, tone: str) -> NDArray[np.float32] | None:
        pcm = self._audio.get((text, tone))
        if pcm is not None:
            self._audio.move_to_end((text, tone))
        return pcm

    def put(self, text: str, tone: str, pcm: NDArray[np.float32]) -> NDArray[np.float32]:
        if not self.keeps(text) or pcm.size > self.budget or (text, tone) in self._audio:
            return pcm
        pcm = pcm.copy()
        pcm.flags.writeable = False  # shared by every call that says it
        self._audio[(text, tone)] = pcm
        self.held += pcm.size
        while self.held > self.budget:
            _, dropped = self._audio.popitem(last=False)
            self.held -= dropped.size
        return pcm


class SpeechRuntime:
    """Shared by every call in the process; sessions keep their own state and call in here."""

    def __init__(
        self,
        settings: RuntimeSettings | None = None,
        tts: TtsEngine | None = None,
        loader: Callable[[RuntimeSettings], Recognizer] | None = None,
    ) -> None:
        self.settings = settings or RuntimeSettings()
        self._tts = tts
        self._loader: Callable[[RuntimeSettings], Recognizer] = loader or (
            lambda s: SpeechRecognizer.load(workers=s.workers, emotion=s.emotion, head=s.voice_head)
        )
        self._models = ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="toneline-asr")
        self._light = ThreadPoolExecutor(max_workers=1, thread_name_prefix="toneline-vad")
        self._recognizer: Recognizer | None = None
        self._spoken = SpokenCache(self.settings.tts_cache_s) if self.settings.tts_cache_s > 0 else None
        self._loading: asyncio.Future[Recognizer] | None = None
        self.pending = 0

    @property
    def tts(self) -> TtsEngine:
        if self._tts is None:
            self._tts = EspeakEngine()
        return self._tts

    @property
    def overloaded(self) -> bool:
        return self.pending > self.settings.overload_after

    async def recognizer(self) -> Recognizer:
        """The loaded models; the first caller loads them (in the pool), the others wait for it."""
        if self._recognizer is not None:
            return self._recognizer
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
        return await asyncio.shield(self._loading)

    async def _load(self) -> Recognizer:
        loop = asyncio.get_running_loop()
        recognizer = await loop.run_in_executor(self._models, self._loader, self.settings)
        self._recognizer = recognizer
        log_event(logger, logging.INFO, "speech.models.loaded", emotion=recognizer.has_emotion)
        return recognizer

    async def light(self, fn: Callable[..., T], *args: Any) -> T:
        """Run cheap audio work (VAD, codec) off the loop, in order with the other light jobs."""
        return await asyncio.get_running_loop().run_in_executor(self._light, partial(fn, *args))

    async def hear(
        self,
        pcm: NDArray[np.float32],
        start: float,
        end: float,
        call_id: str,
        baseline: CallerBaseline | None = None,
        analyse: bool = True,
    ) -> Hearing:
        """ASR + voice emotion of one turn (read against the caller's `baseline`); under overload the emotion
        head is skipped, never the turn. `analyse=False` (a caller who opted out): the ASR pass only."""
        recognizer = await self.recognizer()
        emotion = analyse and not self.overloaded
        if analyse and not emotion:
            log_event(logger, logging.WARNING, "speech.emotion.skipped", call_id=call_id, pending=self.pending)
        self.pending += 1
        try:
            job = partial(recognizer.hear, pcm, start, end, emotion, baseline)
            return await asyncio.get_running_loop().run_in_executor(self._models, job)
        finally:
            self.pending -= 1

    async def speak(self, text: str, tone: str) -> NDArray[np.float32]:
        """Canonical audio of `text` in `tone` (read-only when it comes from the cache)."""
        if self._spoken is None:
            return await self.tts.synthesize(text, tone)
        cached = self._spoken.get(text, tone)
        if cached is not None:
            return cached
        return self._spoken.put(text, tone, await self.tts.synthesize(text, tone))

    def close(self) -> None:
        self._models.shutdown(wait=False, cancel_futures=True)
        self._light.shutdown(wait=False, cancel_futures=True)


_RUNTIMES: dict[RuntimeSettings, SpeechRuntime] = {}


def shared_runtime(settings: RuntimeSettings | None = None) -> SpeechRuntime:
    """The one runtime of this process for `settings` (channels mounted together share the models)."""
    key = settings or RuntimeSettings.from_env()
    if key not in _RUNTIMES:
        _RUNTIMES[key] = SpeechRuntime(key)
    return _RUNTIMES[key]
