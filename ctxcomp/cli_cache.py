"""``ctxcomp cache stats|clear``: inspect and empty the segment cache.

Mounted by ``ctxcomp/cli.py`` as ``app.add_typer(cache_app, name="cache")``.
The cache is the default SQLite file (``$CTXCOMP_CACHE`` or ``~/.cache/ctxcomp/segments.sqlite``),
another file or a Redis URL (``--path``, ``--redis``), or the one a pipeline config names
(``--config``). A file that is not a ctxcomp cache is an error, and is left untouched.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .errors import CtxcompError

cache_app = typer.Typer(
    name="cache",
    help="Inspect or clear the segment cache (SQLite file or Redis).",
    no_args_is_help=True,
    add_completion=False,
)

PathOpt = Annotated[
    str | None,
    typer.Option(
        "--path",
        help="Cache file, or a redis://, rediss:// or unix:// URL "
        "(default: $CTXCOMP_CACHE or ~/.cache/ctxcomp/segments.sqlite).",
    ),
]
RedisOpt = Annotated[
    str | None,
    typer.Option("--redis", help="Redis URL instead of a file, e.g. redis://127.0.0.1:6379/0."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="The cache a pipeline config file (JSON or TOML) names."),
]
NsOpt = Annotated[str | None, typer.Option("--namespace", "-n", help="Only this namespace.")]


def _store(path: str | None, redis_url: str | None, config: Path | None) -> Any:
    from .cache.spec import is_redis_url, open_store, url_scheme
    from .cache.sqlite_file import MISSING, inspect
    from .cache.sqlite_store import SQLiteStore, default_cache_path

    if sum(x is not None for x in (path, redis_url, config)) > 1:
        raise typer.BadParameter("give one of --path, --redis or --config")
    if redis_url is not None and not is_redis_url(redis_url):
        raise typer.BadParameter(
            f"--redis needs a redis://, rediss:// or unix:// URL, got {redis_url!r}"
        )
    where = redis_url or path
    if config is not None:
        from .cache import SegmentCache
        from .pipeline import PipelineConfig

        named = PipelineConfig.from_file(config).cache
        assert not isinstance(named, SegmentCache)  # a file names its cache by path or URL
        where = named
    if where is not None and url_scheme(where) is not None:
        return open_store(where, connect_timeout=2.0, socket_timeout=5.0)
    p = Path(where).expanduser() if where else default_cache_path()
    if inspect(p) == MISSING:  # never create a cache just to report it is empty
        raise _Missing(p)
    return SQLiteStore(p)


class _Missing(Exception):
    def __init__(self, p: Path) -> None:
        self.path = p


def _human(n: int) -> str:
    x = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if x < 1024 or unit == "GiB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return f"{n} B"


@cache_app.command("stats")
def stats(
    path: PathOpt = None,
    redis_url: RedisOpt = None,
    config: ConfigOpt = None,
    namespace: NsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Entries, bytes, namespaces and hit/miss counters of the cache."""
    from rich.console import Console

    err = Console(stderr=True, soft_wrap=True)
    try:
        store = _store(path, redis_url, config)
        try:
            info = store.info()
        finally:
            store.close()
    except _Missing as m:
        info = {
            "backend": "sqlite",
            "path": str(m.path),
            "entries": 0,
            "bytes": 0,
            "namespaces": {},
            "counters": {},
            "missing": True,
        }
    except CtxcompError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if namespace is not None:
        info["namespaces"] = {k: v for k, v in info.get("namespaces", {}).items() if k == namespace}
    c = info.get("counters", {})
    hits, misses = int(c.get("hits", 0)), int(c.get("misses", 0))
    info["hit_rate"] = hits / (hits + misses) if hits + misses else None
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return
    out = Console(soft_wrap=True)
    where = info.get("path") or info.get("url", "")
    out.print(
        f"cache: {info.get('backend')} {where}" + ("  (no file yet)" if info.get("missing") else "")
    )
    if info.get("unavailable"):
        out.print("[yellow]unavailable[/]")
    out.print(
        f"entries: {info.get('entries', 0)}   bytes: {_human(int(info.get('bytes', 0)))}"
        + (f"   on disk: {_human(int(info['file_bytes']))}" if "file_bytes" in info else "")
    )
    rate = "n/a" if info["hit_rate"] is None else f"{info['hit_rate']:.1%}"
    out.print(
        f"hits: {hits}   misses: {misses}   hit rate: {rate}   corrupt dropped: {int(c.get('corrupt', 0))}"
    )
    for ns, v in sorted(info.get("namespaces", {}).items()):
        out.print(f"  namespace {ns}: {v['entries']} entries, {_human(int(v['bytes']))}")
    for q in info.get("quarantined", []):
        out.print(f"[yellow]corrupt file moved aside:[/] {q}")


@cache_app.command("clear")
def clear(
    path: PathOpt = None,
    redis_url: RedisOpt = None,
    config: ConfigOpt = None,
    namespace: NsOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove every entry (or one namespace's) from the cache."""
    from rich.console import Console

    err = Console(stderr=True, soft_wrap=True)
    what = f"namespace {namespace!r}" if namespace else "the whole cache"
    if not yes and not typer.confirm(f"Remove {what}?", default=False, err=True):
        raise typer.Exit(1)
    try:
        store = _store(path, redis_url, config)
        try:
            if namespace is not None:
                from .cache.keys import check_namespace

                check_namespace(namespace)
            n = store.clear(namespace)
        finally:
            store.close()
    except _Missing as m:
        err.print(f"no cache file at {m.path}: nothing to clear")
        return
    except CtxcompError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    err.print(f"removed {n} entries from {what}")


__all__ = ["cache_app"]
