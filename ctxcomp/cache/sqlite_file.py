"""The SQLite cache file itself: whose it is, how it comes to exist, when it may be moved.

ctxcomp never modifies a file it did not create. A path is used as a cache only if

* nothing is there yet: the cache is built in a temporary file beside it (schema, WAL mode,
  ctxcomp's ``application_id`` in the SQLite header) and linked into place atomically, so
  no other process ever sees a half-made cache, and an existing file (even an empty one)
  is never adopted;
* or it is an SQLite database whose header carries ctxcomp's ``application_id``
  (``0x43584331``, "CXC1", at byte 68), or an older ctxcomp cache without one, recognised
  by its schema read through an *immutable* (write-free) connection and then tagged.

Anything else (a text file, another program's database, a folder, a path under a file) is
a :class:`~ctxcomp.cache.CacheError` that names the path, and the file is left byte for
byte as it was. Only a file proven to be a ctxcomp cache is ever moved aside when corrupt.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

from .artifact import CacheError

HEADER = b"SQLite format 3\x00"
APPLICATION_ID = 0x43584331  # "CXC1"
MISSING, OURS, LEGACY = "missing", "ours", "legacy"

# SQLite primary result codes (sqlite3.Error.sqlite_errorcode & 0xFF)
_CORRUPT, _NOTADB = 11, 26
_BUSY, _LOCKED = 5, 6
_EXPLAIN = {
    3: "permission denied",
    8: "it is read-only (the file or its folder): choose a writable cache path",
    10: "disk I/O error",
    13: "the disk is full",
    14: "it cannot be opened (no permission, or its folder is not writable)",
}


def _code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return int(code) & 0xFF if code is not None else None


def is_busy(exc: BaseException) -> bool:
    code = _code(exc)
    if code is not None:
        return code in (_BUSY, _LOCKED)
    msg = str(exc).lower()
    return "locked" in msg or "busy" in msg


def is_corruption(exc: BaseException) -> bool:
    code = _code(exc)
    if code is not None:
        return code in (_CORRUPT, _NOTADB)
    msg = str(exc).lower()
    return "malformed" in msg or "not a database" in msg


def explain(path: Path, exc: BaseException) -> CacheError:
    """A clear :class:`CacheError` for an SQLite error that is not corruption."""
    why = _EXPLAIN.get(_code(exc) or -1)
    if why is None and "readonly" in str(exc).lower():
        why = _EXPLAIN[8]
    return CacheError(f"cache {str(path)!r}: {why or exc}")


def foreign(path: Path, why: str) -> CacheError:
    return CacheError(
        f"{str(path)!r} exists and is not a ctxcomp cache ({why}); ctxcomp never changes "
        "files it did not create: give another cache path (or remove that file yourself)"
    )


def ensure_parent(path: Path) -> None:
    """Create the cache's folder, or fail clearly (a parent is a file, no permission)."""
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CacheError(
            f"cache path {str(path)!r}: a part of its folder {str(parent)!r} is a file, not a folder"
        ) from None
    except OSError as exc:
        raise CacheError(
            f"cache path {str(path)!r}: cannot create its folder {str(parent)!r} ({exc.strerror})"
        ) from None


