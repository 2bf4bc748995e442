"""The config builder: one object composes a compression method, the segment cache and
the question-aware coarse stage from a config (a mapping, or a JSON/TOML file).

``ctxcomp.compress``, the CLI, the proxy, batch runs and the integrations build their
compressor here, so a config means the same thing everywhere. Methods and rankers are
created by name through the registries (:mod:`ctxcomp.core.registry`): any registered
method plugs in, text or not (``method="token-classifier"`` is the default).
"""

from __future__ import annotations

import inspect
import json
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core.compressor import Compressor
from .core.registry import backends, compressors, rankers
from .core.stage import FineStage
from .errors import InputError
from .tokens import DEFAULT_READER

if TYPE_CHECKING:
    from .cache import SegmentCache, Store

# settings every method may take: passed when its factory has the parameter, an error
# when it has not and the config sets them to something else than the default
METHOD_SETTINGS = ("model", "reader", "device", "backend")


@dataclass(frozen=True)
class PipelineConfig:
    """Everything that defines a compression pipeline. Unknown keys are an error.

    ``options`` are the method's own keyword arguments — for the token classifier, the
    fields of :class:`~ctxcomp.TokenClassifierOptions` (``mode``, ``force_tokens``,
    ``keep_digits``, ``neighbor_weight``, ...) and its loading settings (``batch_tokens``,
    ``max_chunk_tokens``, ...). ``coarse``: ``None`` puts the question-aware coarse stage in
    front of a text method, ``True`` requires it, ``False`` leaves it out.
    """

    method: str = "token-classifier"  # a name in ctxcomp.core.compressors
    model: str | None = None  # token classifier: hub id or path (None: the embedded default)
    reader: str = DEFAULT_READER
    device: str = "auto"
    backend: str | None = None  # None: the model's own (the embedded default: "auto")
    options: Mapping[str, Any] = field(default_factory=dict)
    coarse: bool | None = None
    ranker: str = "bi-encoder"  # a name in ctxcomp.core.rankers, or "none"
    ranker_model: str | None = None
    order: str = "original"
    coarse_factor: float = 1.2  # chosen on the dev set (docs/evals.md)
    # SQLite file path, or a redis://, rediss:// or unix:// URL; in code also a SegmentCache
    # or a Store (e.g. one shared by several pipelines, as the proxy's per-tenant stores)
    cache: str | SegmentCache | Store | None = None
    namespace: str = "default"
    # HMAC key for cache entries (shared caches); default: $CTXCOMP_CACHE_KEY. docs/cache.md
    cache_key: str | None = field(default=None, repr=False)
    # more CoarseToFineCompressor options (sentence_weight, kind_bonus, relevance, ...)
    coarse_options: Mapping[str, Any] = field(default_factory=dict)
    # deprecated spellings of options (folded into ``options`` with a DeprecationWarning)
    mode: InitVar[str | None] = None
    force_tokens: InitVar[Sequence[str] | None] = None
    keep_digits: InitVar[bool | None] = None
    extra: InitVar[Mapping[str, Any] | None] = None

    def __post_init__(
        self,
        mode: str | None,
        force_tokens: Sequence[str] | None,
        keep_digits: bool | None,
        extra: Mapping[str, Any] | None,
    ) -> None:
        hints = _hints()
        for f in fields(self):
            v = getattr(self, f.name)
            if not _fits(v, hints[f.name]):
                raise InputError(
                    f"pipeline config {f.name!r} must be {_describe(hints[f.name])}, got {v!r}"
                )
        if isinstance(force_tokens, str) or isinstance(self.options.get("force_tokens"), str):
            raise InputError("force_tokens must be a list of strings, got a single string")
        legacy = {"mode": mode, "force_tokens": force_tokens, "keep_digits": keep_digits}
        moved = {k: v for k, v in legacy.items() if v is not None}
        if extra is not None:
            if not isinstance(extra, Mapping):
                raise InputError(f"pipeline config 'extra' must be a mapping, got {extra!r}")
            moved.update(extra)
        if moved:
            names = ", ".join(
                sorted(
                    {*(k for k in legacy if legacy[k] is not None)}
                    | ({"extra"} if extra is not None else set())
                )
            )
            warnings.warn(
                f"pipeline config {names}: set the method's options in options={{...}} "
                "(a [ctxcomp.options] table in a file); the old keys will be removed",
                DeprecationWarning,
                stacklevel=3,
            )
            both = sorted(set(moved) & set(self.options))
            if both:
                raise InputError(f"pipeline config sets {both} twice (in options and outside)")
            object.__setattr__(self, "options", {**moved, **self.options})
        object.__setattr__(self, "options", dict(self.options))
        object.__setattr__(self, "coarse_options", dict(self.coarse_options))
        if self.method not in compressors:
            raise InputError(
                f"method must be one of {list(compressors.names())}, got {self.method!r}"
            )
        if self.backend is not None and self.backend not in backends:
            backends.entry(self.backend)  # the error naming the registered backends
        if self.ranker != "none" and self.ranker not in rankers:
            known = [*rankers.names(), "none"]
            raise InputError(f"ranker must be one of {known}, got {self.ranker!r}")

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> PipelineConfig:
        names = {f.name for f in fields(cls)}
        bad = set(m) - names - set(_DEPRECATED)
        if bad:
            raise InputError(
                f"unknown pipeline config key(s) {sorted(bad)}; known: {sorted(names)}"
            )
        return cls(**dict(m))

    @classmethod
    def from_file(cls, path: str | Path) -> PipelineConfig:
        """A config from a JSON or TOML (``.toml``; keys at the top or under ``[ctxcomp]``)
        file. Every problem is an :class:`InputError` naming the file (and line/column)."""
        p = Path(path)
        name = repr(str(path))
        if p.is_dir():
            raise InputError(f"config file {name} is a folder")
        if not p.is_file():
            raise InputError(f"config file {name} does not exist")
        try:
            text = p.read_bytes().decode("utf-8")
        except OSError as exc:
            raise InputError(f"config file {name} cannot be read: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"config file {name} is not UTF-8 (byte {exc.start})") from None
        if p.suffix.lower() == ".toml":
            import tomllib

            try:
                data: Any = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:  # the message gives line and column
                raise InputError(f"config file {name} is not valid TOML: {exc}") from None
            data = data.get("ctxcomp", data)
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"config file {name} is not valid JSON: {exc.msg} "
                    f"(at line {exc.lineno}, column {exc.colno})"
                ) from None
        if not isinstance(data, Mapping):
            raise InputError(f"config file {name} must hold a mapping of settings")
        try:
            return cls.from_mapping(data)
        except InputError as exc:
            raise InputError(f"config file {name}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}  # cache objects not copied
        d["options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}
        d["coarse_options"] = dict(self.coarse_options)
        return d

    def merged(self, overrides: Mapping[str, Any]) -> PipelineConfig:
        """This config with ``overrides`` set (the same keys as :meth:`from_mapping`;
        ``options`` are merged key by key)."""
        if not overrides:
            return self
        d = self.to_dict()
        more = overrides.get("options") or {}
        if not isinstance(more, Mapping):
            raise InputError(f"pipeline config 'options' must be a mapping, got {more!r}")
        opts = {**d.pop("options"), **more}
        return PipelineConfig.from_mapping({**d, **overrides, "options": opts})


_DEPRECATED = ("mode", "force_tokens", "keep_digits", "extra")


def _hints() -> dict[str, Any]:
    from .cache import SegmentCache, Store  # light; imported when a config is made

    return typing.get_type_hints(
        PipelineConfig, localns={"SegmentCache": SegmentCache, "Store": Store}
    )


def _fits(v: Any, hint: Any) -> bool:
    """Whether ``v`` has the (simple) annotated type of a config field."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(v, h) for h in typing.get_args(hint))
    if hint is type(None):
        return v is None
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(v, bool)
    if hint is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if origin is tuple:
        return isinstance(v, (tuple, list)) and all(isinstance(x, str) for x in v)
    if origin is not None:  # Mapping[str, Any]
        return isinstance(v, origin)
    return isinstance(v, hint)


def _describe(hint: Any) -> str:
    from .cache import SegmentCache, Store

    names = {
        str: "a string",
        bool: "true or false",
        float: "a number",
        type(None): "null",
        SegmentCache: "a SegmentCache",
        Store: "a cache Store",
    }
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = typing.get_args(hint) if union else (hint,)
    out = []
    for a in args:
        o = typing.get_origin(a)
        out.append(names.get(a) or ("a list of strings" if o is tuple else "a mapping"))
    return " or ".join(out)


def build(
    config: PipelineConfig | Mapping[str, Any] | None = None, **overrides: Any
) -> Compressor[Any]:
    """Build the compressor a config describes: the method (with its cache), and the
    coarse stage in front of it when the config asks for one."""
    if config is None:
        c = PipelineConfig.from_mapping(overrides)
    elif isinstance(config, Mapping):
        c = PipelineConfig.from_mapping(config).merged(overrides)
    else:
        c = config.merged(overrides)
    method = create_method(c)
    if c.coarse is False or c.ranker == "none":
        return method
    if not isinstance(method, FineStage):
        if c.coarse is None:
            return method
        raise InputError(
            f"coarse=true: the coarse stage works in front of a text method; {c.method!r} is "
            f"a {getattr(method, 'kind', 'other')} method"
        )
    from .coarse import CoarseToFineCompressor

    opts = dict(c.coarse_options)
    if isinstance(opts.get("relevance"), Mapping):
        from .relevance import RelevanceOptions

        opts["relevance"] = RelevanceOptions(**opts["relevance"])
    return CoarseToFineCompressor(
        method, _ranker(c), order=c.order, coarse_factor=c.coarse_factor, **opts
    )


def create_method(c: PipelineConfig) -> Compressor[Any]:
    """The method a config names, created by its registered factory with the config's
    settings it takes (model, reader, device, backend, cache, namespace) and its options."""
    factory = compressors.factory(c.method)
    takes = _parameters(factory)
    defaults = PipelineConfig()
    kwargs: dict[str, Any] = {}
    for name in METHOD_SETTINGS + (("namespace",) if c.cache is not None else ()):
        value = getattr(c, name)
        if name in takes:
            kwargs[name] = value
        elif value != getattr(defaults, name):
            raise InputError(f"method {c.method!r} takes no {name!r} (got {value!r})")
    if c.cache is not None:
        if "cache" not in takes:
            raise InputError(f"method {c.method!r} takes no segment cache (got cache={c.cache!r})")
        from .cache import SegmentCache, as_cache

        if isinstance(c.cache, str):
            kwargs["cache"] = SegmentCache(c.cache, key=c.cache_key)
        elif c.cache_key is not None:
            raise InputError("cache_key goes with a cache path or URL; a cache object has its own")
        else:
            kwargs["cache"] = as_cache(c.cache)
    unknown = sorted(k for k in c.options if k not in takes or k in kwargs)
    if unknown:
        known = sorted(set(takes) - set(kwargs)) if isinstance(takes, set) else []
        raise InputError(f"method {c.method!r} has no option(s) {unknown}; known: {known}")
    method: Compressor[Any] = factory(**kwargs, **dict(c.options))
    return method


def _parameters(factory: Any) -> set[str] | _All:
    """Names of the keyword parameters ``factory`` takes (everything, with ``**kwargs``)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # builtins and the like: assume everything
        return _All()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return _All()
    return {p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY}


class _All:
    def __contains__(self, name: object) -> bool:
        return True


def _ranker(c: PipelineConfig) -> Any:
    """The config's ranker, created through the registry when a question first needs it."""
    if c.ranker in ("cross-encoder", "lm") and not c.ranker_model:
        what = "hub id or path" if c.ranker == "cross-encoder" else "causal LM hub id or path"
        raise InputError(f"ranker={c.ranker!r} needs ranker_model=<{what}>")
    from .rankers import LazyRanker

    return LazyRanker(c.ranker, c.ranker_model)
