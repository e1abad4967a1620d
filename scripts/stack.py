"""Bring up the Toneline demo stack: Redis, the trained demo model, actions, Rasa.

    python -m scripts.stack demo        # what `make demo` runs
    python -m scripts.stack train       # train the demo model if its inputs changed

Used by the end-to-end tests too, so the demo and the tests start the stack
the same way. Models and caches live outside the clone (~/.cache/toneline).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator
from urllib.parse import urlencode, urlparse

REPO = Path(__file__).resolve().parent.parent
RASA_DIR = REPO / "rasa_project"
CACHE = Path(os.environ.get("TONELINE_CACHE", Path.home() / ".cache" / "toneline"))
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
INSTALL_REDIS_HINT = (
    "No Redis answered at 127.0.0.1:6379 and no `redis-server` is installed. Install Redis 7 "
    "(Debian/Ubuntu: `sudo apt-get install redis-server`; macOS: `brew install redis`) "
    "or point REDIS_URL at one, e.g. REDIS_URL=redis://host:6379/0"
)


RASA_TOKEN_ENV = "TONELINE_RASA_TOKEN"
ACTION_SECRET_ENV = "TONELINE_ACTION_SECRET"
TOKEN_FILE = CACHE / "demo-rasa-token"  # where `make demo` leaves the token for `make chat` (mode 0600)


class StackError(RuntimeError):
    """The stack cannot start; the message says what to do."""


@dataclass(frozen=True)
class RedisEndpoint:
    """A Redis server, from a redis:// URL."""

    url: str
    host: str
    port: int
    db: int
    password: str
    cluster: bool = False  # a Redis Cluster, `url` naming one of its nodes (Toneline's state only, never Rasa's)

    @classmethod
    def parse(cls, url: str, cluster: bool = False) -> RedisEndpoint:
        parts = urlparse(url)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise StackError(f"REDIS_URL must look like redis://host:port/db, got {url!r}")
        db = int(parts.path.strip("/") or 0)
        return cls(url, parts.hostname, parts.port or 6379, db, parts.password or "", cluster)

    def ping(self, timeout: float = 1.0) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=timeout, socket_connect_timeout=timeout).ping())
        except (redis.RedisError, OSError):
            return False


