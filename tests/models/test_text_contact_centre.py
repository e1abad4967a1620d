"""Contact-centre phrasings the text model must read the way a supervisor would.

The sentences (tests/models/data/contact_centre.csv) are written for Toneline and
never used for training. Families: negative = sad, angry, fearful, disgusted;
positive = happy; neutral = neutral or surprised. The foundation's frozen-encoder
model read 42 of 48 (0.875), the fine-tuned one reads 43 (0.896; the card lists
the misses): this guards that level. Issue 4 asks for 0.9, one sentence more.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from models.text import TextEmotionModel

DATA = Path(__file__).resolve().parent / "data" / "contact_centre.csv"
FAMILY = {
    "neutral": "neutral",
    "surprised": "neutral",
    "happy": "positive",
    "sad": "negative",
    "angry": "negative",
    "fearful": "negative",
    "disgusted": "negative",
}
FLOOR = 43 / 48


@pytest.fixture(scope="module")
def model() -> TextEmotionModel:
    from plugin.nlu import shared_text_model

    return shared_text_model(None, None)


def test_contact_centre_sentences_read_in_the_right_family(model: TextEmotionModel) -> None:
    with DATA.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 40 and {r["family"] for r in rows} == {"negative", "neutral", "positive"}
    estimates = model.predict_batch([r["text"] for r in rows])
    misses = [(r["text"], r["family"], e.label) for r, e in zip(rows, estimates) if FAMILY[e.label] != r["family"]]
    accuracy = 1 - len(misses) / len(rows)
    assert accuracy >= FLOOR, f"family accuracy {accuracy:.3f} < {FLOOR}; misses: {misses}"
    # Polarity flips (negative read as positive or back) are the costly misses. Two are known and in the
    # card: the sarcastic "Thanks for nothing" and "I appreciate you trying, but ... I'm really frustrated".
    flips = [m for m in misses if {m[1], FAMILY[m[2]]} == {"negative", "positive"}]
    assert len(flips) <= 2, flips
