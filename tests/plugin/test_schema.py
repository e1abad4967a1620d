"""The key layout: every multi-key write of Toneline touches one Redis Cluster slot."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from plugin.schema import ConvKey, CustKey, Keys

KEYS = Keys("toneline", 16)


def slot(key: str) -> int:
    return int(key_slot(key.encode()))


@pytest.mark.parametrize("conversation", ["c-1", "+15550123", "a}b{c", "", "é" * 40])
def test_a_conversation_s_keys_share_one_slot_with_its_shard_s_streams_and_active_set(conversation: str) -> None:
    shard = KEYS.shard_of(conversation)
    keys = [
        KEYS.conv(conversation, kind)
        for kind in (ConvKey.TURNS, ConvKey.SEEN, ConvKey.META, ConvKey.ESCALATIONS, ConvKey.RETAINED)
    ]
    keys += [KEYS.active(shard), KEYS.events(shard), KEYS.handoffs(shard), KEYS.claims(shard)]
    keys += [
        KEYS.handoff_seen(shard, "k"),
        KEYS.rollup(shard, "2026120719"),
        KEYS.rollup(shard, "2026120719") + ":convs",
    ]
    assert len({slot(key) for key in keys}) == 1


@pytest.mark.parametrize("customer", ["cust-1", "", "}", "{x}"])
def test_a_customer_s_keys_share_one_slot(customer: str) -> None:
    kinds = (CustKey.CONVS, CustKey.ESCALATED, CustKey.CONSENT, CustKey.CORRECTIONS)
    assert len({slot(KEYS.cust(customer, kind)) for kind in kinds}) == 1


def test_shards_are_stable_and_spread_over_many_slots() -> None:
    assert KEYS.shard_of("c-1") == Keys("other-prefix", 16).shard_of("c-1"), "crc32, not Python's salted hash"
    assert len({KEYS.shard_of(f"c-{i}") for i in range(1000)}) == 16
    assert len({slot(KEYS.events(shard)) for shard in KEYS.all_shards()}) == 16


def test_case_ids_name_their_shard() -> None:
    case_id = Keys.case_id(7, "1700000000000-3")
    assert case_id == "s07-1700000000000-3" and KEYS.parse_case_id(case_id) == (7, "1700000000000-3")
    for bad in ("1700000000000-3", "s16-1-0", "s01-x-0", "s01-1-0; DROP", ""):
        assert KEYS.parse_case_id(bad) is None


@pytest.mark.parametrize("conversation", ["c-1", "a:b:c", "x}:conv:y", "*[?]"])
def test_erasure_reads_a_conversation_id_back_from_any_of_its_keys(conversation: str) -> None:
    for kind in (ConvKey.META, ConvKey.RETAINED):
        assert KEYS.conv_id(KEYS.conv(conversation, kind)) == conversation
    assert Keys("a}b", 3).conv_id(Keys("a}b", 3).conv(conversation, ConvKey.META)) == conversation


def test_scan_patterns_take_ids_literally_and_stay_under_their_tags() -> None:
    assert KEYS.cust_pattern("a*") == "toneline:cust:{c:a\\*}:*"
    assert KEYS.conv_pattern("c-1") == KEYS.conv_stem("c-1") + "*"
    assert KEYS.meta_pattern() == "toneline:{s*}:conv:*:meta"


def test_the_write_scripts_name_every_field_of_the_schema_and_nothing_unfilled() -> None:
    """The scripts are where fields are written: every meta, event, handoff and consent field is one of theirs."""
    from plugin import schema

    for script in (schema.RECORD_LUA, schema.HANDOFF_LUA, schema.CONSENT_LUA):
        assert "$" not in script, "a placeholder left unfilled"
    for fields, script in (
        (schema.MetaField, schema.RECORD_LUA),
        (schema.EventField, schema.RECORD_LUA),
        (schema.HandoffField, schema.HANDOFF_LUA),
        (schema.ConsentField, schema.CONSENT_LUA),
    ):
        assert all(f"'{field.value}'" in script for field in fields), fields


def test_kinds_are_typed_and_a_wrong_kind_fails_by_name() -> None:
    from plugin.schema import ConvKey, CustKey

    assert KEYS.conv("c-1", ConvKey.META) == KEYS.conv("c-1", "meta")  # type: ignore[arg-type]
    assert KEYS.cust("u-1", CustKey.CONSENT).endswith("}:consent")
    with pytest.raises(ValueError, match="metadata"):
        KEYS.conv("c-1", "metadata")  # type: ignore[arg-type]
