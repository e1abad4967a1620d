from pathlib import Path
from typing import Any

import pytest

from plugin import settings

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_config_loads() -> None:
    loaded = settings.load(REPO / "rasa_project" / "toneline.yml", env={})
    assert loaded.redis.prefix == "toneline" and loaded.routing.sustained_turns == 3
    assert loaded.privacy.store_transcripts is False


def test_environment_overrides_the_file() -> None:
    loaded = settings.load(
        REPO / "rasa_project" / "toneline.yml", env={"REDIS_URL": "redis://a:1/2", "TONELINE_PREFIX": "p"}
    )
    assert loaded.redis.url == "redis://a:1/2" and loaded.redis.prefix == "p"
    both = settings.from_mapping({}, env={"REDIS_URL": "redis://a/0", "TONELINE_REDIS_URL": "redis://b/0"})
    assert both.redis.url == "redis://b/0"


def test_a_redis_cluster_is_chosen_in_the_file_or_the_environment() -> None:
    assert settings.from_mapping({}, env={}).redis.cluster is False
    assert settings.from_mapping({"redis": {"cluster": True}}, env={}).redis.cluster is True
    from_env = settings.from_mapping({}, env={"TONELINE_REDIS_CLUSTER": "1", "TONELINE_REDIS_URL": "redis://n3:7102/0"})
    assert from_env.redis.cluster is True and from_env.redis.url == "redis://n3:7102/0"
    assert (
        settings.from_mapping({"redis": {"cluster": True}}, env={"TONELINE_REDIS_CLUSTER": "0"}).redis.cluster is False
    )
    assert settings.from_mapping({}, env={"TONELINE_REDIS_REPLICA_ACKS": "1"}).redis.replica_acks == 1


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"redis": {"urll": "x"}}, "urll"),
        ({"redis": {"ttl_seconds": "soon"}}, "redis.ttl_seconds"),
        ({"routing": {"cooldown": 1}}, "cooldown"),
        ({"reddis": {}}, "reddis"),
        ({"state": [1]}, "state"),
        ({"redis": {"prefix": "a{b}"}}, "redis.prefix"),
        ({"redis": {"shards": 0}}, "redis.shards"),
    ],
)
def test_bad_settings_fail_fast_naming_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(settings.SettingsError, match=key):
        settings.from_mapping(data, env={})


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(settings.SettingsError, match="not found"):
        settings.load(tmp_path / "nope.yml", env={})
    broken = tmp_path / "broken.yml"
    broken.write_text("redis: [unclosed")
    with pytest.raises(settings.SettingsError, match="not valid YAML"):
        settings.load(broken, env={})
    assert settings.load(None, env={}).redis.url == settings.DEFAULT_REDIS_URL
