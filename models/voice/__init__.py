"""Voice emotion: frozen Whisper tiny.en encoder states plus a small trained head, read beside the caller's
calm baseline.

One module per concern: `encoder` (the Whisper encoder's states), `stats` (what the head reads of a turn:
`pooled_stats`), `baseline` (`CallerBaseline` and the `CalmGate` that decides which turns teach it), `head`
(`VoiceHead`, its checkpoint and `OldVoiceHeadError`) and `reader` (`VoiceEmotionModel`, the runtime reader:
`read_turn` for the listener's shared turn pass, `predict` for a clip). The public names are re-exported here,
so `from models.voice import ...` reads as before.
"""

from __future__ import annotations

from models.voice.baseline import CALM_TURNS, CallerBaseline, CalmGate
from models.voice.encoder import (
    ENCODER_NAME,
    FRAMES_PER_SECOND,
    MAX_SAMPLES,
    WINDOW_MEL_FRAMES,
    WhisperEncoder,
    encoder_path,
    frames_covering,
    last_layer,
)
from models.voice.head import (
    DEFAULT_HEAD,
    HEAD_KIND,
    WEIGHTS_DIR,
    HeldOut,
    OldVoiceHeadError,
    VoiceCheckpoint,
    VoiceHead,
    held_out_speakers,
    load_head,
)
from models.voice.reader import VoiceEmotionModel
from models.voice.stats import STATS_DIM, check_states, pooled_stats

__all__ = [
    "CALM_TURNS",
    "DEFAULT_HEAD",
    "ENCODER_NAME",
    "FRAMES_PER_SECOND",
    "HEAD_KIND",
    "MAX_SAMPLES",
    "STATS_DIM",
    "WEIGHTS_DIR",
    "WINDOW_MEL_FRAMES",
    "CalmGate",
    "CallerBaseline",
    "HeldOut",
    "OldVoiceHeadError",
    "VoiceCheckpoint",
    "VoiceEmotionModel",
    "VoiceHead",
    "WhisperEncoder",
    "check_states",
    "encoder_path",
    "frames_covering",
    "held_out_speakers",
    "last_layer",
    "load_head",
    "pooled_stats",
]