def redact(url: str) -> str:
    """`url` without its password, for printing."""
    parts = urlparse(url)
    if not parts.password:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis_server(port: int, data_dir: Path | None = None, log: IO[str] | None = None) -> subprocess.Popen[bytes]:
    """Start a local redis-server on `port` (append-only file in `data_dir` if given)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError(INSTALL_REDIS_HINT)
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        args += ["--dir", str(data_dir), "--appendonly", "yes", "--appendfsync", "always"]
    else:
        args += ["--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT)
    endpoint = RedisEndpoint.parse(f"redis://127.0.0.1:{port}/0")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if endpoint.ping(0.2):
            return proc
        if proc.poll() is not None:
            raise StackError(f"redis-server exited with code {proc.returncode} on port {port}")
        time.sleep(0.1)
    proc.kill()
    raise StackError(f"redis-server on port {port} did not answer within 10 s")


def ensure_redis(url: str | None = None) -> tuple[RedisEndpoint, subprocess.Popen[bytes] | None]:
    """Use REDIS_URL if set (it must answer), else a local Redis, else start one."""
    url = url or os.environ.get("REDIS_URL")
    if url:
        endpoint = RedisEndpoint.parse(url)
        if not endpoint.ping():
            raise StackError(f"REDIS_URL={url} does not answer PING")
        return endpoint, None
    endpoint = RedisEndpoint.parse(DEFAULT_REDIS)
    if endpoint.ping():
        return endpoint, None
    return endpoint, start_redis_server(6379)


def model_fingerprint() -> str:
    """Hash of everything `rasa train` reads, plus the Rasa version."""
    import rasa

    digest = hashlib.sha256(rasa.__version__.encode())
    files = [RASA_DIR / "config.yml", RASA_DIR / "domain.yml", *sorted((RASA_DIR / "data").rglob("*.yml"))]
    for file in files:
        digest.update(file.relative_to(RASA_DIR).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def base_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    # Rasa's training cache defaults to ./.rasa in the working directory: keep it out of the clone.
    env.setdefault("RASA_CACHE_DIRECTORY", str(CACHE / "rasa-cache"))
    env.update(extra)
    return env


def ensure_model(quiet: bool = False) -> Path:
    """The trained demo model for the current inputs; trains it only when they changed."""
    out_dir = CACHE / "rasa-models"
    name = f"demo-{model_fingerprint()}"
    model = out_dir / f"{name}.tar.gz"
    with _file_lock(out_dir / ".train.lock"):
        if model.exists():
            return model
        print(f"Training the demo bot's Rasa model ({name}); this takes a minute or two...", flush=True)
        cmd = [
            sys.executable,
            "-m",
            "rasa",
            "train",
            "--config",
            "config.yml",
            "--domain",
            "domain.yml",
            "--data",
            "data",
            "--out",
            str(out_dir),
            "--fixed-model-name",
            name,
        ]
        result = subprocess.run(cmd, cwd=RASA_DIR, env=base_env(), capture_output=quiet, text=True)
        if result.returncode != 0 or not model.exists():
            detail = (result.stdout or "")[-3000:] + (result.stderr or "")[-3000:] if quiet else ""
            raise StackError(f"`rasa train` failed (exit {result.returncode}). {detail}")
    return model


def stack_env(
    tracker_redis: RedisEndpoint,
    *,
    action_port: int,
    tracker_prefix: str = "tracker",
    toneline_redis_url: str | None = None,
    toneline_prefix: str | None = None,
) -> dict[str, str]:
    """Environment for `rasa run` and the action server (see rasa_project/endpoints.yml).

    Toneline's Redis: `toneline_redis_url`, else TONELINE_REDIS_URL from the environment,
    else the tracker's Redis; its key prefix likewise (`toneline_prefix`, TONELINE_PREFIX,
    "toneline"). The Rasa API token and the action server's secret come from
    TONELINE_RASA_TOKEN and TONELINE_ACTION_SECRET, or are generated for this run.
    """
    return base_env(
        TONELINE_ACTION_URL=f"http://127.0.0.1:{action_port}/webhook",
        TONELINE_ACTION_SECRET=os.environ.get(ACTION_SECRET_ENV) or secrets.token_urlsafe(24),
        TONELINE_RASA_TOKEN=os.environ.get(RASA_TOKEN_ENV) or secrets.token_urlsafe(24),
        TONELINE_TRACKER_REDIS_HOST=tracker_redis.host,
        TONELINE_TRACKER_REDIS_PORT=str(tracker_redis.port),
        TONELINE_TRACKER_REDIS_DB=str(tracker_redis.db),
        TONELINE_TRACKER_REDIS_PASSWORD=tracker_redis.password,
        TONELINE_TRACKER_PREFIX=tracker_prefix,
        TONELINE_REDIS_URL=toneline_redis_url or os.environ.get("TONELINE_REDIS_URL") or tracker_redis.url,
        TONELINE_PREFIX=toneline_prefix or os.environ.get("TONELINE_PREFIX") or "toneline",
    )


def cluster_chosen(env: dict[str, str]) -> bool:
    """TONELINE_REDIS_CLUSTER=1: Toneline's state (never Rasa's tracker or locks) is on the Redis Cluster that
    TONELINE_REDIS_URL names a node of; Rasa, the actions and the dashboard read the same variables."""
    return env.get("TONELINE_REDIS_CLUSTER", "").lower() in ("1", "true", "yes")


def check_cluster_choice(env: dict[str, str]) -> None:
    """With TONELINE_REDIS_CLUSTER=1, TONELINE_REDIS_URL must name a node of a cluster that answers."""
    if not cluster_chosen(env):
        return
    url = env.get("TONELINE_REDIS_URL")
    if not url:
        raise StackError(
            "TONELINE_REDIS_CLUSTER=1 needs TONELINE_REDIS_URL naming a node of the Redis Cluster "
            "(`python -m scripts.redis_cluster` starts a local one and prints it)"
        )
    from redis.exceptions import RedisClusterException, RedisError

    from plugin.redis_client import connect
    from plugin.settings import RedisSettings

    try:
        connect(RedisSettings(url=url, cluster=True), socket_timeout=2).close()
    except (RedisClusterException, RedisError, OSError) as exc:
        raise StackError(f"TONELINE_REDIS_URL={redact(url)} is not a Redis Cluster that answers: {exc}") from None


def without(env: dict[str, str], *names: str) -> dict[str, str]:
    """`env` less the secrets a process has no use for."""
    return {key: value for key, value in env.items() if key not in names}


def api_url(base: str, path: str, token: str) -> str:
    """A Rasa HTTP API URL with its auth token (Rasa 3.6 reads `?token=` only)."""
    sep = "&" if "?" in path else "?"
    return f"{base}{path}{sep}{urlencode({'token': token})}"


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{what} exited with code {proc.returncode} while starting")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.5)
    raise StackError(f"{what} did not answer {url} within {timeout:.0f} s")


def start_actions(env: dict[str, str], port: int, log: IO[str] | None) -> subprocess.Popen[bytes]:
    """The action server on loopback, refusing requests without TONELINE_ACTION_SECRET (plugin.action_server)."""
    cmd = [
        sys.executable,
        "-m",
        "plugin.action_server",
        "--actions",
        "actions",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, cwd=RASA_DIR, env=without(env, RASA_TOKEN_ENV), stdout=log, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/health", proc, 60, "the action server")
    return proc


def start_rasa(
    env: dict[str, str],
    model: Path,
    port: int,
    log: IO[str] | None,
    host: str = "127.0.0.1",
    endpoints: str = "endpoints.yml",
) -> subprocess.Popen[bytes]:
    """`rasa run` with Toneline; `endpoints` names the stores (endpoints.scale.yml: PostgreSQL trackers)."""
    cmd = rasa_command(env, model, port, host, endpoints)
    proc = subprocess.Popen(cmd, cwd=RASA_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_http(api_url(f"http://127.0.0.1:{port}", "/status", env[RASA_TOKEN_ENV]), proc, 300, "Rasa")
    return proc


def rasa_command(env: dict[str, str], model: Path, port: int, host: str, endpoints: str = "endpoints.yml") -> list[str]:
    """`rasa run` with the API on, locked by the stack's token."""
    return [
        sys.executable,
        "-m",
        "rasa",
        "run",
        "--model",
        str(model),
        "--port",
        str(port),
        "-i",
        host,
        "--enable-api",
        # Without it anyone who reaches the port reads every customer's tracker and can replace the model.
        # One argument with `=`: a token may start with "-" (token_urlsafe does, one time in 64), which argparse
        # would read as an option and Rasa would refuse to start.
        f"--auth-token={env[RASA_TOKEN_ENV]}",
        "--endpoints",
        endpoints,
        "--credentials",
        "credentials.yml",
    ]


