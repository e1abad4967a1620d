"""Word error rate and repeated phrases of a transcript against its reference.

Both sides are normalised the same way before they are compared (`normalise`):
lower case; apostrophes dropped ("don't" -> "dont"); any other punctuation,
hyphens included, separates words; "mr" / "mrs" / "dr" spelled out; numbers
as digits, one digit a word, whichever way they were written: "ten", "10",
"one zero" all become "1 0"; "twenty three" and "23" become "2 3"; "oh" is
read as zero (callers read numbers so, and both sides are treated alike).

A hypothesis has a *repeated phrase* when a word n-gram of at least 3 words
(after normalisation) occurs at least twice in it but not twice in the
reference: the mark of a decoder that ran on past the end of the speech
("dogs are sitting by the door dogs are sitting by"). Any repeated n-gram of
more words contains a repeated 3-gram, so 3-grams are what is counted.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

__all__ = ["WordErrors", "normalise", "repeated_phrase", "word_errors"]

REPEAT_WORDS = 3
_UNITS = (
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    + ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen")
    + ("sixteen", "seventeen", "eighteen", "nineteen")
)
_TENS_WORDS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_TENS = {w: 10 * i for i, w in enumerate(_TENS_WORDS, start=2)}
_NUMBER = {**{w: i for i, w in enumerate(_UNITS)}, "oh": 0}
_SPELLED = {"mr": "mister", "mrs": "missus", "dr": "doctor"}
_TOKEN = re.compile(r"[a-z0-9]+")


def normalise(text: str) -> list[str]:
    """The words of `text` as they are compared (see the module's docstring)."""
    tokens = [_SPELLED.get(t, t) for t in _TOKEN.findall(text.lower().replace("'", "").replace("\u2019", ""))]
    out: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _TENS:
            value = _TENS[token]
            if i + 1 < len(tokens) and _NUMBER.get(tokens[i + 1], 10) < 10 and tokens[i + 1] != "oh":
                value += _NUMBER[tokens[i + 1]]
                i += 1
            out += list(str(value))
        elif token in _NUMBER:
            out += list(str(_NUMBER[token]))
        elif token.isdigit():
            out += list(token)
        else:
            out.append(token)
        i += 1
    return out


@dataclass(frozen=True)
class WordErrors:
    """The edit distance between reference and hypothesis words, by kind."""

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        return self.errors / max(self.reference_words, 1)

    def __add__(self, other: WordErrors) -> WordErrors:
        return WordErrors(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_words + other.reference_words,
        )


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    """Substitutions, deletions and insertions of the normalised hypothesis against the normalised reference
    (a minimum edit distance; among equally short alignments, the one with fewest substitutions)."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    # Each cell: (errors, substitutions, deletions, insertions); tuples compare errors first.
    row = [(j, 0, 0, j) for j in range(len(hyp) + 1)]
    for i in range(1, len(ref) + 1):
        new = [(i, 0, i, 0)]
        for j in range(1, len(hyp) + 1):
            e, s, d, n = row[j - 1]
            same = ref[i - 1] == hyp[j - 1]
            diagonal = (e + (not same), s + (not same), d, n)
            e, s, d, n = row[j]
            deletion = (e + 1, s, d + 1, n)
            e, s, d, n = new[j - 1]
            insertion = (e + 1, s, d, n + 1)
            new.append(min(diagonal, deletion, insertion, key=lambda c: (c[0], c[1])))
        row = new
    _, s, d, n = row[-1]
    return WordErrors(s, d, n, len(ref))


def _grams(words: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def repeated_phrase(reference: str, hypothesis: str, n: int = REPEAT_WORDS) -> str | None:
    """The first word n-gram (n = 3 by default) found at least twice in the hypothesis but fewer than twice in
    the reference, or None."""
    said, heard = _grams(normalise(reference), n), _grams(normalise(hypothesis), n)
    for gram, count in heard.items():
        if count >= 2 and said[gram] < 2:
            return " ".join(gram)
    return None
