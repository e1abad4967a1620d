"""A real Redis Cluster on loopback ports, for the tests, the bench and `make demo`'s scaled variant.

Three masters with a replica each by default: `redis-server --cluster-enabled yes`
per node (its own directory, append-only file fsynced on every write), joined by
`redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`. A short node
timeout makes a failover (a master killed, its replica promoted) take a second or
two instead of fifteen.

    python -m scripts.redis_cluster /tmp/cluster     # start one and print its URL; Ctrl-C stops it
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from scripts.stack import StackError

BUS_OFFSET = 10_000  # Redis Cluster's node-to-node bus listens on port + 10000
FIRST_PORT = 7100


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int, first: int = FIRST_PORT) -> list[int]:
    """`count` ports from `first` on whose bus ports (+10000) are free as well."""
    ports: list[int] = []
    port = first
    while len(ports) < count:
        if port + BUS_OFFSET > 65535:
            raise StackError(f"no {count} free Redis Cluster ports from {first}")
        if _bindable(port) and _bindable(port + BUS_OFFSET):
            ports.append(port)
        port += 1
    return ports


def _redis_cli(*args: str, timeout: float = 5.0) -> str:
    cli = shutil.which("redis-cli")
    if cli is None:
        raise StackError("redis-cli is not installed (Debian: apt-get install redis-tools)")
    result = subprocess.run([cli, *args], capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise StackError(f"redis-cli {' '.join(args[:3])}...: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


@dataclass
class LocalRedisCluster:
    """A Redis Cluster of this machine's redis-server processes, which tests may kill node by node."""

    base_dir: Path
    ports: list[int]
    node_timeout_ms: int = 1000
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated: any one names the whole cluster (the client reads the slot map
        from it), and a process that starts while one is down still finds the cluster through the others."""
        return ",".join(f"redis://127.0.0.1:{port}/0" for port in self.ports)

    @classmethod
    def start(
        cls, base_dir: Path, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 1000
    ) -> LocalRedisCluster:
        """Start the nodes, create the cluster and wait until every slot is served."""
        if shutil.which("redis-server") is None:
            raise StackError("redis-server is not installed (Debian: apt-get install redis-server)")
        cluster = cls(base_dir, cluster_ports(masters * (1 + replicas)), node_timeout_ms)
        try:
            for port in cluster.ports:
                cluster.start_node(port)
            nodes = [f"127.0.0.1:{port}" for port in cluster.ports]
            _redis_cli("--cluster", "create", *nodes, "--cluster-replicas", str(replicas), "--cluster-yes", timeout=60)
            cluster.wait_ok(replicas_per_master=replicas)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def start_node(self, port: int) -> None:
        """Start (or restart, with its saved cluster config and data) the node on `port`."""
        node_dir = self.base_dir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        args = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(node_dir),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            # A replica may always take over: with a short node timeout the default factor (10) judges a replica
            # whose master died a few seconds ago too stale to promote, and its slots would stay down.
            "--cluster-replica-validity-factor",
            "0",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ]
        with open(node_dir / "redis.log", "ab") as log:  # the child keeps its own copy of the descriptor
            self.procs[port] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not self._pings(port):
            if self.procs[port].poll() is not None or time.monotonic() > deadline:
                raise StackError(f"Redis Cluster node on port {port} did not start; see {node_dir / 'redis.log'}")
            time.sleep(0.05)

    def _pings(self, port: int) -> bool:
        with contextlib.suppress(StackError, subprocess.TimeoutExpired):
            return _redis_cli("-p", str(port), "PING", timeout=1).strip() == "PONG"
        return False

    def info(self, port: int) -> dict[str, str]:
        lines = _redis_cli("-p", str(port), "CLUSTER", "INFO").splitlines()
        return dict(line.strip().split(":", 1) for line in lines if ":" in line)

    def masters(self) -> list[int]:
        """Ports of the masters serving slots now (as a live node sees it)."""
        for port in self.live_ports():
            with contextlib.suppress(StackError, subprocess.TimeoutExpired):
                return self._masters_seen_by(port)
        raise StackError("no Redis Cluster node answers")

    def _masters_seen_by(self, port: int) -> list[int]:
        out = []
        for line in _redis_cli("-p", str(port), "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if "master" in fields[2] and "fail" not in fields[2] and len(fields) > 8:
                out.append(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
        return sorted(out)

    def live_ports(self) -> list[int]:
        return [port for port, proc in self.procs.items() if proc.poll() is None]

    def wait_ok(self, timeout: float = 30.0, replicas_per_master: int = 0) -> None:
        """Until every live node says cluster_state:ok with all 16384 slots served by a master that answers, and
        every master has at least `replicas_per_master` replicas, all in sync ("online"; a replica still loading
        its first copy could neither acknowledge a WAIT nor take over)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(StackError, subprocess.TimeoutExpired):
                infos = [self.info(port) for port in self.live_ports()]
                served = all(i.get("cluster_state") == "ok" and i.get("cluster_slots_ok") == "16384" for i in infos)
                masters = self.masters()
                answering = all(port in self.live_ports() for port in masters)
                if served and answering and all(self._replicas_in_sync(p) >= replicas_per_master for p in masters):
                    return
            time.sleep(0.1)
        raise StackError(f"Redis Cluster not ok within {timeout:.0f} s (nodes in {self.base_dir})")

    def _replicas_in_sync(self, port: int) -> int:
        """How many replicas the master on `port` has, if all of them are in sync (-1 if one is still syncing)."""
        lines = _redis_cli("-p", str(port), "INFO", "replication").splitlines()
        states = [
            line.split("state=")[1].split(",")[0] for line in lines if line.startswith("slave") and "state=" in line
        ]
        return len(states) if all(state == "online" for state in states) else -1

    def kill(self, port: int) -> None:
        """SIGKILL one node, as a machine that dies would (no goodbye to the cluster)."""
        proc = self.procs[port]
        proc.kill()
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    base = Path(args[0]) if args else Path(tempfile.mkdtemp(prefix="toneline-cluster-"))
    try:
        cluster = LocalRedisCluster.start(base)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Redis Cluster up: TONELINE_REDIS_CLUSTER=1 TONELINE_REDIS_URL={cluster.url} (nodes in {base})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while all(proc.poll() is None for proc in cluster.procs.values()):
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
