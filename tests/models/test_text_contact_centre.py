"""Contact-centre phrasings the text model must read the way a supervisor would.

The sentences (tests/models/data/contact_centre.csv) are written for Toneline and
never used for training. Families (`models.emotion.FAMILIES`): negative = sad,
angry, fearful, disgusted; positive = happy; neutral = neutral or surprised.

A turn's family is the one holding the most probability (`EmotionEstimate.family`),
as routing reads negativity. The first 48 rows (kind `issue-4`) are issue 4's
suite, also the selection guard of the issue-18 head refit; mapping the top label
is guarded there too, so a model that spreads its negatives more thinly cannot hide
behind the family sum. The rows added for issue 18 (plain requests, polite but
frustrated, sarcastic, thanks after a complaint) were written before any model
read them and are never selected on; see the grown-suite test for its floor.
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
GROWN_FLOOR = 0.8


@pytest.fixture(scope="module")
def model() -> TextEmotionModel:
    from plugin.nlu import shared_text_model

    return shared_text_model(None, None)


def read_rows() -> list[dict[str, str]]:
    with DATA.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_contact_centre_sentences_read_in_the_right_family(model: TextEmotionModel) -> None:
    rows = [r for r in read_rows() if r["kind"] == "issue-4"]
    assert len(rows) == 48 and {r["family"] for r in rows} == {"negative", "neutral", "positive"}
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


def test_grown_suite_with_plain_requests_and_mixed_turns(model: TextEmotionModel) -> None:
    rows = read_rows()
    kinds = {r["kind"] for r in rows}
    assert {"plain", "polite-frustrated", "sarcastic", "thanks-after-complaint"} <= kinds and len(rows) >= 75
    estimates = model.predict_batch([r["text"] for r in rows])
    misses = [(r["kind"], r["text"], r["family"], e.family) for r, e in zip(rows, estimates) if e.family != r["family"]]
    accuracy = 1 - len(misses) / len(rows)
    # Not 0.9: the grown suite reads 67 / 80 (0.8375) with the shipped model and with the one before it,
    # because sarcasm (0 / 5) and polite frustration (2 / 6) read as their surface words (models/cards/text.md).
    # This floor guards against regression; the 0.9 on the grown suite is not met.
    assert accuracy >= GROWN_FLOOR, f"family accuracy {accuracy:.3f} < {GROWN_FLOOR}; misses: {misses}"
    # Plain requests are most of a contact centre's turns: each one read as an emotion is a false alarm.
    plain = [m for m in misses if m[0] == "plain"]
    assert len(plain) <= 1, plain
    # Thanks after a complaint is a customer whose problem was solved: never negative.
    assert not [m for m in misses if m[0] == "thanks-after-complaint" and m[3] == "negative"], misses


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
