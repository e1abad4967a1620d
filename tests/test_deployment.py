"""Deployment files stay valid."""

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
    pytest.skip("needs the docker compose client (`docker compose` or `docker-compose`)")


def test_docker_compose_config_is_valid() -> None:
    result = subprocess.run([*compose_command(), "config"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"redis", "rasa", "actions", "dashboard"} <= set(services)


def test_rasa_endpoints_take_everything_from_the_environment() -> None:
    text = (REPO / "rasa_project" / "endpoints.yml").read_text()
    # Rasa expands ${VAR} only in unquoted scalars.
    assert '"${' not in text and "${TONELINE_TRACKER_REDIS_HOST}" in text
