"""Scale-out on the real engines: two Rasa replicas and two dashboards behind HAProxy, trackers in PostgreSQL,
Rasa's locks on one Redis, Toneline's state on a Redis Cluster; then a replica and a Redis master killed.

Everything is started here (a throwaway PostgreSQL, a 3+3-node Redis Cluster of its own, HAProxy with
deploy/proxy/haproxy-scale.cfg as it is) and stopped at the end. The demo model is the suite's
(scripts.stack.ensure_model, trained once per input change). Tests run in file order: the drills that
kill something come last.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import pytest
import requests

from plugin.schema import ConvKey
from plugin.settings import RedisSettings
from plugin.state import StateStore
from scripts.postgres import LocalPostgres, pg_binary
from scripts.redis_cluster import LocalRedisCluster
from scripts.stack import (
    REPO,
    RedisEndpoint,
    StackError,
    api_url,
    ensure_model,
    free_port,
    stack_env,
    start_actions,
    start_dashboard,
    start_rasa,
    stop,
)
from tests.e2e.conftest import ARTIFACTS
from tests.e2e.test_chat_conversations import ANGRIER as ANGRY
from tests.e2e.test_chat_conversations import HANDOFF_MARK

pytestmark = pytest.mark.e2e

HAPROXY_CONFIG = REPO / "deploy" / "proxy" / "haproxy-scale.cfg"


def _needs(*binaries: str) -> None:
    missing = [b for b in binaries if not (shutil.which(b) or shutil.which(b, path="/usr/sbin") or pg_binary(b))]
    if missing:
        reason = (
            f"needs {', '.join(missing)} (Debian packages haproxy, postgresql, redis-server; scripts/system-deps.sh)"
        )
        if os.environ.get("TONELINE_ALLOW_SKIPS") == "1":
            pytest.skip(reason)
        pytest.fail(reason)


@dataclass
class Replica:
    """One Rasa process with its own action server."""

    name: str
    port: int
    rasa: subprocess.Popen[bytes] | None = None
    actions: subprocess.Popen[bytes] | None = None


@dataclass
class Scale:
    """The running deployment, as a client sees it through the proxy."""

    rasa_url: str
    dashboard_url: str
    env: dict[str, str]
    cluster: LocalRedisCluster
    postgres: LocalPostgres
    replicas: list[Replica]
    store: StateStore
    password: str
    served_by: list[str] = field(default_factory=list)

    def say(self, sender: str, text: str, url: str | None = None) -> list[str]:
        """One REST turn (through the proxy unless `url` names a replica); the bot's texts."""
        response = requests.post(
            f"{url or self.rasa_url}/webhooks/rest/webhook", json={"sender": sender, "message": text}, timeout=120
        )
        response.raise_for_status()
        self.served_by.append(response.headers.get("X-Toneline-Replica", "direct"))
        return [m.get("text", "") for m in response.json()]

    def tracker(self, sender: str) -> dict[str, Any]:
        response = requests.get(
            api_url(self.rasa_url, f"/conversations/{sender}/tracker", self.env["TONELINE_RASA_TOKEN"])
        )
        response.raise_for_status()
        tracker: dict[str, Any] = response.json()
        return tracker

    def user_message_ids(self, sender: str) -> list[str]:
        return [e["message_id"] for e in self.tracker(sender)["events"] if e["event"] == "user"]

    def cases(self, sender: str) -> list[dict[str, Any]]:
        return [case for _, case in self.store.handoff_cases() if case["conversation_id"] == sender]


