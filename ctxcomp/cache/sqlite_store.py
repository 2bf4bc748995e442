"""The embedded default store: one SQLite file in WAL mode, safe for many processes.

* Writes: one ``BEGIN IMMEDIATE`` transaction per batch (all entries of a batch become
  visible together, or none do — a writer killed mid-batch leaves nothing behind; SQLite's
  journal rolls the torn transaction back on the next open).
* Concurrency: WAL (readers never block the writer), ``busy_timeout`` for writer queues, one
  connection per process and thread (re-opened after ``fork``).
* Ownership (:mod:`ctxcomp.cache.sqlite_file`): a new cache is created atomically with
  ctxcomp's ``application_id`` in its header; a path holding anything that is not provably a
  ctxcomp cache (a text file, another program's database, a folder) is refused with a
  :class:`~ctxcomp.cache.CacheError` and never modified.
* Integrity: on open, the file size and ``PRAGMA quick_check`` are checked; a corrupt or
  truncated cache of ours is renamed aside (``<name>.corrupt-<time>-<pid>``) under a lock
  file and a fresh empty cache is created in its place. A "malformed" error while running
  does the same. Every value is additionally checksummed (see :mod:`ctxcomp.cache.artifact`).
* Eviction: TTL on creation time, then least-recently-used down to 90% of ``max_bytes`` /
  ``max_entries``. Last-access times are refreshed at most once a minute per entry, so reads
  rarely write.
* Size counters are kept by triggers in the same transaction as the writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import sqlite_file
from .artifact import CacheError
from .sqlite_schema import SCHEMA_VERSION, create_schema
from .store import Eviction

log = logging.getLogger("ctxcomp.cache")

_TOUCH_EVERY = 60.0  # seconds between last-access refreshes of one entry
_CHUNK = 400  # keys per IN (...) query


def default_cache_path() -> Path:
    """``$CTXCOMP_CACHE`` or ``$XDG_CACHE_HOME/ctxcomp/segments.sqlite`` (``~/.cache`` default)."""
    env = os.environ.get("CTXCOMP_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ctxcomp" / "segments.sqlite"


class SQLiteStore:
    """A segment store in one SQLite file (created with its folder if missing)."""

    name = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        eviction: Eviction | None = None,
        busy_timeout: float = 30.0,
        check: str = "quick",
    ) -> None:
        if check not in ("quick", "header", "none"):
            raise CacheError(f"check must be 'quick', 'header' or 'none', got {check!r}")
        self.path = Path(path).expanduser() if path is not None else default_cache_path()
        self.eviction = eviction or Eviction()
        self.busy_timeout = float(busy_timeout)
        self.check = check
        self.quarantined: list[Path] = []  # corrupt files this object moved aside
        self._local = threading.local()
        self._lock = threading.RLock()
        self._conn()  # open (and check) now, so problems surface at construction

    # -- connections ------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is not None and self._local.pid == os.getpid():
            return c
        c = self._open_checked()
        self._local.conn = c
        self._local.pid = os.getpid()
        return c

    def _connect(self) -> sqlite3.Connection:
        c = sqlite3.connect(
            str(self.path), timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        c.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("PRAGMA synchronous = NORMAL")
        return c

    def _open_checked(self) -> sqlite3.Connection:
        """Open the cache (creating it if absent); a corrupt one of ours is set aside."""
        state = sqlite_file.inspect(self.path)  # foreign files: CacheError, untouched
        if state == sqlite_file.MISSING:
            sqlite_file.create(self.path, create_schema)
            state = sqlite_file.inspect(self.path)
        sqlite_file.check_writable(self.path)
        problem = sqlite_file.size_problem(self.path) if self.check != "none" else None
        if problem is None:
            c = None
            try:
                c = self._connect()
                if self.check == "quick":
                    rows = c.execute("PRAGMA quick_check").fetchall()
                    if [r[0] for r in rows] != ["ok"]:
                        problem = "quick_check: " + "; ".join(str(r[0]) for r in rows[:3])
                if problem is None:
                    problem = self._check_schema(c, tag=state == sqlite_file.LEGACY)
                if problem is None:
                    return c
                c.close()
            except sqlite3.DatabaseError as exc:
                if c is not None:
                    c.close()
                if sqlite_file.is_busy(exc):
                    raise CacheError(f"cache {self.path} is locked: {exc}") from exc
                if not sqlite_file.is_corruption(exc):
                    raise sqlite_file.explain(self.path, exc) from None
                problem = f"{type(exc).__name__}: {exc}"
        self._quarantine(problem)
        if not self.path.exists():
            sqlite_file.create(self.path, create_schema)
        c = self._connect()
        still = self._check_schema(c, tag=False)
        if still is not None:
            c.close()
            raise CacheError(f"cache {self.path}: {still}")
        return c

    def _check_schema(self, c: sqlite3.Connection, *, tag: bool) -> str | None:
        """A problem with the schema of a cache of ours, or None; ``tag`` an older cache."""
        have = c.execute("SELECT name FROM sqlite_master WHERE name = 'meta'").fetchone()
        if have is None:
            return "its tables are missing"
        v = c.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        if v is None or int(v[0]) != SCHEMA_VERSION:
            raise CacheError(
                f"cache {self.path} has schema version {None if v is None else v[0]}, this "
                f"ctxcomp reads version {SCHEMA_VERSION}: give another cache path"
            )
        if tag:  # a cache made before the header tag: proven ours by its schema
            c.execute(f"PRAGMA application_id = {sqlite_file.APPLICATION_ID}")
        return None

    def _quarantine(self, problem: str) -> None:
        """Move a corrupt cache of ours aside (once, even with several processes)."""
        old = getattr(self._local, "conn", None)
        if old is not None:
            with contextlib.suppress(sqlite3.Error):
                old.close()
            self._local.conn = None
        dest = sqlite_file.set_aside(self.path, self._still_corrupt)
        if dest is not None:
            self.quarantined.append(dest)
            log.warning(
                "ctxcomp cache %s was corrupt (%s): moved to %s, starting empty",
                self.path,
                problem,
                dest,
            )

    def _still_corrupt(self) -> bool:
        """Re-check under the lock: another process may have replaced the file already."""
        try:
            c = sqlite3.connect(str(self.path), timeout=self.busy_timeout, isolation_level=None)
            try:
                rows = c.execute("PRAGMA quick_check").fetchall()
                return [r[0] for r in rows] != ["ok"]
            finally:
                c.close()
        except sqlite3.DatabaseError as exc:
            return not sqlite_file.is_busy(exc)

    def _run(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(conn, ...)``; on a corruption error, quarantine, reopen, retry once."""
        with self._lock:
            try:
                return fn(self._conn(), *args)
            except sqlite3.DatabaseError as exc:
                if sqlite_file.is_busy(exc) or isinstance(exc, sqlite3.IntegrityError):
                    raise CacheError(f"cache {self.path}: {exc}") from exc
                if not sqlite_file.is_corruption(exc):
                    self._rollback()
                    raise sqlite_file.explain(self.path, exc) from None
                self._rollback()
                self._quarantine(f"{type(exc).__name__}: {exc}")
                self._local.conn = None
                return fn(self._conn(), *args)

    def _rollback(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None and c.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                c.execute("ROLLBACK")

    # -- store protocol ---------------------------------------------------------------

    def get_many(self, namespace: str, kind: str, keys: Iterable[str]) -> dict[str, bytes]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        return dict(self._run(self._get, namespace, kind, keys))

    def _get(self, c: sqlite3.Connection, ns: str, kind: str, keys: list[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        now = time.time()
        ttl = self.eviction.ttl_seconds
        stale: list[str] = []
        for i in range(0, len(keys), _CHUNK):
            part = keys[i : i + _CHUNK]
            q = ",".join("?" * len(part))
            for k, v, created, accessed in c.execute(
                f"SELECT key, value, created, accessed FROM entries WHERE ns = ? AND kind = ? AND key IN ({q})",
                (ns, kind, *part),
            ):
                if ttl is not None and now - created > ttl:
                    continue
                out[k] = bytes(v)
                if now - accessed > _TOUCH_EVERY:
                    stale.append(k)
        if stale:
            self._write(c, self._touch, ns, kind, stale, now)
        return out

    @staticmethod
    def _touch(c: sqlite3.Connection, ns: str, kind: str, keys: list[str], now: float) -> None:
        for i in range(0, len(keys), _CHUNK):
            part = keys[i : i + _CHUNK]
            q = ",".join("?" * len(part))
            c.execute(
                f"UPDATE entries SET accessed = ? WHERE ns = ? AND kind = ? AND key IN ({q})",
                (now, ns, kind, *part),
            )

    def _write(self, c: sqlite3.Connection, fn: Any, *args: Any) -> Any:
        c.execute("BEGIN IMMEDIATE")
        try:
            r = fn(c, *args)
            c.execute("COMMIT")
            return r
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def put_many(self, namespace: str, kind: str, items: Mapping[str, bytes]) -> None:
        if not items:
            return
        self._run(lambda c: self._write(c, self._put, namespace, kind, items))

    def _put(self, c: sqlite3.Connection, ns: str, kind: str, items: Mapping[str, bytes]) -> None:
        now = time.time()
        c.executemany(
            "INSERT INTO entries (ns, kind, key, value, size, created, accessed) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (ns, kind, key) DO UPDATE SET value = excluded.value, size = excluded.size, "
            "created = excluded.created, accessed = excluded.accessed",
            [(ns, kind, k, sqlite3.Binary(v), len(v), now, now) for k, v in items.items()],
        )
        self._evict(c, now)

    def _evict(self, c: sqlite3.Connection, now: float) -> None:
        ev = self.eviction
        if ev.ttl_seconds is not None:
            c.execute("DELETE FROM entries WHERE created < ?", (now - ev.ttl_seconds,))
        for meta_name, limit in (("bytes", ev.max_bytes), ("entries", ev.max_entries)):
            if limit is None:
                continue
            total = _meta(c, meta_name)
            if total <= limit:
                continue
            low = int(limit * 0.9)
            while total > low and _meta(c, "entries") > 0:
                step = max(1, _meta(c, "entries") // 20)
                c.execute(
                    "DELETE FROM entries WHERE rowid IN "
                    "(SELECT rowid FROM entries ORDER BY accessed, rowid LIMIT ?)",
                    (step,),
                )
                total = _meta(c, meta_name)

    def delete(self, namespace: str, kind: str, keys: Iterable[str]) -> None:
        keys = list(keys)
        if not keys:
            return

        def _del(c: sqlite3.Connection) -> None:
            for i in range(0, len(keys), _CHUNK):
                part = keys[i : i + _CHUNK]
                q = ",".join("?" * len(part))
                c.execute(
                    f"DELETE FROM entries WHERE ns = ? AND kind = ? AND key IN ({q})",
                    (namespace, kind, *part),
                )

        self._run(lambda c: self._write(c, _del))

    def iter_kind(self, namespace: str, kind: str) -> Iterator[tuple[str, bytes]]:
        def _all(c: sqlite3.Connection) -> list[tuple[str, bytes]]:
            return [
                (k, bytes(v))
                for k, v in c.execute(
                    "SELECT key, value FROM entries WHERE ns = ? AND kind = ? ORDER BY rowid",
                    (namespace, kind),
                )
            ]

        yield from self._run(_all)

    def namespaces(self) -> list[str]:
        return [
            r[0]
            for r in self._run(
                lambda c: c.execute("SELECT DISTINCT ns FROM entries ORDER BY ns").fetchall()
            )
        ]

    def clear(self, namespace: str | None = None) -> int:
        def _clear(c: sqlite3.Connection) -> int:
            if namespace is None:
                cur = c.execute("DELETE FROM entries")
            else:
                cur = c.execute("DELETE FROM entries WHERE ns = ?", (namespace,))
            return int(cur.rowcount)

        n = int(self._run(lambda c: self._write(c, _clear)))
        if namespace is None:
            with self._lock, contextlib.suppress(sqlite3.OperationalError):
                self._conn().execute("VACUUM")  # busy: skipped, the space is reused anyway
        return n

    def info(self) -> dict[str, Any]:
        def _info(c: sqlite3.Connection) -> dict[str, Any]:
            meta = dict(c.execute("SELECT name, value FROM meta").fetchall())
            per = {
                ns: {"entries": int(n), "bytes": int(b or 0)}
                for ns, n, b in c.execute("SELECT ns, COUNT(*), SUM(size) FROM entries GROUP BY ns")
            }
            counters = {k[2:]: int(v) for k, v in meta.items() if k.startswith("c:")}
            return {
                "backend": self.name,
                "path": str(self.path),
                "entries": int(meta.get("entries", 0)),
                "bytes": int(meta.get("bytes", 0)),
                "file_bytes": _file_bytes(self.path),
                "namespaces": per,
                "counters": counters,
                "quarantined": [str(p) for p in self.quarantined],
            }

        return dict(self._run(_info))

    def add_counters(self, deltas: Mapping[str, int]) -> None:
        rows = [(f"c:{k}", int(v)) for k, v in deltas.items() if v]
        if not rows:
            return

        def _add(c: sqlite3.Connection) -> None:
            c.executemany(
                "INSERT INTO meta (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                rows,
            )

        self._run(lambda c: self._write(c, _add))

    def integrity_ok(self) -> bool:
        """Full ``PRAGMA integrity_check`` (slow on big files; tests and the CLI use it)."""
        rows = self._run(lambda c: c.execute("PRAGMA integrity_check").fetchall())
        return [r[0] for r in rows] == ["ok"]

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None and self._local.pid == os.getpid():
            c.close()
        self._local.conn = None

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"


def _meta(c: sqlite3.Connection, name: str) -> int:
    return int(c.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0])


def _file_bytes(p: Path) -> int:
    total = 0
    for suf in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            total += p.with_name(p.name + suf).stat().st_size
    return total
