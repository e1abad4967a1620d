"""Toneline's Redis key layout, in one place for the state store and the dashboard.

{p}:conv:{id}:turns|seen|meta|escalations   per conversation
{p}:cust:{id}:convs|escalated|consent|corrections   per customer, across conversations
{p}:corrections                             customers with supervisors' corrections (by last correction)
{p}:active                                  conversations by last activity
{p}:events, {p}:handoffs                    streams (turns and decisions; handoff cases)
{p}:handoffs:claims                         who claimed which case
{p}:dash:session:{sha256(token)}             supervisors' dashboard sessions
{p}:handoffs:seen:{key}                     stream id of a case already written (replays write it once)
{p}:rollup:{YYYYMMDDHH}[:convs]             hourly history
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix."""

    prefix: str

    def conv(self, conversation_id: str, kind: str) -> str:
        return f"{self.prefix}:conv:{conversation_id}:{kind}"

    def cust(self, customer_id: str, kind: str) -> str:
        return f"{self.prefix}:cust:{customer_id}:{kind}"

    def cust_pattern(self, customer_id: str) -> str:
        """A SCAN pattern matching every per-customer key of `customer_id`."""
        return f"{glob_escape(self.cust(customer_id, ''))}*"

    def conv_pattern(self, conversation_id: str) -> str:
        """A SCAN pattern matching every per-conversation key of `conversation_id`."""
        return f"{glob_escape(self.conv(conversation_id, ''))}*"

    def conv_id(self, key: str) -> str:
        """The conversation id of a per-conversation key (`{p}:conv:{id}:{kind}`)."""
        return key[len(self.conv("", "")) - 1 :].rsplit(":", 1)[0]

    @property
    def corrections(self) -> str:
        return f"{self.prefix}:corrections"

    @property
    def active(self) -> str:
        return f"{self.prefix}:active"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    @property
    def handoffs(self) -> str:
        return f"{self.prefix}:handoffs"

    @property
    def claims(self) -> str:
        return f"{self.prefix}:handoffs:claims"

    def handoff_seen(self, dedupe_key: str) -> str:
        return f"{self.prefix}:handoffs:seen:{dedupe_key}"

    def nonce(self, digest: str) -> str:
        """A request-signature nonce already used (AudioHook replay protection); `digest` is its hash."""
        return f"{self.prefix}:nonce:{digest}"

    def dash_session(self, digest: str) -> str:
        """A supervisor's dashboard session; `digest` is the hash of its token (the token itself is never stored)."""
        return f"{self.prefix}:dash:session:{digest}"

    def rollup(self, hour: str) -> str:
        return f"{self.prefix}:rollup:{hour}"


def glob_escape(text: str) -> str:
    """`text` as a literal in a Redis SCAN pattern (ids may hold glob characters)."""
    return "".join(f"\\{ch}" if ch in "*?[]\\" else ch for ch in text)
