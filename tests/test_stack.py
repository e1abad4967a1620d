"""`make demo`'s environment (the documented Redis split, secrets generated unless given) and its Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

import pytest

from scripts.redis_cluster import LocalRedisCluster
from scripts.stack import (
    CACHE,
    RASA_TOKEN_ENV,
    REPO,
    RedisEndpoint,
    StackError,
    api_url,
    check_cluster_choice,
    ensure_model,
    free_port,
    rasa_command,
    redact,
    stack_env,
)

TRACKER = RedisEndpoint.parse("redis://:pw@10.0.0.1:6379/2")


def test_toneline_state_follows_toneline_redis_url_and_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TONELINE_REDIS_URL", "redis://10.0.0.9:6380/0")
    monkeypatch.setenv("TONELINE_PREFIX", "acme")
    env = stack_env(TRACKER, action_port=5055)
    assert env["TONELINE_REDIS_URL"] == "redis://10.0.0.9:6380/0" and env["TONELINE_PREFIX"] == "acme"
    assert env["TONELINE_TRACKER_REDIS_HOST"] == "10.0.0.1" and env["TONELINE_TRACKER_REDIS_DB"] == "2"
    explicit = stack_env(TRACKER, action_port=5055, toneline_redis_url="redis://x:1/0", toneline_prefix="t")
    assert (explicit["TONELINE_REDIS_URL"], explicit["TONELINE_PREFIX"]) == ("redis://x:1/0", "t")


def test_without_toneline_redis_url_state_shares_rasas_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TONELINE_REDIS_URL", raising=False)
    monkeypatch.delenv("TONELINE_PREFIX", raising=False)
    env = stack_env(TRACKER, action_port=5055)
    assert env["TONELINE_REDIS_URL"] == TRACKER.url and env["TONELINE_PREFIX"] == "toneline"


def test_secrets_are_generated_per_run_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TONELINE_RASA_TOKEN", raising=False)
    monkeypatch.delenv("TONELINE_ACTION_SECRET", raising=False)
    first, second = stack_env(TRACKER, action_port=1), stack_env(TRACKER, action_port=1)
    for name in ("TONELINE_RASA_TOKEN", "TONELINE_ACTION_SECRET"):
        assert len(first[name]) >= 24 and first[name] != second[name]
    monkeypatch.setenv("TONELINE_RASA_TOKEN", "chosen-token")
    assert stack_env(TRACKER, action_port=1)["TONELINE_RASA_TOKEN"] == "chosen-token"


def test_rasa_reads_a_token_that_starts_with_a_dash() -> None:
    # token_urlsafe starts with "-" one time in 64: passed as a separate argument, Rasa refused to start.
    from rasa.__main__ import create_argument_parser

    token = "-Yk3" + uuid.uuid4().hex
    command = rasa_command({RASA_TOKEN_ENV: token}, Path("model.tar.gz"), 5005, "127.0.0.1")
    assert command[1:4] == ["-m", "rasa", "run"]
    args = create_argument_parser().parse_args(command[3:])
    assert args.auth_token == token and args.enable_api and args.port == 5005


def test_urls_for_people_and_tools() -> None:
    assert redact(TRACKER.url) == "redis://:***@10.0.0.1:6379/2"
    assert api_url("http://h:5005", "/status", "a b") == "http://h:5005/status?token=a+b"


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.e2e
def test_the_demo_refuses_a_redis_cluster_it_cannot_reach_and_takes_one_it_can(
    redis_cluster: LocalRedisCluster, single_redis: RedisEndpoint
) -> None:
    check_cluster_choice({})  # no cluster asked for: nothing to check
    with pytest.raises(StackError, match="needs TONELINE_REDIS_URL"):
        check_cluster_choice({"TONELINE_REDIS_CLUSTER": "1"})
    with pytest.raises(StackError, match="not a Redis Cluster that answers"):
        check_cluster_choice(
            {"TONELINE_REDIS_CLUSTER": "1", "TONELINE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
        )
    with pytest.raises(StackError, match="not a Redis Cluster"):  # a single Redis is not a cluster
        check_cluster_choice({"TONELINE_REDIS_CLUSTER": "1", "TONELINE_REDIS_URL": single_redis.url})
    check_cluster_choice({"TONELINE_REDIS_CLUSTER": "1", "TONELINE_REDIS_URL": redis_cluster.url})


@pytest.mark.parametrize("inherited", [signal.SIG_DFL, signal.SIG_IGN], ids=["foreground", "background-job"])
def test_ctrl_c_on_the_demo_stops_every_process_and_exits_0(
    redis_endpoint: RedisEndpoint, tmp_path: Path, inherited: signal.Handlers
) -> None:
    """What a terminal does on Ctrl-C: SIGINT to the whole process group, children included. Also when the demo
    was started as a shell's background job (`make demo &` in a script), which starts it with SIGINT ignored:
    the servers it starts still stop on SIGINT, and the demo must stop with them, not report them dead."""
    ensure_model(quiet=True)
    cache = tmp_path / "cache"  # the demo's logs and token file go here, not to the user's cache
    cache.mkdir()
    (cache / "rasa-models").symlink_to(CACHE / "rasa-models")  # the trained demo model, not a retrain
    env = dict(
        os.environ,
        TONELINE_CACHE=str(cache),
        REDIS_URL=redis_endpoint.url,
        TONELINE_PREFIX=f"toneline-demo-test-{uuid.uuid4().hex[:8]}",
        TONELINE_DASHBOARD_PASSWORD="demo-test",
    )
    ports = [str(free_port()) for _ in range(3)]
    args = ["--port", ports[0], "--action-port", ports[1], "--dashboard-port", ports[2]]
    out = tmp_path / "demo.out"
    with out.open("w") as sink:
        # A session of its own, like a terminal's foreground process group.
        demo = subprocess.Popen(
            [sys.executable, "-m", "scripts.stack", "demo", *args],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_ignore_sigint if inherited == signal.SIG_IGN else None,
        )
        try:
            _wait_for(lambda: "Press Ctrl-C to stop." in out.read_text() or demo.poll() is not None, 300)
            assert demo.poll() is None, out.read_text()
            os.killpg(demo.pid, signal.SIGINT)
            code = demo.wait(timeout=60)
            _wait_for(lambda: not _group_alive(demo.pid), 10)  # nothing of the stack is left running
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(demo.pid, signal.SIGKILL)
    text = out.read_text()
    assert code == 0, text
    assert not [line for line in text.splitlines() if line.startswith("error:")], text


def _wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s"
        time.sleep(0.5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