def _haproxy(env: dict[str, str], log: IO[str]) -> subprocess.Popen[bytes]:
    """HAProxy running deploy/proxy/haproxy-scale.cfg unchanged; the addresses come from `env`."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    return subprocess.Popen([binary, "-db", "-f", str(HAPROXY_CONFIG)], env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (requests.RequestException, OSError, StackError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def _both_up(url: str, path: str) -> bool:
    """Two requests through the proxy answered by both of its servers."""
    seen = {requests.get(url + path, timeout=5).headers.get("X-Toneline-Replica") for _ in range(4)}
    return len(seen) == 2


@pytest.fixture(scope="module")
def scale(single_redis: RedisEndpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scale]:
    _needs("haproxy", "redis-server", "redis-cli", "initdb", "pg_ctl")
    model = ensure_model(quiet=True)
    base = Path(tempfile.mkdtemp(prefix="toneline-scale-"))
    base.chmod(0o755)
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / "e2e-scale.log").open("w")
    cluster = LocalRedisCluster.start(tmp_path_factory.mktemp("scale-cluster"))
    postgres = LocalPostgres.start_new(base / "pg")
    prefix, password = f"toneline-scale-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(9)
    replicas = [Replica(f"rasa{i}", free_port()) for i in (1, 2)]
    procs: list[subprocess.Popen[bytes] | None] = []
    try:
        envs = [_replica_env(single_redis, cluster, postgres, prefix, password, base) for _ in replicas]
        for replica, env in zip(replicas, envs):
            replica.actions = start_actions(env, _action_port(env), log)
        with ThreadPoolExecutor(2) as pool:  # Rasa takes long to start: both at once
            started = [
                pool.submit(start_rasa, env, model, r.port, log, "127.0.0.1", "endpoints.scale.yml")
                for r, env in zip(replicas, envs)
            ]
            for replica, future in zip(replicas, started):
                replica.rasa = future.result()
        dashboards = [free_port(), free_port()]
        procs += [start_dashboard(envs[0], port, log) for port in dashboards]
        rasa_port, dash_port = free_port(), free_port()
        proxy_env = {
            **os.environ,
            "TONELINE_HAPROXY_ADMIN": str(base / "haproxy.sock"),
            "TONELINE_PROXY_RASA_BIND": f"127.0.0.1:{rasa_port}",
            "TONELINE_PROXY_DASHBOARD_BIND": f"127.0.0.1:{dash_port}",
            "TONELINE_RASA1": f"127.0.0.1:{replicas[0].port}",
            "TONELINE_RASA2": f"127.0.0.1:{replicas[1].port}",
            "TONELINE_DASHBOARD1": f"127.0.0.1:{dashboards[0]}",
            "TONELINE_DASHBOARD2": f"127.0.0.1:{dashboards[1]}",
        }
        procs.append(_haproxy(proxy_env, log))
        rasa_url, dash_url = f"http://127.0.0.1:{rasa_port}", f"http://127.0.0.1:{dash_port}"
        _wait(lambda: _both_up(rasa_url, "/"), 30, "both Rasa replicas healthy behind HAProxy")
        _wait(lambda: _both_up(dash_url, "/healthz"), 30, "both dashboards healthy behind HAProxy")
        store = StateStore(RedisSettings(url=cluster.url, cluster=True, prefix=prefix, socket_timeout=2.0))
        yield Scale(rasa_url, dash_url, envs[0], cluster, postgres, replicas, store, password)
    finally:
        stop(*procs, *(r.rasa for r in replicas), *(r.actions for r in replicas))
        cluster.stop()
        with contextlib.suppress(StackError):
            postgres.stop()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def _action_port(env: dict[str, str]) -> int:
    return int(env["TONELINE_ACTION_URL"].rsplit(":", 1)[1].split("/")[0])


def _replica_env(
    lock_redis: RedisEndpoint, cluster: LocalRedisCluster, pg: LocalPostgres, prefix: str, password: str, base: Path
) -> dict[str, str]:
    env = stack_env(
        lock_redis,
        action_port=free_port(),
        tracker_prefix=prefix.replace("-", ""),  # Rasa's lock store takes letters and digits only
        toneline_redis_url=cluster.url,
        toneline_prefix=prefix,
    )
    env.update(
        TONELINE_REDIS_CLUSTER="1",
        TONELINE_REDIS_REPLICA_ACKS="1",  # decisions wait for the master's replica (plugin.state._replicated)
        TONELINE_TRACKER_PG_HOST="127.0.0.1",
        TONELINE_TRACKER_PG_PORT=str(pg.port),
        TONELINE_TRACKER_PG_DB="rasa_trackers",
        TONELINE_TRACKER_PG_USER="postgres",
        TONELINE_TRACKER_PG_PASSWORD="",
        TONELINE_TRACKER_PG_LOGIN_DB="postgres",
        TONELINE_DASHBOARD_PASSWORD=password,
        # One machine here, so one disk: replicas share the outbox, as replicas on one host would.
        TONELINE_OUTBOX_DIR=str(base / "outbox"),
        SANIC_PROXIES_COUNT="1",
    )
    # The token and secret must be the same on every replica (one API, one action secret).
    env["TONELINE_RASA_TOKEN"] = os.environ.get("TONELINE_RASA_TOKEN") or _SHARED["token"]
    env["TONELINE_ACTION_SECRET"] = _SHARED["secret"]
    return env


_SHARED = {"token": secrets.token_urlsafe(24), "secret": secrets.token_urlsafe(24)}


def _talk_until_handoff(scale: Scale, who: str, texts: list[str]) -> int:
    """Turns until the bot hands over; returns how many it took."""
    for turn, text in enumerate(texts, start=1):
        if any(HANDOFF_MARK in r for r in scale.say(who, text)):
            return turn
    raise AssertionError(f"no handoff in {len(texts)} turns; served by {scale.served_by[-len(texts) :]}")


def _assert_recorded_once(scale: Scale, who: str, took: int) -> None:
    """Every acknowledged turn up to the handoff in Toneline's state once, one escalation, one handoff case.

    (After the handoff the conversation is paused: Rasa keeps the customer's words, no policy reads them.)
    """
    tracker_ids = scale.user_message_ids(who)[:took]
    assert len(tracker_ids) == took
    _wait(lambda: [t.message_id for t in scale.store.turns(who)] == tracker_ids, 20, "every turn in Toneline's state")
    assert len(scale.store.escalations(who)) == 1
    _wait(lambda: len(scale.cases(who)) == 1, 20, "the handoff case")
    events = scale.store.conversation_events(who)
    assert [e["type"] for e in events].count("escalation") == 1
    turn_events = [e["data"] for e in events if e["type"] == "turn"]
    assert len(turn_events) == len(set(turn_events)) == len(tracker_ids), "each turn's event exactly once"


def _pg_counters(scale: Scale) -> dict[str, int]:
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=scale.postgres.port, user="postgres", dbname="postgres")
    with contextlib.closing(connection), connection.cursor() as cursor:
        cursor.execute(
            "SELECT xact_commit, tup_inserted, tup_returned, tup_fetched, blks_hit + blks_read"
            " FROM pg_stat_database WHERE datname = 'rasa_trackers'"
        )
        row = cursor.fetchone()
    names = ("transactions", "rows_inserted", "rows_returned", "rows_fetched", "blocks_touched")
    return dict(zip(names, map(int, row or (0,) * len(names))))


def test_turns_alternating_between_replicas_lose_nothing_and_escalate_once(scale: Scale) -> None:
    who = f"scale-{uuid.uuid4().hex[:8]}"
    before = _pg_counters(scale)
    took = _talk_until_handoff(scale, who, ANGRY)
    time.sleep(0.6)  # PostgreSQL's statistics collector reports every 500 ms
    per_turn = {k: round((v - before[k]) / took, 1) for k, v in _pg_counters(scale).items()}
    (ARTIFACTS / "scale-postgres-per-turn.json").write_text(json.dumps({"turns": took, "per_turn": per_turn}))
    served = scale.served_by[-took:]
    # Round robin alternates, but HAProxy rightly takes a replica out for a moment when it misses two health
    # checks in a row (inter 500 ms, fall 2), which a loaded 2-core machine can make it do (CI saw rasa1, rasa2,
    # rasa2 once). What the test needs: one conversation's turns crossed from one replica to the other.
    assert set(served) == {"rasa1", "rasa2"} and any(a != b for a, b in zip(served, served[1:])), served
    assert scale.say(who, "hello?") is not None  # after the handoff: paused on whichever replica
    _assert_recorded_once(scale, who, took)
    case = scale.cases(who)[0]
    assert len(case["emotion_timeline"]) == took and "negative" in case["reason"]


def test_two_turns_of_one_conversation_at_once_on_two_replicas_run_one_after_the_other(scale: Scale) -> None:
    who = f"scale-lock-{uuid.uuid4().hex[:8]}"
    scale.say(who, "Hello there")
    urls = [f"http://127.0.0.1:{r.port}" for r in scale.replicas]
    barrier = threading.Barrier(2)

    def turn(url: str, text: str) -> list[str]:
        barrier.wait()
        return scale.say(who, text, url=url)

    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(turn, urls, ["I have a question about my bill", "Can I set up autopay?"]))
    assert all(replies)
    events = [e for e in scale.tracker(who)["events"] if e["event"] in ("user", "action")]
    users = [i for i, e in enumerate(events) if e["event"] == "user"]
    assert len(users) == 3
    for before_next in users[1:]:  # each turn ran to its action_listen before the next one was read
        assert events[before_next - 1].get("name") == "action_listen", [e.get("name") or e["event"] for e in events]


def _signed_in(scale: Scale) -> requests.Session:
    session = requests.Session()
    response = session.post(
        scale.dashboard_url + "/login",
        data={"username": "supervisor", "password": scale.password},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text
    return session


def test_both_dashboards_share_sessions_and_count_each_event_once(scale: Scale) -> None:
    session = _signed_in(scale)
    served = {session.get(scale.dashboard_url + "/api/me", timeout=10).headers["X-Toneline-Replica"] for _ in range(4)}
    assert served == {"dashboard1", "dashboard2"}, "a session made on one dashboard is valid on the other"
    recorded = sum(len(scale.store.turns(conv["conversation_id"])) for conv in _floor(session, scale))
    escalated = sum(1 for conv in _floor(session, scale) if conv["escalated"])

    def counted() -> dict[str, Any]:
        total: dict[str, Any] = session.get(scale.dashboard_url + "/api/history", timeout=10).json()["total"]
        return total

    _wait(lambda: counted()["turns"] == recorded, 30, f"history counts the {recorded} recorded turns")
    time.sleep(2.5)  # both dashboards' rollup consumers have polled again: nothing is counted twice
    for _ in range(2):  # asked of each dashboard in turn
        total = counted()
        assert total["turns"] == recorded and total["escalations"] == escalated


def _floor(session: requests.Session, scale: Scale) -> list[dict[str, Any]]:
    floor: list[dict[str, Any]] = session.get(scale.dashboard_url + "/api/floor", timeout=10).json()["conversations"]
    return floor


def test_a_redis_master_killed_mid_conversation_loses_no_acknowledged_turn(scale: Scale) -> None:
    who = f"scale-failover-{uuid.uuid4().hex[:8]}"
    for text in ANGRY[:2]:
        assert scale.say(who, text)
    master = scale.store.client.get_node_from_key(scale.store.keys.conv(who, ConvKey.META))
    # The first node of TONELINE_REDIS_URL too when it is the one: a process connecting after this finds the
    # cluster through the others.
    scale.cluster.kill(int(master.port))
    # The turns go on at once: Toneline's writes to the dead master's slots wait in the disk outbox.
    took = 2 + _talk_until_handoff(scale, who, ANGRY[2:])
    scale.cluster.wait_ok()
    _assert_recorded_once(scale, who, took)
    scale.cluster.start_node(int(master.port))  # it comes back as a replica of the master that replaced it


def test_postgresql_restarted_mid_conversation_keeps_every_acknowledged_turn(scale: Scale) -> None:
    who = f"scale-pg-{uuid.uuid4().hex[:8]}"
    for text in ("Hello there", "I have a question about my bill"):
        assert scale.say(who, text)
    scale.postgres.restart()  # fast: open connections cut, as a crash or a database failover would
    answered = _say_retrying(scale, who, "Can I set up autopay?")
    assert answered, "the conversation goes on once PostgreSQL is back"
    texts = [e["text"] for e in scale.tracker(who)["events"] if e["event"] == "user"]
    assert texts[:2] == ["Hello there", "I have a question about my bill"], "nothing acknowledged before it is lost"
    assert texts.count("Can I set up autopay?") >= 1


def _say_retrying(scale: Scale, who: str, text: str, attempts: int = 3) -> list[str]:
    """A turn that failed (HTTP 500: a pooled connection the restart cut) was never acknowledged: send it again,
    as a channel does."""
    for attempt in range(attempts):
        try:
            return scale.say(who, text)
        except requests.HTTPError:
            if attempt == attempts - 1:
                raise
            time.sleep(1.0)
    return []


def test_a_rasa_replica_killed_mid_conversation_hands_it_to_the_other_with_its_emotion_state(scale: Scale) -> None:
    who = f"scale-replica-{uuid.uuid4().hex[:8]}"
    for text in ANGRY[:2]:
        assert scale.say(who, text)
    before = scale.store.meta(who)
    dead = scale.replicas[0]
    assert dead.rasa is not None
    dead.rasa.kill()  # SIGKILL: no goodbye, as a machine that dies
    dead.rasa.wait(timeout=10)
    took = 2 + _talk_until_handoff(scale, who, ANGRY[2:])
    assert set(scale.served_by[-(took - 2) :]) == {"rasa2"}
    after = scale.store.meta(who)
    assert int(after["n_turns"]) == took > int(before["n_turns"]) == 2
    assert before["started_at"] == after["started_at"], "the same conversation state, carried on"
    _assert_recorded_once(scale, who, took)
