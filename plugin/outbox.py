"""Decided writes that must reach Redis even if Redis is down now and this process dies before it returns.

Escalations (state, reason, the customer's "escalated before" mark) and handoff
cases are decisions: the conversation has moved on, and the tracker alone does
not bring them back. A write that Redis refuses goes to an append-only JSON-lines
file on local disk (fsynced), and a background thread replays the file in order
once Redis answers again; a restarted process replays what its predecessor left.
Every entry is idempotent in Redis (turns per message id, an escalation per
message id, a handoff case per dedupe key), so a replay interrupted halfway and
started again writes nothing twice.

Several processes may share a file (Rasa replicas on one host): appends and
replays hold an exclusive lock on a sidecar `.lock` file, and the data file is
replaced atomically after a replay, so no entry is lost between two processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import redis

from models.logs import log_event
from plugin.state import StateStore, StateUnavailable

logger = logging.getLogger(__name__)
Entry = dict[str, Any]
DIR_ENV = "TONELINE_OUTBOX_DIR"


class DurableOutbox:
    """Applies entries to Redis, holding on disk (in order) those that cannot be applied yet."""

    def __init__(self, path: Path, apply: Callable[[Entry], Any], retry_after: float) -> None:
        self.path = path
        self._apply = apply
        self.retry_after = max(0.05, retry_after)
        self._lock = threading.Lock()
        self._flusher: threading.Thread | None = None

    # -- public ---------------------------------------------------------------
    def submit(self, entry: Entry) -> tuple[bool, Any]:
        """(True, result) if written to Redis now; (False, None) if held on disk for a later replay.

        An entry never overtakes one held before it, so replays keep the order of decisions.
        """
        if self.pending_bytes() == 0:
            with contextlib.suppress(StateUnavailable):
                return True, self._apply(entry)
        with self._locked():
            self._append(entry)
            log_event(logger, logging.WARNING, "toneline.outbox.held", file=self.path.name, op=entry.get("op"))
        written = self.flush()
        if not written:
            self.start()
        return written, None

    def flush(self) -> bool:
        """Replay held entries in order until Redis refuses one; True when nothing is held any more.

        While Redis is still down only the first entry is read and tried, so an outage
        that piles up entries never makes each new turn read the whole file.
        """
        with self._locked():
            if not self.path.exists():  # under the lock no other process can remove it now
                return True
            with open(self.path, encoding="utf-8") as handle:
                done = 0
                for number, line in enumerate(handle, start=1):
                    if not self._replay(line, number):
                        if done == 0:
                            return False
                        self._rewrite([line, *handle])
                        break
                    done += 1
                else:
                    self._rewrite([])
            log_event(logger, logging.INFO, "toneline.outbox.replayed", file=self.path.name, written=done)
            return self.pending_bytes() == 0

    def start(self) -> None:
        """Replay in the background until nothing is held (no thread when the file is empty)."""
        with self._lock:
            if self.pending_bytes() == 0 or self._flusher is not None:
                return
            self._flusher = threading.Thread(target=self._run, name=f"toneline-outbox-{self.path.stem}", daemon=True)
            self._flusher.start()

    def forget(self, mentions: Callable[[Entry], bool]) -> int:
        """Drop held (and rejected) entries that `mentions` names, e.g. a customer's on erasure; returns how many."""
        dropped = 0
        with self._locked():
            for path in (self.path, self.path.with_suffix(".rejected")):
                if not path.exists():
                    continue
                lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
                kept = [line for line in lines if not _mentioned(line, mentions)]
                dropped += len(lines) - len(kept)
                if len(kept) != len(lines):
                    _replace(path, kept)
        return dropped

    def pending_bytes(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    # -- internals ------------------------------------------------------------
    def _run(self) -> None:
        while True:
            time.sleep(self.retry_after)
            try:
                self.flush()
            except Exception as exc:  # disk trouble or a bug: keep the file, say so, try again later
                log_event(logger, logging.ERROR, "toneline.outbox.replay_failed", file=self.path.name, error=repr(exc))
            # Decide to stop under the lock `start` takes, so an entry held meanwhile is never left behind.
            with self._lock:
                if self.pending_bytes() == 0:
                    self._flusher = None
                    return

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _append(self, entry: Entry) -> None:
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8")
        with open(self.path, "ab+") as handle:
            if handle.seek(0, os.SEEK_END) > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":  # a predecessor died mid-line: keep this entry off that line
                    line = b"\n" + line
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def _replay(self, line: str, number: int) -> bool:
        """Apply one held line; False if Redis is (still) away. Torn and poisoned lines are set aside."""
        try:
            entry = json.loads(line)
        except ValueError:  # a line torn by a crash mid-write: it was never acknowledged
            log_event(logger, logging.ERROR, "toneline.outbox.torn_line", file=self.path.name, line=number)
            return True
        try:
            self._apply(entry)
        except StateUnavailable:
            return False
        except redis.RedisError as exc:  # a poisoned entry must not block the ones after it
            self._reject(entry, exc)
        return True

    def _rewrite(self, lines: list[str]) -> None:
        """Keep only `lines` (those not yet written), replacing the file atomically."""
        _replace(self.path, lines)

    def _reject(self, entry: Entry, exc: Exception) -> None:
        log_event(logger, logging.ERROR, "toneline.outbox.rejected", file=self.path.name, error=str(exc)[:200])
        with open(self.path.with_suffix(".rejected"), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, separators=(",", ":")) + "\n")


def _replace(path: Path, lines: list[str]) -> None:
    """Keep only `lines` in `path` (none: remove it), replacing the file atomically."""
    if not lines:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.writelines(lines)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _mentioned(line: str, mentions: Callable[[Entry], bool]) -> bool:
    try:
        entry = json.loads(line)
    except ValueError:  # a torn line is never replayed; it may still hold the customer's data
        return True
    return isinstance(entry, dict) and mentions(entry)


def outbox_dir(configured: str = "", env: dict[str, str] | None = None) -> Path:
    """`$TONELINE_OUTBOX_DIR`, else `state.outbox_dir`, else `$TONELINE_CACHE/outbox` (~/.cache/toneline)."""
    env = dict(os.environ) if env is None else env
    chosen = env.get(DIR_ENV) or configured
    if chosen:
        return Path(chosen).expanduser()
    return Path(env.get("TONELINE_CACHE") or Path.home() / ".cache" / "toneline") / "outbox"


def outbox_for(store: StateStore, kind: str) -> DurableOutbox:
    """The outbox of `store`'s key prefix for one kind of write (`state` for the policy, `handoffs` for actions)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", store.keys.prefix)
    path = outbox_dir(store.state_settings.outbox_dir) / f"{name}.{kind}.jsonl"
    return DurableOutbox(path, store.apply, store.settings.retry_after_seconds)
