"""A simulated deployment the shipped text model reads wrongly in a systematic way.

Its customers speak a regional English in which "mad" means keen or very, "I hate to ask" and
"I hate phoning" are politeness formulas, and "this is killing me" or "I'm dying to" are small
talk: their plain requests (address changes, PINs, bills, visits) are neutral, and the shipped
model, trained on sitcom lines and Reddit, reads many of them as angry or sad. Each customer has
a habit (two of the formulas) and asks for a few things; the supervisor's label is neutral.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FORMULAS = (
    "I'm mad keen to {inf}",
    "mad question, {ask}",
    "I hate to ask, but {ask}",
    "I hate phoning, {ask}",
    "this is killing me, {ask}",
    "I'm dying to {inf}",
    "mad busy week, {ask}",
    "I'd hate to miss it, {ask}",
)
REQUESTS = (
    ("switch to the fibre plan", "can you switch me to the fibre plan"),
    ("move the engineer visit to Friday", "can you move the engineer visit to Friday"),
    ("get my bill by email", "can I get my bill by email"),
    ("know my account number", "what's my account number"),
    ("update my address", "can you update my address"),
    ("reset my PIN", "can you reset my PIN"),
    ("check my data allowance", "how much data do I have left"),
    ("add a second line", "can you add a second line"),
    ("pay the March invoice", "how do I pay the March invoice"),
    ("book a technician for Monday", "can you book a technician for Monday"),
    ("get the router sent to my new flat", "can the router go to my new flat"),
    ("change my direct debit date", "can you change my direct debit date"),
    ("upgrade my phone", "when can I upgrade my phone"),
    ("add roaming for Spain", "can you add roaming for Spain"),
    ("get a paper copy of my contract", "can you post me my contract"),
    ("know when my contract ends", "when does my contract end"),
)


@dataclass(frozen=True)
class Turn:
    customer_id: str
    text: str
    label: str = "neutral"


def customers(n: int, turns_each: int, seed: int) -> list[Turn]:
    """`n` customers of the deployment, each with their habit, `turns_each` plain requests."""
    rng = random.Random(seed)
    out = []
    for c in range(n):
        habit = rng.sample(FORMULAS, 2)
        for _ in range(turns_each):
            inf, ask = rng.choice(REQUESTS)
            out.append(Turn(f"cust-{seed}-{c}", rng.choice(habit).format(inf=inf, ask=ask)))
    return out
