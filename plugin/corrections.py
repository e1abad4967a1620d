"""Supervisors' corrections of the models' readings, kept in Redis for agreement and adaptation.

A supervisor marks a turn's emotion right or wrong (with the right label), or an
escalation needed or not needed. A correction keeps who, when, the model's reading and
each modality's own reading of the turn (from the turn record). Only when the deployment
retains material for adaptation (`adaptation.retain`) and the customer has not opted out
does it also keep the turn's text and pooled voice features (`{p}:{sNN}:conv:{id}:retained`,
written at read time; never audio). Corrections expire after `adaptation.retention_days`.

    {p}:cust:{c:customer}:corrections   hash: "{conversation}|{message}|{kind}" -> correction JSON (latest wins)
    {p}:corrections                     zset: customers with corrections, by the latest one

The hash is one key under the customer's tag (`plugin.schema`), written by a script; the
index is a separate, idempotent ZADD (a cluster cannot put both in one transaction),
made first, so a correction is never stored without its customer in the index.

`python -m plugin.corrections export OUT.jsonl` writes the labelled set that
`python -m models.adapt` reads (one JSON object a line; customers kept apart for splitting).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

from models.emotion import LABELS
from plugin.schema import (
    HSET_TTL_LUA,
    ConsentField,
    ConversationMeta,
    ConvKey,
    CustKey,
    Keys,
    correction_field,
    corrections_of,
    retained_voice_field,
)
from plugin.settings import AdaptationSettings
from plugin.state import StateStore, StateUnavailable

EMOTION, ESCALATION = "emotion", "escalation"
VERDICTS = {EMOTION: ("right", "wrong"), ESCALATION: ("needed", "not_needed")}
MAX_SUPERVISOR_CHARS = 64


class BadCorrection(ValueError):
    """A correction that cannot be stored; the message says which field is wrong."""


@dataclass(frozen=True)
class CorrectionRequest:
    """What a supervisor sent: which turn, what kind, the verdict and (for a wrong emotion) the right label."""

    conversation_id: str
    message_id: str
    kind: str
    verdict: str
    label: str | None = None

    @classmethod
    def parse(cls, conversation_id: str, body: Any) -> CorrectionRequest:
        """Validate a request body; raises `BadCorrection` naming the field."""
        if not isinstance(body, Mapping):
            raise BadCorrection("the body must be a JSON object")
        fields = {key: body.get(key) for key in ("message_id", "kind", "verdict", "label")}
        for key in ("message_id", "kind", "verdict"):
            if not isinstance(fields[key], str) or not fields[key] or len(str(fields[key])) > 200:
                raise BadCorrection(f"'{key}' must be a non-empty string")
        kind, verdict, label = str(fields["kind"]), str(fields["verdict"]), fields["label"]
        if kind not in VERDICTS:
            raise BadCorrection(f"'kind' must be one of {sorted(VERDICTS)}")
        if verdict not in VERDICTS[kind]:
            raise BadCorrection(f"'verdict' of a {kind} must be one of {list(VERDICTS[kind])}")
        if kind == EMOTION and verdict == "wrong" and label not in LABELS:
            raise BadCorrection(f"a wrong emotion needs 'label', one of {list(LABELS)}")
        return cls(conversation_id, str(fields["message_id"]), kind, verdict, label if verdict == "wrong" else None)


def correction_record(
    request: CorrectionRequest,
    turn: Mapping[str, Any],
    meta: Mapping[str, str],
    by: str,
    retained: Mapping[str, Any] | None,
    now: float,
    settings: AdaptationSettings,
) -> dict[str, Any]:
    """The stored correction of `turn` (its record on the conversation's timeline); `meta`: the conversation's."""
    fields = ConversationMeta.from_hash(meta)
    model_label = str(turn.get("label"))
    right = model_label if request.verdict == "right" else request.label
    record: dict[str, Any] = {
        "conversation_id": request.conversation_id,
        "message_id": request.message_id,
        "customer_id": fields.customer_id,
        "channel": fields.channel,
        "kind": request.kind,
        "verdict": request.verdict,
        "label": right if request.kind == EMOTION else None,
        "by": by[:MAX_SUPERVISOR_CHARS],
        "at": now,
        "model": {key: turn.get(key) for key in ("label", "valence", "arousal", "confidence", "negative", "intent")},
        "modalities": dict(turn.get("modalities") or {}),
        "expires_at": now + settings.retention_days * 86400,
    }
    if request.kind == ESCALATION:
        record["model"]["escalation_reason"] = fields.escalation_reason
    if retained:
        record["retained"] = dict(retained)
    return record


voice_field = retained_voice_field  # the name connectors and tests knew


class VoiceRetainer:
    """Keeps a turn's pooled voice statistics (what the voice head reads, never audio) for adaptation; for
    connectors, which hear the voice before Rasa sees the turn. Lost, not held on disk, while Redis is away."""

    def __init__(self, store: StateStore, settings: AdaptationSettings) -> None:
        self.store = store
        self.ttl_seconds = settings.retention_days * 86400

    def __call__(self, conversation_id: str, ref: str, features: Sequence[float]) -> None:
        values = [float(f"{float(x):.5g}") for x in features]
        with contextlib.suppress(StateUnavailable):  # logged by the store
            self.store.retain(conversation_id, voice_field(ref), values, self.ttl_seconds)


def field_of(request: CorrectionRequest) -> str:
    return correction_field(request.conversation_id, request.message_id, request.kind)


def week_of(ts: float) -> str:
    """The ISO week of a time, as `2026-W49`."""
    year, week, _ = datetime.fromtimestamp(ts, timezone.utc).isocalendar()
    return f"{year}-W{week:02d}"


def agreement(corrections: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """How often supervisors agreed with the models, per ISO week: the fused reading and each modality's own
    (emotion corrections), and the escalation decisions. Each cell: corrections counted and the share agreed."""
    cells: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for item in corrections:
        at = item.get("at")
        if not isinstance(at, (int, float)) or not math.isfinite(at):
            continue
        week = week_of(float(at))
        if item.get("kind") == ESCALATION:
            _count(cells[(week, "escalation")], item.get("verdict") == "needed")
            continue
        right = item.get("label")
        _count(cells[(week, "fused")], (item.get("model") or {}).get("label") == right)
        for modality, reading in (item.get("modalities") or {}).items():
            if isinstance(reading, Mapping):
                _count(cells[(week, str(modality))], reading.get("label") == right)
    weeks: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for (week, source), (agreed, counted) in sorted(cells.items()):
        weeks[week][source] = {"n": counted, "agreement": round(agreed / counted, 4)}
    return {"weeks": [{"week": week, "by": by} for week, by in sorted(weeks.items())]}


def _count(cell: list[int], agreed: bool) -> None:
    cell[0] += int(agreed)
    cell[1] += 1


class CorrectionStore:
    """Corrections in Redis (async, for the dashboard)."""

    def __init__(self, redis: Any, keys: Keys, settings: AdaptationSettings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings

    async def correct(self, request: CorrectionRequest, by: str, now: float | None = None) -> dict[str, Any] | None:
        """Store a correction of a recorded turn; None when the conversation or the turn is not recorded."""
        now = time.time() if now is None else now
        meta = await self.redis.hgetall(self.keys.conv(request.conversation_id, ConvKey.META))
        turns = await self.redis.lrange(self.keys.conv(request.conversation_id, ConvKey.TURNS), 0, -1)
        turn = next((t for t in map(json.loads, turns) if t.get("message_id") == request.message_id), None)
        if not meta or turn is None:
            return None
        record = correction_record(request, turn, meta, by, await self._retained(request, meta), now, self.settings)
        key = self.keys.cust(record["customer_id"], CustKey.CORRECTIONS)
        await self.redis.zadd(self.keys.corrections, {record["customer_id"]: now})
        ttl = self.settings.retention_days * 86400
        await self.redis.eval(HSET_TTL_LUA, 1, key, field_of(request), json.dumps(record), ttl)
        return record

    async def _retained(self, request: CorrectionRequest, meta: Mapping[str, str]) -> dict[str, Any] | None:
        """The turn's text and voice features, only when retention is on and the customer has not opted out."""
        if not self.settings.retain:
            return None
        customer_id = ConversationMeta.from_hash(meta).customer_id
        consent = await self.redis.hget(self.keys.cust(customer_id, CustKey.CONSENT), ConsentField.OPTED_OUT.value)
        if consent == "1":
            return None
        key = self.keys.conv(request.conversation_id, ConvKey.RETAINED)
        raw = await self.redis.hget(key, request.message_id)
        if not raw:
            return None
        material = dict(json.loads(raw))
        ref = material.pop("voice_ref", None)
        voice = await self.redis.hget(key, voice_field(str(ref))) if ref else None
        if voice:
            material["voice_features"] = json.loads(voice)
        return material

    async def all(self, limit_customers: int = 100_000) -> list[dict[str, Any]]:
        """Every stored correction (the agreement view reads them all; corrections are few)."""
        customers = await self.redis.zrevrange(self.keys.corrections, 0, limit_customers - 1)
        pipe = self.redis.pipeline(transaction=False)  # each customer under their own tag
        for customer in customers:
            pipe.hvals(self.keys.cust(customer, CustKey.CORRECTIONS))
        return [json.loads(item) for values in await pipe.execute() for item in values]

    async def of_conversation(self, conversation_id: str, customer_id: str) -> list[dict[str, Any]]:
        values = await self.redis.hgetall(self.keys.cust(customer_id, CustKey.CORRECTIONS))
        return [json.loads(v) for f, v in values.items() if f.startswith(corrections_of(conversation_id))]


def export(client: Any, keys: Keys) -> list[dict[str, Any]]:
    """Every stored emotion correction with retained words, as `models.adapt` reads them (sync client)."""
    rows = []
    for customer in client.zrange(keys.corrections, 0, -1):
        for raw in client.hvals(keys.cust(customer, CustKey.CORRECTIONS)):
            item = json.loads(raw)
            text = (item.get("retained") or {}).get("text")
            if item.get("kind") == EMOTION and item.get("label") in LABELS and isinstance(text, str) and text.strip():
                model = item.get("model") or {}
                rows.append(
                    {"customer_id": customer, "text": text, "label": item["label"], "model_label": model.get("label")}
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    """`python -m plugin.corrections export OUT.jsonl`: the labelled set for `python -m models.adapt`."""
    import argparse
    from pathlib import Path

    from plugin import settings as toneline_settings
    from plugin.redis_client import connect

    parser = argparse.ArgumentParser(prog="python -m plugin.corrections", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    out = commands.add_parser("export", help="write the corrections with retained words as JSON lines")
    out.add_argument("out", type=Path)
    out.add_argument("--config", default="", help="toneline.yml (default: $TONELINE_CONFIG, else rasa_project/)")
    args = parser.parse_args(argv)
    settings = toneline_settings.load_for_tools(args.config)
    client = connect(settings.redis, socket_timeout=30)
    rows = export(client, Keys(settings.redis.prefix, settings.redis.shards))
    args.out.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    customers = len({row["customer_id"] for row in rows})
    print(f"wrote {len(rows)} corrections of {customers} customers to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
