from pathlib import Path

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


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"redis": {"urll": "x"}}, "urll"),
        ({"redis": {"ttl_seconds": "soon"}}, "redis.ttl_seconds"),
        ({"routing": {"cooldown": 1}}, "cooldown"),
        ({"reddis": {}}, "reddis"),
        ({"state": [1]}, "state"),
    ],
)
def test_bad_settings_fail_fast_naming_the_key(data: dict, key: str) -> None:
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
