"""The call core's turn segmentation (silero VAD, pre-roll, early end-of-turn): it lives in `models.turns`.

It moved there so that offline evaluation (`python -m models.evaluate asr`) cuts
recordings exactly as calls do without `models/` importing the connectors; this
module keeps the connectors' import path.
"""

from __future__ import annotations

from models.turns import WINDOW, SpeechStarted, Turn, TurnEnding, TurnEvent, TurnSegmenter, TurnSettings

__all__ = ["WINDOW", "SpeechStarted", "Turn", "TurnEnding", "TurnEvent", "TurnSegmenter", "TurnSettings"]
