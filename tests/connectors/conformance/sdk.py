"""The providers' SDKs, reached through oracle.py in their own venv (scripts/sdk-env.sh)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from scripts.stack import REPO

ORACLE = Path(__file__).with_name("oracle.py")


class SdkError(RuntimeError):
    """The SDK raised (it did not accept what it was given)."""


class Sdk:
    """One oracle process; each call is one line out and one line back."""

    def __init__(self, python: Path) -> None:
        self.process = subprocess.Popen(
            [str(python), str(ORACLE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def call(self, op: str, **request: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"op": op, **request}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        if not answer["ok"]:
            raise SdkError(answer["error"])
        return answer["result"]

    def twilio_sign(
        self,
        url: str,
        params: list[tuple[str, str]] | None = None,
        *,
        secret: str,
        body: str | None = None,
        algorithm: str | None = None,
    ) -> str:
        return str(
            self.call("twilio_sign", url=url, params=params or [], body=body, secret=secret, algorithm=algorithm)
        )

    def twilio_accepts(
        self,
        url: str,
        params: list[tuple[str, str]] | str,
        signature: str,
        *,
        secret: str,
        algorithm: str | None = None,
    ) -> bool:
        body = params if isinstance(params, str) else None
        pairs = [] if isinstance(params, str) else params
        try:
            return bool(
                self.call(
                    "twilio_validate",
                    url=url,
                    params=pairs,
                    body=body,
                    signature=signature,
                    secret=secret,
                    algorithm=algorithm,
                )
            )
        except SdkError:
            return False

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(10)


def sdk_python() -> Path:
    """The SDK venv's Python (built on first use, about 40 s); skips with the reason when it cannot be built."""
    try:
        done = subprocess.run(
            [str(REPO / "scripts" / "sdk-env.sh")], capture_output=True, text=True, timeout=900, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.skip("the providers' SDK venv (scripts/sdk-env.sh) took over 15 minutes to build")
    if done.returncode != 0:
        message = f"the providers' SDK venv could not be built (scripts/sdk-env.sh): {done.stderr.strip()[-500:]}"
        if os.environ.get("TONELINE_ALLOW_SKIPS") == "1":
            pytest.skip(message)
        pytest.fail(message)
    return Path(done.stdout.strip()) / "bin" / "python"


def node_payload_hash(query: str) -> str:
    """Vonage's recipe for a GET's `payload_hash`, run in JavaScript (Node), where it is written:
    sha256(JSON.stringify(Object.fromEntries(new URLSearchParams(query))))."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (Debian package nodejs): the JavaScript reference is not available")
    script = (
        "const c=require('crypto');const q=require('fs').readFileSync(0,'utf8');"
        "process.stdout.write(c.createHash('sha256').update(JSON.stringify(Object.fromEntries(new URLSearchParams(q))))"
        ".digest('hex'))"
    )
    return subprocess.run([node, "-e", script], input=query, capture_output=True, text=True, check=True).stdout
