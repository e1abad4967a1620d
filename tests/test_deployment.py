"""Deployment files stay valid."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def compose_command() -> list[str]:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("needs the docker compose client (`docker compose` or `docker-compose`; .ci/run installs it)")


SECRETS = {"TONELINE_RASA_TOKEN": "t" * 24, "TONELINE_ACTION_SECRET": "s" * 24}


def compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run([*compose_command(), "config"], cwd=REPO, capture_output=True, text=True, env=clean | env)


def test_docker_compose_config_is_valid() -> None:
    result = compose_config(**SECRETS)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"redis", "rasa", "actions", "dashboard"} <= set(services)


def test_compose_publishes_neither_the_action_server_nor_redis_and_needs_its_secrets() -> None:
    config = yaml.safe_load(compose_config(**SECRETS).stdout)
    services, networks = config["services"], config["networks"]
    for name in ("actions", "redis"):
        assert not services[name].get("ports"), f"{name} must not publish a port"
        assert set(services[name]["networks"]) == {"backend"} and networks["backend"]["internal"] is True
    for name in ("rasa", "dashboard"):
        assert all(str(p).startswith("127.0.0.1:") for p in services[name]["ports"]), "public only behind a proxy"
    assert "--auth-token" in " ".join(services["rasa"]["command"])
    assert "plugin.action_server" in services["actions"]["command"]
    for missing in SECRETS:
        result = compose_config(**{k: v for k, v in SECRETS.items() if k != missing})
        assert result.returncode != 0 and missing in result.stderr, "no default secret that works"


def test_rasa_endpoints_take_everything_from_the_environment() -> None:
    text = (REPO / "rasa_project" / "endpoints.yml").read_text()
    # Rasa expands ${VAR} only in unquoted scalars.
    assert '"${' not in text and "${TONELINE_TRACKER_REDIS_HOST}" in text


def test_the_scale_profile_runs_replicas_behind_the_proxy_on_postgres_and_a_redis_cluster() -> None:
    result = subprocess.run(
        [*compose_command(), "--profile", "scale", "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k not in SECRETS} | SECRETS | {"TONELINE_PG_PASSWORD": "p" * 12},
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"rasa-1", "rasa-2", "actions-1", "actions-2", "dashboard-1", "dashboard-2", "proxy"} <= set(services)
    assert {"postgres", "lock-redis", "redis-cluster-init"} | {f"redis-node-{i}" for i in range(1, 7)} <= set(services)
    published = {name for name, service in services.items() if service.get("ports")}
    assert published & {"proxy", "rasa-1", "rasa-2", "dashboard-1", "postgres", "lock-redis"} == {"proxy"}
    for name in ("rasa-1", "rasa-2"):
        assert "endpoints.scale.yml" in " ".join(services[name]["command"])
        env = services[name]["environment"]
        assert env["TONELINE_REDIS_CLUSTER"] == "1" and env["TONELINE_TRACKER_REDIS_HOST"] == "lock-redis"
    # compose v1 prints a volume as "source:target:mode", v2 as a mapping
    assert "deploy/proxy/haproxy-scale.cfg" in str(services["proxy"]["volumes"][0])


def test_the_scaled_endpoints_keep_trackers_in_postgres_and_locks_on_one_redis() -> None:
    endpoints = yaml.safe_load((REPO / "rasa_project" / "endpoints.scale.yml").read_text())
    tracker_store = endpoints["tracker_store"]
    assert tracker_store["type"] == "plugin.tracker_store.SQLTrackerStore" and tracker_store["dialect"] == "postgresql"
    assert endpoints["lock_store"]["type"] == "plugin.lock_store.AtomicRedisLockStore"
    assert '"${' not in (REPO / "rasa_project" / "endpoints.scale.yml").read_text()
