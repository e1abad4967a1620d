"""Typed Toneline settings, read once from YAML plus environment, failing fast.

Precedence: environment (`TONELINE_REDIS_URL`, then `REDIS_URL`; `TONELINE_PREFIX`;
`TONELINE_REDIS_CLUSTER`, `TONELINE_REDIS_REPLICA_ACKS`) over the YAML file over the
defaults here. Every error names the offending key.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from plugin.routing import RoutingConfig

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CONFIG_ENV = "TONELINE_CONFIG"
CLUSTER_ENV = "TONELINE_REDIS_CLUSTER"
REPLICA_ACKS_ENV = "TONELINE_REDIS_REPLICA_ACKS"


class SettingsError(ValueError):
    """A Toneline setting is missing, unknown or of the wrong type."""


@dataclass(frozen=True)
class RedisSettings:
    """Where Toneline keeps emotion state (may differ from Rasa's tracker store)."""

    url: str = DEFAULT_REDIS_URL
    prefix: str = "toneline"
    ttl_seconds: int = 30 * 24 * 3600
    socket_timeout: float = 0.25
    retry_after_seconds: float = 2.0
    stream_maxlen: int = 100_000  # events kept in all, over the shards' streams together
    # A Redis Cluster: `url` names any one of its nodes (plugin.redis_client picks redis.cluster.RedisCluster).
    cluster: bool = False
    # Conversations are spread over this many hash-tag shards (plugin.schema); each shard keeps its own event and
    # handoff streams, active set and rollups in one cluster slot. Changing it orphans the state already stored.
    shards: int = 16
    # Escalations and handoff cases wait up to `replica_wait_ms` for this many replicas to have them (WAIT), so a
    # master that dies right after acknowledging one does not take it along; 0 = do not wait (no replicas).
    replica_acks: int = 0
    replica_wait_ms: int = 100


@dataclass(frozen=True)
class StateSettings:
    """How much of a conversation is kept and fed to the rules."""

    max_turns: int = 200
    batch_turns: int = 20
    # Escalations and handoff cases Redis refused wait here (plugin.outbox); "" = $TONELINE_CACHE/outbox
    outbox_dir: str = ""


@dataclass(frozen=True)
class PrivacySettings:
    """What Toneline may keep beyond emotion numbers."""

    store_transcripts: bool = False
    handoff_transcript_turns: int = 10


DEFAULT_DISCLOSURE = (
    "This service uses automated emotion recognition: it reads the emotion in your words, and on calls in your"
    ' voice, to choose how to reply and when to bring in a person. Say "stop the emotion detection" at any time'
    " to turn it off."
)
OFF = "off"


@dataclass(frozen=True)
class DisclosureSettings:
    """The notice a customer gets before the first turn is analysed (EU AI Act Art. 50(3)): on by default.

    `channels` overrides the text per channel name (`rest`, `twilio`, `vonage`, `video`, ...); `off` there
    (or `enabled: false`) sends none on that channel.
    """

    enabled: bool = True
    language: str = "en"
    text: str = DEFAULT_DISCLOSURE
    channels: dict[str, str] = field(default_factory=dict)

    def for_channel(self, channel: str | None) -> str | None:
        """The notice for `channel`, or None when that channel gets none."""
        if not self.enabled:
            return None
        text = self.channels.get(channel or "", self.text)
        return None if not text.strip() or text.strip().lower() == OFF else text.strip()


@dataclass(frozen=True)
class ConsentSettings:
    """How a customer opts out of emotion analysis and back in (`plugin.consent`)."""

    opt_out_intent: str = "opt_out"
    opt_in_intent: str = "opt_in"


@dataclass(frozen=True)
class AdaptationSettings:
    """Supervisors' corrections, what they keep for adapting the models, and the adapted weights to serve.

    `retain`: keep the corrected turn's text and pooled voice features (never audio) with the correction,
    for `retention_days`; off by default. `weights_dir`: a directory written by `python -m models.adapt`
    whose weights the runtime serves instead of the shipped ones; "" (the default) is the rollback.
    """

    retain: bool = False
    retention_days: int = 90
    weights_dir: str = ""

    def text_weights(self) -> Path | None:
        """The adapted text weights to serve (None: the shipped ones); a directory without a readable manifest
        naming an existing weights file fails at start-up, naming it."""
        if not self.weights_dir:
            return None
        manifest = Path(self.weights_dir).expanduser() / "manifest.json"
        try:
            weights = manifest.parent / str(json.loads(manifest.read_text(encoding="utf-8"))["text"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SettingsError(f"'adaptation.weights_dir': no readable manifest at {manifest} ({exc})") from None
        if not weights.is_file():
            raise SettingsError(f"'adaptation.weights_dir': the manifest names {weights}, which does not exist")
        return weights


@dataclass(frozen=True)
class AnalyticsSettings:
    """The supervisor dashboard."""

    host: str = "127.0.0.1"
    port: int = 5080
    # username -> password hash from `python -m plugin.analytics hash-password`
    supervisors: dict[str, str] = field(default_factory=dict)
    session_ttl_seconds: int = 8 * 3600
    cookie_secure: bool = False
    idle_seconds: int = 1800
    max_history_hours: int = 24 * 31
    # supervisors who may erase a customer's data from the dashboard (GDPR Art. 17 requests)
    administrators: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Settings:
    """All of Toneline's runtime settings."""

    redis: RedisSettings = field(default_factory=RedisSettings)
    state: StateSettings = field(default_factory=StateSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    analytics: AnalyticsSettings = field(default_factory=AnalyticsSettings)
    disclosure: DisclosureSettings = field(default_factory=DisclosureSettings)
    consent: ConsentSettings = field(default_factory=ConsentSettings)
    adaptation: AdaptationSettings = field(default_factory=AdaptationSettings)


def _section(cls: type, data: Any, name: str) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, Mapping):
        raise SettingsError(f"settings section '{name}' must be a mapping")
    known = dataclasses.fields(cls)
    known_names = {f.name for f in known}
    unknown = sorted(set(data) - known_names)
    if unknown:
        raise SettingsError(f"unknown keys in '{name}': {unknown}; known: {sorted(known_names)}")
    values = {}
    for key, raw in data.items():
        default = getattr(cls(), key)
        caster = (lambda v: str(v).lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)
        # A string is iterable: list("alice") would quietly become five one-letter names.
        if isinstance(default, (list, dict)) and not isinstance(raw, type(default)):
            raise SettingsError(f"'{name}.{key}' must be {type(default).__name__}, got {raw!r}")
        try:
            values[key] = caster(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"'{name}.{key}' must be {type(default).__name__}, got {raw!r}") from None
    return cls(**values)


def _checked_redis(redis: RedisSettings) -> RedisSettings:
    # A brace in the prefix would become the keys' hash tag and put every key in one cluster slot (plugin.schema).
    if "{" in redis.prefix or "}" in redis.prefix:
        raise SettingsError(f"'redis.prefix' must not contain braces, got {redis.prefix!r}")
    if not 1 <= redis.shards <= 1024:
        raise SettingsError(f"'redis.shards' must be between 1 and 1024, got {redis.shards}")
    return redis


def from_mapping(data: Mapping[str, Any] | None, env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from parsed YAML and an environment mapping."""
    data = dict(data or {})
    env = os.environ if env is None else env
    unknown = sorted(set(data) - set(Settings.__dataclass_fields__))
    if unknown:
        raise SettingsError(f"unknown settings sections {unknown}")
    redis_data = dict(data.get("redis") or {})
    url = env.get("TONELINE_REDIS_URL") or env.get("REDIS_URL")
    if url:
        redis_data["url"] = url
    if env.get("TONELINE_PREFIX"):
        redis_data["prefix"] = env["TONELINE_PREFIX"]
    if env.get(CLUSTER_ENV):
        redis_data["cluster"] = env[CLUSTER_ENV]
    if env.get(REPLICA_ACKS_ENV):
        redis_data["replica_acks"] = env[REPLICA_ACKS_ENV]
    try:
        routing = RoutingConfig.from_mapping(data.get("routing"))
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return Settings(
        redis=_checked_redis(_section(RedisSettings, redis_data, "redis")),
        state=_section(StateSettings, data.get("state"), "state"),
        privacy=_section(PrivacySettings, data.get("privacy"), "privacy"),
        routing=routing,
        analytics=_section(AnalyticsSettings, data.get("analytics"), "analytics"),
        disclosure=_disclosure(data.get("disclosure")),
        consent=_section(ConsentSettings, data.get("consent"), "consent"),
        adaptation=_section(AdaptationSettings, data.get("adaptation"), "adaptation"),
    )


def _disclosure(data: Any) -> DisclosureSettings:
    """The disclosure section; per-channel texts must be strings (a typo must not silently disclose nothing)."""
    section: DisclosureSettings = _section(DisclosureSettings, data, "disclosure")
    raw = (data or {}).get("channels") if isinstance(data, Mapping) else None
    if raw is not None and not isinstance(raw, Mapping):
        raise SettingsError("'disclosure.channels' must be a mapping of channel name to text")
    for channel, text in (raw or {}).items():
        if not isinstance(text, str):
            raise SettingsError(f"'disclosure.channels.{channel}' must be text (or 'off'), got {text!r}")
    return section


def load_beside(path: str) -> Settings:
    """Settings for a channel: `path` when given (credentials.yml `config`, `$TONELINE_CONFIG`), else the
    toneline.yml in Rasa's working directory if there is one, else the defaults."""
    chosen = Path(path) if path else Path("toneline.yml")
    return load(chosen if chosen.is_file() else None, env={k: v for k, v in os.environ.items() if k != CONFIG_ENV})


def load_for_tools(path: str = "") -> Settings:
    """Settings for command-line tools run from the repository: `path`, else `$TONELINE_CONFIG`, else the demo
    bot's rasa_project/toneline.yml when it is there, else the defaults (the environment overrides apply)."""
    demo = Path("rasa_project") / "toneline.yml"
    chosen = path or os.environ.get(CONFIG_ENV) or (str(demo) if demo.is_file() else "")
    return load(chosen or None)


def load(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load settings from `path` (or `$TONELINE_CONFIG`); no file means defaults."""
    env = os.environ if env is None else env
    chosen = path or env.get(CONFIG_ENV)
    if not chosen:
        return from_mapping({}, env)
    file = Path(chosen)
    if not file.is_file():
        raise SettingsError(f"Toneline config file not found: {file.resolve()}")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{file}: not valid YAML: {exc}") from None
    return from_mapping(data, env)
