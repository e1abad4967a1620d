"""Read models of the dashboard: what supervisors see, computed from Toneline's Redis keys.

Key layout, fields and entries: see `plugin.schema` (conversations spread over hash-tag shards; every
reader here reads all shards). Rollups (`{p}:{sNN}:rollup:{YYYYMMDDHH}`) are
written by `plugin.analytics.rollups` from each shard's event stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, TypeVar

from plugin.redis_client import AsyncClient
from plugin.schema import (
    ROLLUP_CHANNEL,
    ROLLUP_INTENT,
    ROLLUP_LABEL,
    ConsentField,
    ConversationMeta,
    ConvKey,
    CustKey,
    Keys,
    MetaField,
    RollupField,
    handoff_case,
)

T = TypeVar("T")

TREND_FLAT = 0.05
MAX_CONVERSATIONS = 2000


def risk(summary: dict[str, Any], last: dict[str, Any], escalated: bool) -> float:
    """How urgently a supervisor should look: low running valence, a negative streak, agitation.

    In [0, ~2]; escalated conversations sink (a person already has them).
    """
    valence = float(summary.get("ewma_valence", 0.0))
    arousal = float(summary.get("ewma_arousal", 0.0))
    streak = int(summary.get("negative_streak", 0))
    score = max(0.0, -valence) + 0.15 * min(streak, 5) + (0.3 * arousal if valence < 0 else 0.0)
    score += 0.2 * max(0.0, -float(last.get("valence", 0.0)))
    return round(score * (0.25 if escalated else 1.0), 4)


def trend_arrow(trend: float) -> str:
    return "up" if trend > TREND_FLAT else "down" if trend < -TREND_FLAT else "flat"


def floor_row(conversation_id: str, fields: dict[str, str], now: float) -> dict[str, Any]:
    """One line of the live floor, from the conversation's meta hash."""
    meta = ConversationMeta.from_hash(fields)
    summary, last = meta.summary, meta.last_turn
    escalated = meta.escalated_message_id is not None
    started = meta.started_at or now
    return {
        "conversation_id": conversation_id,
        "customer_id": meta.customer_id,
        "channel": meta.channel,
        "label": last.get("label"),
        "valence": last.get("valence"),
        "arousal": last.get("arousal"),
        "weights": last.get("weights", {}),
        "trend": summary.get("trend", 0.0),
        "trend_arrow": trend_arrow(float(summary.get("trend", 0.0))),
        "negative_streak": summary.get("negative_streak", 0),
        "n_turns": meta.n_turns,
        "tone": meta.tone,
        "escalated": escalated,
        "escalation_reason": meta.escalation_reason,
        "started_at": started,
        "last_at": meta.last_at or started,
        "seconds_since_start": round(now - started, 1),
        "risk": risk(summary, last, escalated),
    }


