"""A throwaway PostgreSQL cluster (Debian's postgresql 15) in a directory, for Rasa's SQL tracker store in tests.

initdb into the directory, pg_ctl on a loopback port with trust authentication
for the local user `postgres`; as root the server runs as the `postgres` system
user (PostgreSQL refuses to run as root). Tests may restart it (a failure drill).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from scripts.stack import StackError, free_port

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def pg_binary(name: str) -> str | None:
    """`initdb`/`pg_ctl` from PATH or Debian's versioned directory (not on PATH by default)."""
    return shutil.which(name) or next((str(d / name) for d in PG_BIN_DIRS if (d / name).exists()), None)


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class LocalPostgres:
    """One PostgreSQL server of this machine's binaries, in `base_dir`."""

    base_dir: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @classmethod
    def start_new(cls, base_dir: Path) -> LocalPostgres:
        initdb = pg_binary("initdb")
        if initdb is None or pg_binary("pg_ctl") is None:
            raise StackError("PostgreSQL is not installed (Debian package postgresql; scripts/system-deps.sh)")
        base_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(base_dir, "postgres")
        server = cls(base_dir, free_port())
        cmd = [initdb, "-D", str(server.data_dir), "-A", "trust", "-U", "postgres", "--no-sync"]
        result = subprocess.run(_as_postgres(cmd), capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise StackError(f"initdb failed: {result.stderr.strip()[-500:]}")
        server.start()
        return server

    def _pg_ctl(self, *args: str) -> None:
        cmd = [str(pg_binary("pg_ctl")), "-D", str(self.data_dir), "-w", "-t", "60", *args]
        result = subprocess.run(_as_postgres(cmd), capture_output=True, text=True, timeout=90)
        if result.returncode != 0:
            raise StackError(f"pg_ctl {args[0]} failed: {result.stderr.strip()[-500:]}; log {self.base_dir / 'log'}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base_dir} -c listen_addresses=127.0.0.1"
        self._pg_ctl("-o", options, "-l", str(self.base_dir / "log"), "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "stop")

    def restart(self) -> None:
        """Stop (fast: open sessions are cut, as a crash or a failover would) and start again."""
        self.stop()
        self.start()
