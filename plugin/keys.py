"""Toneline's Redis key layout, in one place for the state store and the dashboard.

{p}:conv:{id}:turns|seen|meta|escalations   per conversation
{p}:cust:{id}:convs|escalated               per customer, across conversations
{p}:active                                  conversations by last activity
{p}:events, {p}:handoffs                    streams (turns and decisions; handoff cases)
{p}:handoffs:claims                         who claimed which case
{p}:handoffs:seen:{key}                     stream id of a case already written (replays write it once)
{p}:dash:session:{sha256(token)}             supervisors' dashboard sessions
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
