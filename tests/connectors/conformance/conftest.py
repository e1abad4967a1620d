"""Fixtures of the provider conformance tests: the providers' SDKs and Toneline's doors on a loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from scripts.stack import REPO, free_port, stop
from tests.connectors.conformance.sdk import Sdk, sdk_python

ARTIFACTS = REPO / "test-artifacts"
AUTH_TOKEN = "12345678901234567890123456789012"  # shaped like a Twilio auth token
SHARED_KEY_SID, SHARED_KEY_SECRET = "KS" + "a" * 32, "shared-key-secret-0123456789abcdef"
VONAGE_SECRET = "vonage-signature-secret-0123456789"


@pytest.fixture(scope="session")
def sdk() -> Iterator[Sdk]:
    oracle = Sdk(sdk_python())
    yield oracle
    oracle.close()


@dataclass
class Doors:
    """A running door server: `url` is where it listens (loopback, plain HTTP)."""

    url: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Each door server imports Rasa (about 1 GB resident): stop it as soon as its tests are done."""
        stop(self.process)


DoorsFactory = Callable[..., Doors]


@pytest.fixture(scope="module")
def doors() -> Iterator[DoorsFactory]:
    """Start door servers with extra environment (public URLs, SANIC_PROXIES_COUNT, a SharedKey), one per
    distinct environment (reused by the module's tests that ask for the same one); all stopped after the module."""
    started: list[Doors] = []
    running: dict[frozenset[tuple[str, str]], Doors] = {}

    def start(port: int | None = None, **env: str) -> Doors:
        key = frozenset(env.items())
        if port is None and key in running:
            return running[key]
        door = _start(port or free_port(), env)
        if port is None:
            running[key] = door
        return door

    def _start(port: int, env: dict[str, str]) -> Doors:
        environment = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "TWILIO_ACCOUNT_SID": "AC" + "7" * 32,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "VONAGE_SIGNATURE_SECRET": VONAGE_SECRET,
            "TONELINE_TWILIO_API_BASE": "http://127.0.0.1:9",  # never called: no call is transferred here
            **env,
        }
        ARTIFACTS.mkdir(exist_ok=True)
        log_path = ARTIFACTS / f"doors-{port}.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.connectors.conformance.doors", str(port)],
                cwd=REPO,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        door = Doors(f"http://127.0.0.1:{port}", port, log_path, process)
        started.append(door)
        wait_healthy(f"{door.url}/webhooks/toneline_twilio/health", process, log_path)
        return door

    yield start
    for door in started:
        door.stop()


def wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path, seconds: float = 60) -> None:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the door server exited: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the door server did not answer in {seconds} s: {log_path.read_text()[-2000:]}")
