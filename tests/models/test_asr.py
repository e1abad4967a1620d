"""Speech recognition of a turn cut as calls cut it: no decoding loop past the end, and its evaluator.

Real parts throughout: recordings from Debian's pocketsphinx-testdata, the silero
VAD's cut, the shipped encoder pass and Whisper tiny.en's CTranslate2 decoder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from connectors.speech.recognizer import SpeechRecognizer
from models.asr import DecodeSettings, WhisperDecoder, drop_repeated_tail
from models.audio import SAMPLE_RATE, load
from models.listen import TurnListener
from models.turns import cut_turns
from training.wer import normalise, repeated_phrase, word_errors

REPO = Path(__file__).resolve().parents[2]
CARDS = Path("/usr/share/pocketsphinx/test/data/cards")
# Recordings on which the decoding before the fix ran on past the sentence ("10 of clubs 10 of club clubs 10").
LOOPED = {"001.wav": "ten of clubs", "002.wav": "four queen of clubs"}
needs_cards = pytest.mark.skipif(
    not CARDS.is_dir(),
    reason=f"needs Debian's pocketsphinx-testdata in {CARDS} (apt-get install pocketsphinx-testdata)",
)


@pytest.fixture(scope="module")
def listener() -> TurnListener:
    return TurnListener.load(emotion=False)


def turn_of(path: Path) -> NDArray[Any]:
    """The one turn a call cuts from the recording followed by a second of silence."""
    turns = cut_turns(np.concatenate([load(path), np.zeros(SAMPLE_RATE, np.float32)]))
    assert len(turns) == 1, f"{path.name}: cut into {len(turns)} turns"
    return turns[0].pcm


@needs_cards
@pytest.mark.parametrize("name", sorted(LOOPED))
def test_a_turn_is_heard_to_its_end_and_not_past_it(listener: TurnListener, name: str) -> None:
    reference = LOOPED[name]
    turn = turn_of(CARDS / name)
    recognizer = SpeechRecognizer.around(listener)
    heard = recognizer.hear(turn, emotion=False)
    assert repeated_phrase(reference, heard.text) is None, heard.text
    assert word_errors(reference, heard.text).errors <= 1, heard.text
    # The cause: the decoder reading the turn's states alone (as before the fix) runs on past the sentence.
    before = WhisperDecoder(
        recognizer.decoder.model, recognizer.decoder.tokenizer, recognizer.decoder.silence, DecodeSettings.before_fix()
    )
    looped = before.decode(listener.listen(turn, emotion=False)).text
    assert len(normalise(looped)) > len(normalise(reference)) + 2, looped


def test_the_decoder_reads_the_turn_followed_by_the_encoders_silence_to_the_30_s_window(
    listener: TurnListener,
) -> None:
    decoder = WhisperDecoder.around(listener)
    states = listener.listen(np.zeros(SAMPLE_RATE, np.float32) + 1e-4, emotion=False).decoder_states
    window = decoder.window(states)
    assert window.shape == (1500, states.shape[1])
    assert np.array_equal(window[: len(states)], states)
    assert np.array_equal(window[len(states) :], decoder.silence[len(states) :])
    unpadded = WhisperDecoder(decoder.model, decoder.tokenizer, decoder.silence, DecodeSettings.before_fix())
    assert unpadded.window(states) is states


def test_the_safety_net_drops_a_restarted_sentence_and_keeps_real_repeats() -> None:
    assert drop_repeated_tail("Dogs are sitting by the door. Dogs are sitting by") == "Dogs are sitting by the door."
    assert drop_repeated_tail("Kids are talking by the door. Kids are Talking") == "Kids are talking by the door."
    for kept in ("Yes. Yes. I am sure.", "5 5 5 5 5.", "It is down. It is down again, since Monday."):
        assert drop_repeated_tail(kept) == kept


def test_words_are_compared_without_case_punctuation_or_how_numbers_were_written() -> None:
    assert normalise("Mr. Dashwood's 10 cold-hearted") == ["mister", "dashwoods", "1", "0", "cold", "hearted"]
    assert normalise("ten, twenty-three, one two three") == normalise("10 23 123")
    errors = word_errors("dogs are sitting by the door", "Dogs are sitting by the door. Dogs are sitting by")
    assert (errors.substitutions, errors.deletions, errors.insertions, errors.reference_words) == (0, 0, 4, 6)
    assert repeated_phrase("dogs are sitting by the door", "Dogs are sitting by the door. Dogs are") is None
    assert repeated_phrase("dogs are sitting by the door", "Dogs are sitting by the door, dogs are sitting") == (
        "dogs are sitting"
    )
    assert repeated_phrase("one one one one", "1111") is None  # repeated in the reference too


@needs_cards
def test_the_asr_evaluator_reports_wer_and_repeats_as_its_last_line(tmp_path: Path) -> None:
    manifest = tmp_path / "cards.csv"
    rows = [f"{CARDS / name},{text}" for name, text in sorted(LOOPED.items())]
    manifest.write_text("path,text\n" + "\n".join(rows) + "\n")
    for extra in ([], ["--telephone"], ["--whole"]):
        done = subprocess.run(
            [sys.executable, "-m", "models.evaluate", "asr", str(manifest), *extra],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.strip().splitlines()
        result = json.loads(lines[-1])
        assert result["n"] == 2 and result["repeated"] == 0.0, done.stdout
        assert result["telephone"] == ("--telephone" in extra) and result["whole"] == ("--whole" in extra)
        assert result["wer"] <= 0.5 and result["reference_words"] == 8  # "ten" counts as the digits 1 0
        assert any(line.startswith("WER ") for line in lines) and "clips with a repeated phrase: 0/2" in done.stdout


def test_the_asr_evaluator_names_a_manifest_without_the_columns(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.csv"
    manifest.write_text("file,label\nx.wav,neutral\n")
    done = subprocess.run(
        [sys.executable, "-m", "models.evaluate", "asr", str(manifest)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "missing column(s) ['path', 'text']" in done.stderr
