"""Erasure of one customer's data (GDPR Art. 17): every Toneline key, stream entry, correction and outbox record.

    python -m plugin.state erase CUSTOMER_ID [--config toneline.yml]

(and the dashboard's administrator action) deletes, under the configured prefix:
  - the customer's keys (`cust:{c:id}:*`: conversations, escalations, consent, corrections),
  - each of their conversations' keys (`{sNN}:conv:{c}:*`, retained material included) and its place
    on its shard's live floor (`{sNN}:active`), the conversations found both through the customer's
    index and by the customer id in each conversation's meta, scanned in every shard (on a Redis
    Cluster on every master; a conversation recorded while the index had expired is not missed),
  - their entries on every shard's events and handoff streams, the claims and dedupe marks of those cases,
  - the customer from the corrections index,
  - writes held on this host's disk for Redis (`plugin.outbox`) that name them.
It reports what it removed. Hourly rollups keep counts only (and a HyperLogLog of conversation
ids, from which no id can be read back), so they stay. Rasa's tracker is the deployer's to erase:
the report lists the conversation ids (docs/compliance.md says how).
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import redis
from redis.cluster import RedisCluster

from plugin import settings as toneline_settings
from plugin.outbox import DurableOutbox, outbox_dir
from plugin.schema import CustKey, EventField, HandoffField, Keys, MetaField, handoff_case
from plugin.state import StateStore

STREAM_BATCH = 1000


@dataclass
class ErasureReport:
    """What an erasure removed."""

    customer_id: str
    conversations: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    stream_entries: dict[str, int] = field(default_factory=dict)
    claims: int = 0
    outbox_records: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "conversations": self.conversations,
            "keys": self.keys,
            "stream_entries": self.stream_entries,
            "claims": self.claims,
            "outbox_records": self.outbox_records,
        }

    def lines(self) -> list[str]:
        """The report for a person: one line per kind of thing removed."""
        return [
            f"customer {self.customer_id}: {len(self.conversations)} conversation(s)",
            *(f"  deleted key {key}" for key in self.keys),
            *(
                f"  deleted {n} entr{'y' if n == 1 else 'ies'} from stream {name}"
                for name, n in self.stream_entries.items()
            ),
            f"  deleted {self.claims} handoff claim(s)",
            f"  deleted {self.outbox_records} record(s) held in the outbox on this host",
            "  Rasa's tracker is not Toneline's: delete the trackers of these conversation ids in your tracker store"
            " (docs/compliance.md): " + (", ".join(self.conversations) or "none"),
        ]


class Eraser:
    """Removes one customer's data from Toneline's Redis and this host's outbox."""

    def __init__(self, store: StateStore, outbox: Path | None = None) -> None:
        self.store = store
        self.client = store.client
        self.keys: Keys = store.keys
        self.outbox = outbox if outbox is not None else outbox_dir(store.state_settings.outbox_dir)

    def erase(self, customer_id: str) -> ErasureReport:
        report = ErasureReport(customer_id)
        report.conversations = sorted(self.conversations_of(customer_id))
        names = set(report.conversations) | {customer_id}
        # A customer's entries may be in any shard's streams (one per conversation, and a case names its
        # customer): every shard is read. Each step touches one key at a time, so it runs on a cluster as is.
        for shard in self.keys.all_shards():
            events = self.keys.events(shard)
            dropped = self._drop_entries(events, names)
            if dropped:
                report.stream_entries[events] = dropped
            cases, claims = self._drop_cases(shard, names)
            if cases:
                report.stream_entries[self.keys.handoffs(shard)] = cases
            report.claims += claims
        report.keys = self._delete_keys(customer_id, report.conversations)
        for conv in report.conversations:
            self.client.zrem(self.keys.active(self.keys.shard_of(conv)), conv)
        self.client.zrem(self.keys.corrections, customer_id)
        report.outbox_records = self._forget_held(names)
        return report

    def conversations_of(self, customer_id: str) -> set[str]:
        """The customer's conversations: their index, and every conversation whose meta names them (every shard,
        on a cluster every master)."""
        found = set(self.client.zrange(self.keys.cust(customer_id, CustKey.CONVS), 0, -1))
        for key in scan(self.client, self.keys.meta_pattern()):
            if self.client.hget(key, MetaField.CUSTOMER_ID.value) == customer_id:
                found.add(self.keys.conv_id(key))
        return found

    def _delete_keys(self, customer_id: str, conversations: list[str]) -> list[str]:
        keys = list(scan(self.client, self.keys.cust_pattern(customer_id)))
        for conv in conversations:
            keys += list(scan(self.client, self.keys.conv_pattern(conv)))
        keys = sorted(set(keys))
        for key in keys:  # one at a time: the customer's and each conversation's keys are in different slots
            self.client.delete(key)
        return keys

    def _drop_entries(self, stream: str, names: set[str]) -> int:
        doomed = [entry_id for entry_id, fields in _entries(self.client, stream) if _names(fields, names, case=False)]
        for chunk in _chunks(doomed, 500):
            self.client.xdel(stream, *chunk)
        return len(doomed)

    def _drop_cases(self, shard: int, names: set[str]) -> tuple[int, int]:
        """Handoff cases of the customer in one shard, with their claims and dedupe marks (all in its slot)."""
        stream, claims_key = self.keys.handoffs(shard), self.keys.claims(shard)
        doomed: list[tuple[str, dict[str, Any]]] = []
        for entry_id, fields in _entries(self.client, stream):
            if _names(fields, names, case=True):
                doomed.append((entry_id, _case(fields)))
        for chunk in _chunks([entry_id for entry_id, _ in doomed], 500):
            self.client.xdel(stream, *chunk)
        for case in (case for _, case in doomed if case.get("dedupe_key")):
            self.client.delete(self.keys.handoff_seen(shard, str(case["dedupe_key"])))
        claims = int(self.client.hdel(claims_key, *[e for e, _ in doomed])) if doomed else 0
        return len(doomed), claims

    def _forget_held(self, names: set[str]) -> int:
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", self.keys.prefix)
        held = 0
        for path in sorted(self.outbox.glob(f"{stem}.*.jsonl")) if self.outbox.is_dir() else []:
            outbox = DurableOutbox(path, self.store.apply, self.store.settings.retry_after_seconds)
            held += outbox.forget(lambda entry: _mentions(entry, names, self.keys))
        return held