class Dashboard:
    """Queries behind the dashboard's pages and API: every shard of the key layout read and merged."""

    def __init__(self, redis: AsyncClient, prefix: str, idle_seconds: int, shards: int = 16) -> None:
        self.redis = redis
        self.keys = Keys(prefix, shards)
        self.idle_seconds = idle_seconds

    async def _each_shard(self, read: Callable[[int], Awaitable[T]]) -> list[T]:
        """`read` of every shard, concurrently (on a cluster each goes to the master owning that shard's slot)."""
        return list(await asyncio.gather(*(read(shard) for shard in self.keys.all_shards())))

    async def _metas(self, conversation_ids: list[str], fields: list[MetaField] | None = None) -> list[Any]:
        # Not a transaction: the conversations live in different shards (a cluster pipeline splits them by node).
        pipe = self.redis.pipeline(transaction=False)
        for conv in conversation_ids:
            key = self.keys.conv(conv, ConvKey.META)
            pipe.hgetall(key) if fields is None else pipe.hmget(key, [f.value for f in fields])
        return list(await pipe.execute())

    async def rows(self, conversation_ids: list[str], now: float) -> list[dict[str, Any]]:
        metas = await self._metas(conversation_ids)
        rows = [floor_row(c, m, now) for c, m in zip(conversation_ids, metas) if m]
        return await self._consent(rows)

    async def _consent(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Mark the rows of customers who opted out: not analysed, whatever was read before."""
        # Not a transaction: each customer's consent lives under that customer's own tag.
        pipe = self.redis.pipeline(transaction=False)
        for row in rows:
            pipe.hget(self.keys.cust(row["customer_id"], CustKey.CONSENT), ConsentField.OPTED_OUT.value)
        for row, flag in zip(rows, await pipe.execute()):
            row["opted_out"] = flag == "1"
        return rows

    async def floor(self, now: float | None = None) -> list[dict[str, Any]]:
        """Conversations active within the idle window, riskiest first."""
        now = time.time() if now is None else now
        since = now - self.idle_seconds
        per_shard = await self._each_shard(
            lambda shard: self.redis.zrevrangebyscore(
                self.keys.active(shard), "+inf", since, start=0, num=MAX_CONVERSATIONS, withscores=True
            )
        )
        latest = sorted((pair for pairs in per_shard for pair in pairs), key=lambda pair: -pair[1])
        rows = await self.rows([conv for conv, _ in latest[:MAX_CONVERSATIONS]], now)
        return sorted(rows, key=lambda r: (-r["risk"], -r["last_at"]))

    async def conversation(self, conversation_id: str, now: float | None = None) -> dict[str, Any] | None:
        """Timeline of one conversation: turns with label, valence/arousal, weights; escalations."""
        now = time.time() if now is None else now
        pipe = self.redis.pipeline(transaction=False)  # one conversation's keys: one slot
        pipe.hgetall(self.keys.conv(conversation_id, ConvKey.META))
        pipe.lrange(self.keys.conv(conversation_id, ConvKey.TURNS), 0, -1)
        pipe.lrange(self.keys.conv(conversation_id, ConvKey.ESCALATIONS), 0, -1)
        meta, turns, escalations = await pipe.execute()
        if not meta:
            return None
        (row,) = await self._consent([floor_row(conversation_id, meta, now)])
        return {
            **row,
            "summary": ConversationMeta.from_hash(meta).summary,
            "turns": [json.loads(t) for t in turns],
            "escalations": [json.loads(e) for e in escalations],
        }

    async def _shard_cases(self, shard: int, limit: int) -> list[dict[str, Any]]:
        entries = await self.redis.xrevrange(self.keys.handoffs(shard), count=limit)
        claims = await self.redis.hgetall(self.keys.claims(shard)) if entries else {}
        return [
            {
                "case_id": Keys.case_id(shard, entry_id),
                **handoff_case(fields),
                "claim": json.loads(claims[entry_id]) if entry_id in claims else None,
            }
            for entry_id, fields in entries
        ]

    async def escalations(self, status: str, limit: int = 200) -> list[dict[str, Any]]:
        """Handoff cases of every shard, newest first, with their claim; status: open, claimed or all."""
        per_shard = await self._each_shard(lambda shard: self._shard_cases(shard, limit))
        cases = sorted((c for cases in per_shard for c in cases), key=_case_order, reverse=True)
        wanted = [c for c in cases if status == "all" or (status == "claimed") == (c["claim"] is not None)]
        return wanted[:limit]

    async def claim(self, case_id: str, agent: str, now: float | None = None) -> dict[str, Any] | None:
        """Claim a case for `agent`; returns the existing claim if someone was first (None if no case)."""
        parsed = self.keys.parse_case_id(case_id)
        if parsed is None:
            return None
        shard, entry_id = parsed
        if not await self.redis.xrange(self.keys.handoffs(shard), min=entry_id, max=entry_id):
            return None
        claim = {"agent": agent, "at": time.time() if now is None else now}
        if await self.redis.hsetnx(self.keys.claims(shard), entry_id, json.dumps(claim)):
            return claim
        first: dict[str, Any] = json.loads(await self.redis.hget(self.keys.claims(shard), entry_id))
        return first

    async def outcomes(self, start: float, end: float, now: float | None = None) -> dict[str, dict[str, int]]:
        """Per hour of start: conversations escalated, resolved (went idle) or still active."""
        now = time.time() if now is None else now
        per_shard = await self._each_shard(
            lambda shard: self.redis.zrangebyscore(self.keys.active(shard), start, "+inf")
        )
        ids = [conv for convs in per_shard for conv in convs]
        out: dict[str, dict[str, int]] = {}
        for started, last, escalated in await self._metas(
            ids, [MetaField.STARTED_AT, MetaField.LAST_AT, MetaField.ESCALATED_MESSAGE_ID]
        ):
            if started is None or not start <= float(started) < end:
                continue
            outcome = "escalated" if escalated else "active" if now - float(last) < self.idle_seconds else "resolved"
            bucket = out.setdefault(hour_key(float(started)), {"escalated": 0, "resolved": 0, "active": 0})
            bucket[outcome] += 1
        return out

    async def _hour(self, hour: str) -> tuple[dict[str, str], int]:
        """The hour's rollup summed over shards; a conversation lives in one shard, so its HyperLogLogs add up."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in self.keys.all_shards():
            pipe.hgetall(self.keys.rollup(shard, hour))
        # PFCOUNT one key at a time: redis-py's cluster pipelines refuse it (a multi-key command elsewhere).
        counts = await self._each_shard(lambda shard: self.redis.pfcount(self.keys.rollup_convs(shard, hour)))
        totals = _Totals()
        for fields in await pipe.execute():
            totals.add(fields)
        return {k: str(v) for k, v in totals.fields.items()}, sum(int(n) for n in counts)

    async def history(self, start: float, end: float, now: float | None = None) -> dict[str, Any]:
        """Hourly rollups between `start` and `end`, with totals per channel, intent, label and outcome."""
        hours = hours_between(start, end)
        per_hour = [await self._hour(hour) for hour in hours]
        outcomes = await self.outcomes(start, end, now)
        rows, totals = [], _Totals()
        for hour, (fields, conversations) in zip(hours, per_hour):
            totals.add(fields)
            rows.append(
                {
                    "hour": hour_iso(hour),
                    "conversations": conversations,
                    **stats(fields, ""),
                    "outcomes": outcomes.get(hour, {"escalated": 0, "resolved": 0, "active": 0}),
                }
            )
        return {"hours": rows, **totals.as_dict()}


def _case_order(case: dict[str, Any]) -> tuple[float, str]:
    # Stream ids order cases within a shard only; across shards the case's own creation time does.
    return float(case.get("created_at") or 0.0), case["case_id"]


class _Totals:
    """Sums of rollup fields over hours, grouped by dimension."""

    def __init__(self) -> None:
        self.fields: dict[str, float] = {}

    def add(self, fields: dict[str, str]) -> None:
        for key, value in fields.items():
            self.fields[key] = self.fields.get(key, 0.0) + float(value)

    def group(self, dimension: str) -> dict[str, dict[str, float]]:
        names = {k.split(":")[1] for k in self.fields if k.startswith(f"{dimension}:")}
        return {name: stats(self.fields, f"{dimension}:{name}:") for name in sorted(names)}

    def as_dict(self) -> dict[str, Any]:
        labels = {k.split(":", 1)[1]: int(v) for k, v in self.fields.items() if k.startswith(f"{ROLLUP_LABEL}:")}
        return {
            "channels": self.group(ROLLUP_CHANNEL),
            "intents": self.group(ROLLUP_INTENT),
            "labels": labels,
            "total": stats(self.fields, ""),
        }


def stats(fields: dict[str, Any], prefix: str) -> dict[str, Any]:
    turns = int(float(fields.get(f"{prefix}{RollupField.TURNS.value}", 0)))
    negative = int(float(fields.get(f"{prefix}{RollupField.NEG_TURNS.value}", 0)))
    valence_sum = float(fields.get(f"{prefix}{RollupField.VALENCE_SUM.value}", 0.0))
    return {
        "turns": turns,
        "negative_turns": negative,
        "negative_share": round(negative / turns, 4) if turns else None,
        "mean_valence": round(valence_sum / turns, 4) if turns else None,
        "escalations": int(float(fields.get(f"{prefix}{RollupField.ESCALATIONS.value}", 0))),
    }


def hour_key(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y%m%d%H")


def hour_iso(key: str) -> str:
    return datetime.strptime(key, "%Y%m%d%H").replace(tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:00Z")


def hours_between(start: float, end: float) -> list[str]:
    first = int(start // 3600) * 3600
    return [hour_key(t) for t in range(first, int(end), 3600)]