def inspect(path: Path) -> str:
    """``MISSING``, ``OURS`` or ``LEGACY``; a :class:`CacheError` for anything else."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return MISSING
    except NotADirectoryError:
        raise CacheError(
            f"cache path {str(path)!r}: a part of its folder is a file, not a folder"
        ) from None
    except OSError as exc:
        raise CacheError(f"cache path {str(path)!r} cannot be examined ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise CacheError(
            f"cache path {str(path)!r} is a folder; give a file path such as "
            f"{str(path / 'segments.sqlite')!r}"
        )
    if not stat.S_ISREG(st.st_mode):
        raise CacheError(f"cache path {str(path)!r} is not a regular file")
    try:
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError as exc:
        raise CacheError(f"cache file {str(path)!r} cannot be read ({exc.strerror})") from None
    if len(head) < 100 or head[:16] != HEADER:
        raise (foreign(path, "empty" if not head else "not an SQLite database"))
    app = int.from_bytes(head[68:72], "big")
    if app == APPLICATION_ID:
        return OURS
    if app != 0:
        raise (foreign(path, f"an SQLite database of another program, id {app:#x}"))
    if _has_our_schema(path):
        return LEGACY
    raise (foreign(path, "an SQLite database without ctxcomp's tables"))


def _has_our_schema(path: Path) -> bool:
    """Read the schema without writing anything (``immutable=1``: no locks, no journal)."""
    uri = f"file:{quote(str(path.resolve()))}?immutable=1"
    try:
        c = sqlite3.connect(uri, uri=True)
        try:
            names = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"entries", "meta"} <= names:
                return False
            cols = {r[1] for r in c.execute("PRAGMA table_info(entries)")}
            row = c.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            return {"ns", "kind", "key", "value"} <= cols and row is not None
        finally:
            c.close()
    except sqlite3.Error:
        return False


def owned(path: Path) -> bool:
    """Whether ``path`` is (still) provably a ctxcomp cache."""
    try:
        return inspect(path) in (OURS, LEGACY)
    except CacheError:
        return False


def check_writable(path: Path) -> None:
    """A cache is written (and SQLite's -wal/-shm files created beside it): both the file
    and its folder must be writable."""
    for p, what in ((path, "file"), (path.parent, "folder")):
        if not os.access(p, os.W_OK):
            raise CacheError(
                f"cache {str(path)!r}: its {what} is read-only; choose a writable cache path"
            )


def size_problem(path: Path) -> str | None:
    """Truncation visible from the file size and the header's page size."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if size < 512:
        return f"file of {size} bytes is too short to be a database"
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1) or size % page:
        return f"file size {size} is not a whole number of {page}-byte pages (truncated)"
    return None


def create(path: Path, init: Callable[[sqlite3.Connection], None]) -> None:
    """Make a new cache at ``path`` atomically; a file that appears there first wins."""
    ensure_parent(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.new")
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError as exc:
        raise CacheError(
            f"cache {str(path)!r} cannot be created in {str(path.parent)!r} ({exc.strerror})"
        ) from None
    try:
        c = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            c.execute("PRAGMA journal_mode = WAL")
            init(c)
        finally:
            c.close()
        try:
            os.link(tmp, path)  # fails if anything is at path: never replaces a file
        except FileExistsError:
            pass
        except OSError:  # file systems without hard links: rename under the lock
            with file_lock(path):
                if not os.path.lexists(path):
                    os.replace(tmp, path)
    except sqlite3.Error as exc:
        raise explain(path, exc) from None
    finally:
        for suf in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                os.unlink(f"{tmp}{suf}")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``<path>.lock`` (other processes using the same cache wait)."""
    import fcntl

    lockp = path.with_name(path.name + ".lock")
    try:
        lf = open(lockp, "a+b")  # noqa: SIM115 - closed below, after the unlock
    except OSError as exc:
        raise CacheError(f"cache lock {str(lockp)!r} cannot be opened ({exc.strerror})") from None
    with lf:
        fcntl.flock(lf, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lf, fcntl.LOCK_UN)


def set_aside(path: Path, still_corrupt: Callable[[], bool]) -> Path | None:
    """Rename a corrupt ctxcomp cache (and its -wal/-shm) to ``<name>.corrupt-<time>-<pid>``.

    Under the lock the file is checked again: moved only if it is still there, still
    provably ours and still corrupt (another process may have handled it already).
    """
    with file_lock(path):
        if not path.exists():
            return None
        if not owned(path):
            raise CacheError(
                f"{str(path)!r} is damaged and cannot be proven to be a ctxcomp cache, so it is "
                "left as it is: move it aside yourself, or give another cache path"
            )
        if size_problem(path) is None and not still_corrupt():
            return None
        dest = path.with_name(f"{path.name}.corrupt-{int(time.time())}-{os.getpid()}")
        os.replace(path, dest)
        for suf in ("-wal", "-shm"):
            side = path.with_name(path.name + suf)
            if side.exists():
                os.replace(side, dest.with_name(dest.name + suf))
        return dest


__all__ = [
    "APPLICATION_ID",
    "LEGACY",
    "MISSING",
    "OURS",
    "check_writable",
    "create",
    "ensure_parent",
    "explain",
    "file_lock",
    "foreign",
    "inspect",
    "is_busy",
    "is_corruption",
    "owned",
    "set_aside",
    "size_problem",
]