def scan(client: Any, pattern: str) -> Iterator[str]:
    """Every key matching `pattern`: on a Redis Cluster, every master's keys (each holds only its own slots)."""
    if isinstance(client, RedisCluster):
        for node in client.get_primaries():
            yield from client.scan_iter(match=pattern, count=1000, target_nodes=node)
    else:
        yield from client.scan_iter(match=pattern, count=1000)


def _entries(client: Any, stream: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Every entry of `stream`, oldest first, in batches."""
    start = "-"
    while True:
        batch = client.xrange(stream, min=start, max="+", count=STREAM_BATCH)
        yield from batch
        if len(batch) < STREAM_BATCH:
            return
        start = "(" + batch[-1][0]


def _case(fields: dict[str, str]) -> dict[str, Any]:
    return handoff_case(fields)


def _names(fields: dict[str, str], names: set[str], case: bool) -> bool:
    """Whether a stream entry belongs to one of `names` (the customer id and their conversation ids)."""
    # An event names its customer and conversation; a handoff entry its conversation (and its case the customer).
    if fields.get(EventField.CUSTOMER_ID.value) in names or fields.get(HandoffField.CONVERSATION_ID.value) in names:
        return True
    return case and _case(fields).get("customer_id") in names


def _mentions(entry: Any, names: set[str], keys: Keys) -> bool:
    """Whether a held outbox entry names the customer or one of their conversations, anywhere inside it."""
    marks = {keys.cust_stem(n) for n in names} | {keys.conv_stem(n) for n in names}
    return any(s in names or any(s.startswith(m) for m in marks) for s in _strings(entry))


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, JSON text inside strings included (a case is held as JSON in a string)."""
    if isinstance(value, str):
        yield value
        if value[:1] in ("{", "["):
            with contextlib.suppress(ValueError):
                yield from _strings(json.loads(value))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m plugin.state erase CUSTOMER_ID` (or `python -m plugin.erasure erase ...`): erase a customer's data
    and print what was removed."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m plugin.state", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    erase = commands.add_parser("erase", help="delete every Toneline key, stream entry, correction and outbox record")
    erase.add_argument("customer_id")
    erase.add_argument("--config", default="", help="toneline.yml (default: $TONELINE_CONFIG, else rasa_project/)")
    erase.add_argument("--json", action="store_true", help="print the report as one JSON object")
    args = parser.parse_args(argv)
    settings = toneline_settings.load_for_tools(args.config)
    store = StateStore(settings.redis, settings.state)
    try:
        report = Eraser(store).erase(args.customer_id)
    except redis.RedisError as exc:
        print(f"erasure failed, nothing may have been removed yet: Redis at {settings.redis.url}: {exc}")
        return 1
    print(json.dumps(report.to_dict()) if args.json else "\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
