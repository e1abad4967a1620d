"""A customer's choice about emotion analysis: opted out (from a turn on, every channel) or not.

The choice is asked for in two ways, read in this order: the `opt_out` flag of the
turn's metadata (a connector or CRM; `plugin.metadata`), then the intents the bot's
NLU gives the customer's words (`consent.opt_out_intent`, `consent.opt_in_intent` in
toneline.yml). It is kept per customer in Redis (`{p}:cust:{c:id}:consent`: the choice,
when, and how it was made) with no TTL (a choice must not lapse; erasure removes it),
written through the outbox so an opt-out said while Redis is away is not lost.

`Reading` is the choice as one turn left it; the NLU component puts it in the parse
data (`CONSENT_KEY`) before any model runs, so the policy and the handoff action see it.
While Redis is away the previous turn's reading in the conversation decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from plugin.metadata import TurnMetadata
from plugin.schema import ConsentField
from plugin.settings import ConsentSettings
from plugin.state import StateStore, StateUnavailable

OPTED_OUT_SOURCES = ("metadata", "intent", "dashboard")


@dataclass(frozen=True)
class Consent:
    """A customer's stored choice: `opted_out` since `at` (epoch seconds), made by `source`."""

    opted_out: bool
    at: float
    source: str

    def to_fields(self) -> dict[str, str]:
        return {
            ConsentField.OPTED_OUT.value: "1" if self.opted_out else "0",
            ConsentField.AT.value: repr(self.at),
            ConsentField.SOURCE.value: self.source,
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Consent | None:
        """The stored choice, or None when there is none or it cannot be read (then the default, analysed)."""
        try:
            at = float(fields[ConsentField.AT.value])
            flag = fields[ConsentField.OPTED_OUT.value]
        except (KeyError, TypeError, ValueError):
            return None
        if flag not in ("0", "1") or not math.isfinite(at):
            return None
        return cls(flag == "1", at, str(fields.get(ConsentField.SOURCE.value) or "unknown"))


@dataclass(frozen=True)
class Reading:
    """The choice as one turn left it: whether the turn may be analysed, and whether this turn changed it."""

    opted_out: bool
    changed: bool = False
    at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"opted_out": self.opted_out, "changed": self.changed, "at": self.at}

    @classmethod
    def from_parse(cls, data: Any) -> Reading | None:
        """Read back `to_dict()` from the parse data; None for anything else."""
        if not isinstance(data, Mapping) or not isinstance(data.get("opted_out"), bool):
            return None
        at = data.get("at")
        return cls(data["opted_out"], data.get("changed") is True, float(at) if isinstance(at, (int, float)) else None)


def asked(meta: TurnMetadata, intent: str | None, settings: ConsentSettings) -> tuple[bool, str] | None:
    """What this turn asks: (opted_out, source), or None when it asks nothing. The metadata's word wins."""
    if meta.opt_out is not None:
        return meta.opt_out, "metadata"
    if intent == settings.opt_out_intent:
        return True, "intent"
    if intent == settings.opt_in_intent:
        return False, "intent"
    return None


class StoredConsent:
    """Whether a customer opted out, as kept in Redis: for connectors that run a model before Rasa sees the
    turn (the phone's voice head). None while Redis cannot say (the caller keeps the last answer)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def __call__(self, customer_id: str) -> bool | None:
        try:
            consent = Consent.from_fields(self.store.consent(customer_id))
        except StateUnavailable:  # logged by the store
            return None
        return consent is not None and consent.opted_out
