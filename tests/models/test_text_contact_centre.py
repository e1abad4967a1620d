"""Contact-centre phrasings the text model must read the way a supervisor would.

The sentences (tests/models/data/contact_centre.csv) are written for Toneline and
never used for training. Families (`models.emotion.FAMILIES`): negative = sad,
angry, fearful, disgusted; positive = happy; neutral = neutral or surprised.

A turn's family is the one holding the most probability (`EmotionEstimate.family`),
as routing reads negativity: 45 of 48 (0.9375; issue 4 asks for 0.9). Mapping the
top label instead reads 43 (0.896; the foundation's frozen model 42), because four
labels share the negative mass; that stricter reading is guarded too, so a model
that spreads its negatives more thinly cannot hide behind the family sum.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from models.emotion import FAMILY_OF_LABEL
from models.text import TextEmotionModel

DATA = Path(__file__).resolve().parent / "data" / "contact_centre.csv"
FLOOR = 0.9  # issue 4
TOP_LABEL_FLOOR = 43 / 48


@pytest.fixture(scope="module")
def model() -> TextEmotionModel:
    from plugin.nlu import shared_text_model

    return shared_text_model(None, None)


def test_contact_centre_sentences_read_in_the_right_family(model: TextEmotionModel) -> None:
    with DATA.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 40 and {r["family"] for r in rows} == {"negative", "neutral", "positive"}
    estimates = model.predict_batch([r["text"] for r in rows])
    misses = [(r["text"], r["family"], e.family) for r, e in zip(rows, estimates) if e.family != r["family"]]
    accuracy = 1 - len(misses) / len(rows)
    assert accuracy >= FLOOR, f"family accuracy {accuracy:.3f} < {FLOOR}; misses: {misses}"
    # Polarity flips (negative read as positive or back) are the costly misses. One is known and in the
    # card: the sarcastic "Thanks for nothing, I'm cancelling today".
    flips = [m for m in misses if {m[1], m[2]} == {"negative", "positive"}]
    assert len(flips) <= 1, flips
    top_label_hits = sum(FAMILY_OF_LABEL[e.label] == r["family"] for r, e in zip(rows, estimates))
    assert top_label_hits / len(rows) >= TOP_LABEL_FLOOR, f"top-label family accuracy {top_label_hits}/{len(rows)}"


# Outbursts a supervisor wants handed over at once, and unhappy turns that should
# wait for the sustained rule. Several outbursts split their probability between
# anger and disgust: the sharp rule must read how surely the turn is negative, not
# how sure the top label is (with the top-label rule, 3 of these 5 did not escalate).
OUTBURSTS = [
    "This is a disgrace, I hate dealing with you!",
    "I'm furious, this is the worst service I have ever had!",
    "I'm furious",
    "I am so angry right now, you people are useless!",
    "Stop wasting my time and get me a manager now!",
]
NOT_AT_ONCE = [
    "I'm so disappointed, I've been a loyal customer for ten years.",
    "Honestly, I'm fed up. Every month there's a new mistake on my bill.",
    "I'd like to check the balance on my account.",
    "Thanks, that fixed it!",
]


def test_outbursts_escalate_at_once_and_milder_turns_wait(model: TextEmotionModel) -> None:
    from models.fusion import load_fusion
    from plugin.routing import ConversationState, RoutingConfig, TurnRecord, decide

    fusion, config = load_fusion(), RoutingConfig()

    def first_turn_rule(text: str) -> str | None:
        emotion = fusion.fuse([model.predict(text)])
        record = TurnRecord.of(emotion, "m1", 1.0)
        return decide(ConversationState("conv", "cust", (record,)), config).rule

    assert {text: first_turn_rule(text) for text in OUTBURSTS} == {text: "sharp_negative" for text in OUTBURSTS}
    assert {text: first_turn_rule(text) for text in NOT_AT_ONCE} == {text: None for text in NOT_AT_ONCE}
