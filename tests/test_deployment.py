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


def compose_config(**env: str) -> subprocess.CompletedProcess:
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