def start_dashboard(
    env: dict[str, str], port: int, log: IO[str] | None, host: str = "127.0.0.1", config: Path | None = None
) -> subprocess.Popen[bytes]:
    """The supervisor dashboard (plugin.analytics) on `port`, with the demo's toneline.yml unless `config`."""
    cmd = [
        sys.executable,
        "-m",
        "plugin.analytics",
        "serve",
        "--config",
        str(config or RASA_DIR / "toneline.yml"),
        "--host",
        host,
        "--port",
        str(port),
    ]
    dashboard_env = without(env, RASA_TOKEN_ENV, ACTION_SECRET_ENV)  # it needs neither
    proc = subprocess.Popen(cmd, cwd=REPO, env=dashboard_env, stdout=log, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/healthz", proc, 60, "the dashboard")
    return proc


def stop(*procs: subprocess.Popen[bytes] | None) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        if proc is not None:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def demo(args: argparse.Namespace) -> int:
    # Ctrl-C and SIGTERM (docker stop, systemd, kill) shut down alike, and SIGINT is handled even when it was
    # inherited ignored (a shell's background job): the servers below handle the terminal's SIGINT themselves and
    # stop, so without our own handler their exit would read as a crash ("error: actions stopped", exit 1).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    check_cluster_choice(dict(os.environ))
    redis_endpoint, redis_proc = ensure_redis()
    model = ensure_model()
    env = stack_env(redis_endpoint, action_port=args.action_port)
    password = env.setdefault("TONELINE_DASHBOARD_PASSWORD", secrets.token_urlsafe(9))
    save_token(env[RASA_TOKEN_ENV])
    logs = CACHE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    with contextlib.ExitStack() as files:
        log = {name: files.enter_context((logs / f"{name}.log").open("w")) for name in ("actions", "rasa", "dashboard")}
        try:
            started = " (started here)" if redis_proc else ""
            state = redact(env["TONELINE_REDIS_URL"]) + (" (Redis Cluster)" if cluster_chosen(env) else "")
            print(f"Redis: {redact(redis_endpoint.url)}{started}; Toneline state: {state}; logs in {logs}", flush=True)
            procs["actions"] = start_actions(env, args.action_port, log["actions"])
            print("Starting Rasa with Toneline (loading models takes ~30 s)...", flush=True)
            procs["rasa"] = start_rasa(env, model, args.port, log["rasa"], host=args.host)
            procs["dashboard"] = start_dashboard(env, args.dashboard_port, log["dashboard"], host=args.host)
            print_banner(args.port, args.dashboard_port, password, env[RASA_TOKEN_ENV])
            while all(p.poll() is None for p in procs.values()):
                time.sleep(1)
            died = next(name for name, p in procs.items() if p.poll() is not None)
            print(f"error: {died} stopped (exit {procs[died].returncode}); see {logs / died}.log", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
        except StackError as exc:
            raise StackError(f"{exc}; see the logs in {logs}") from None
        finally:
            stop(procs.get("dashboard"), procs.get("rasa"), procs.get("actions"), redis_proc)


def save_token(token: str) -> None:
    """Leave the Rasa API token where `make chat` finds it, readable by this user only."""
    TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token)


def print_banner(port: int, dashboard_port: int, password: str, token: str) -> None:
    print(
        f"""
Toneline demo is running.
  Supervisor dashboard:  http://localhost:{dashboard_port}/   (user: supervisor, password: {password})
  Talk to the bot in this machine's terminal:  make chat
  Video chat in a browser (camera opt-in):  http://localhost:{port}/webhooks/toneline_video/
  REST channel:  curl -s localhost:{port}/webhooks/rest/webhook \\
                   -d '{{"sender": "me", "message": "my internet is down again"}}'
  Rasa HTTP API token (set {RASA_TOKEN_ENV} to choose it):  {token}
  Emotion of a conversation:  curl -s "localhost:{port}/conversations/me/tracker?token={token}"
Press Ctrl-C to stop.
""",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("demo", help="start Redis (if needed), actions and Rasa")
    run.add_argument("--port", type=int, default=int(os.environ.get("TONELINE_RASA_PORT", 5005)))
    run.add_argument("--action-port", type=int, default=int(os.environ.get("TONELINE_ACTION_PORT", 5055)))
    run.add_argument("--dashboard-port", type=int, default=int(os.environ.get("TONELINE_DASHBOARD_PORT", 5080)))
    run.add_argument("--host", default=os.environ.get("TONELINE_HOST", "127.0.0.1"))
    sub.add_parser("train", help="train the demo model if its inputs changed; print its path")
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            print(ensure_model())
            return 0
        return demo(args)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
