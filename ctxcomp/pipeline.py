"""The middleware: one object that composes cache, coarse and fine stages from a config.

``ctxcomp.compress``, the CLI and the integrations all build their compressor here, so a
config (a mapping, or a JSON/TOML file) means the same thing everywhere.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .cache import SegmentCache
from .compressors.base import Compressor
from .compressors.token_classifier import DEFAULT_FORCE_TOKENS, TokenClassifierCompressor
from .errors import InputError
from .tokens import DEFAULT_READER

RANKERS = ("bi-encoder", "cross-encoder", "lm", "none")


@dataclass(frozen=True)
class PipelineConfig:
    """Everything that defines a compression pipeline. Unknown keys are an error."""

    model: str | None = None  # token classifier: hub id or path (None: the embedded default)
    reader: str = DEFAULT_READER
    device: str = "auto"
    backend: str | None = None  # None: the model's own (the embedded default: "auto")
    mode: str = "global"
    force_tokens: tuple[str, ...] = DEFAULT_FORCE_TOKENS
    keep_digits: bool = False
    coarse: bool = True  # question-aware coarse stage when a question is given
    ranker: str = "bi-encoder"
    ranker_model: str | None = None
    order: str = "original"
    coarse_factor: float = 1.2  # chosen on the dev set (docs/evals.md)
    # SQLite file path, or a redis://, rediss:// or unix:// URL; in code also a SegmentCache
    # (e.g. one shared by several pipelines, as the proxy's per-tenant stores)
    cache: str | SegmentCache | None = None
    namespace: str = "default"
    # HMAC key for cache entries (shared caches); default: $CTXCOMP_CACHE_KEY. docs/cache.md
    cache_key: str | None = field(default=None, repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict)  # more TokenClassifierCompressor options
    # more CoarseToFineCompressor options (sentence_weight, kind_bonus, relevance, ...)
    coarse_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.force_tokens, str):
            raise InputError("force_tokens must be a list of strings, got a single string")
        hints = typing.get_type_hints(PipelineConfig)
        for f in fields(self):
            v = getattr(self, f.name)
            if not _fits(v, hints[f.name]):
                raise InputError(
                    f"pipeline config {f.name!r} must be {_describe(hints[f.name])}, got {v!r}"
                )
        if self.ranker not in RANKERS:
            raise InputError(f"ranker must be one of {RANKERS}, got {self.ranker!r}")
        object.__setattr__(self, "force_tokens", tuple(self.force_tokens))

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> PipelineConfig:
        names = {f.name for f in fields(cls)}
        bad = set(m) - names
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
        d = {
            f.name: getattr(self, f.name) for f in fields(self)
        }  # a cache object is shared, not copied
        d["force_tokens"] = list(self.force_tokens)
        d["extra"] = dict(self.extra)
        d["coarse_options"] = dict(self.coarse_options)
        return d


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
    names = {
        str: "a string",
        bool: "true or false",
        float: "a number",
        type(None): "null",
        SegmentCache: "a SegmentCache",
    }
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = typing.get_args(hint) if union else (hint,)
    out = []
    for a in args:
        o = typing.get_origin(a)
        out.append(names.get(a) or ("a list of strings" if o is tuple else "a mapping"))
    return " or ".join(out)


def build(config: PipelineConfig | Mapping[str, Any] | None = None, **overrides: Any) -> Compressor:
    """Build the compressor a config describes: fine stage (with cache) + coarse stage."""
    if config is None:
        config = PipelineConfig(**overrides)
    elif isinstance(config, Mapping):
        config = PipelineConfig.from_mapping({**config, **overrides})
    elif overrides:
        config = PipelineConfig.from_mapping({**config.to_dict(), **overrides})
    fine = _fine(config)
    if not config.coarse or config.ranker == "none":
        return fine
    from .coarse import CoarseToFineCompressor

    opts = dict(config.coarse_options)
    if isinstance(opts.get("relevance"), Mapping):
        from .relevance import RelevanceOptions

        opts["relevance"] = RelevanceOptions(**opts["relevance"])
    return CoarseToFineCompressor(
        fine, _ranker(config), order=config.order, coarse_factor=config.coarse_factor, **opts
    )


def _fine(c: PipelineConfig) -> TokenClassifierCompressor:
    kwargs: dict[str, Any] = dict(
        reader=c.reader,
        device=c.device,
        mode=c.mode,
        force_tokens=c.force_tokens,
        keep_digits=c.keep_digits,
        **dict(c.extra),
    )
    if c.backend is not None:
        kwargs["backend"] = c.backend
    if isinstance(c.cache, SegmentCache):
        if c.cache_key is not None:
            raise InputError(
                "cache_key applies to a cache named by path or URL; "
                "give a SegmentCache object its key with SegmentCache(..., key=...)"
            )
        kwargs["cache"] = c.cache
        kwargs["namespace"] = c.namespace
    elif c.cache is not None:
        kwargs["cache"] = SegmentCache(c.cache, key=c.cache_key)
        kwargs["namespace"] = c.namespace
    if c.model is None:
        from .models import load_default

        fine: TokenClassifierCompressor = load_default(**kwargs)
        return fine
    from .api import load_compressor

    return load_compressor(c.model, **kwargs)  # type: ignore[return-value]


def _ranker(c: PipelineConfig) -> Any:
    if c.ranker == "bi-encoder":
        from .rankers import BiEncoderRanker

        class _Lazy:  # load the embedding model only when a question arrives
            name = "bi-encoder"

            def __init__(self) -> None:
                self._r: Any = None

            def _get(self) -> Any:
                if self._r is None:
                    self._r = BiEncoderRanker(c.ranker_model)
                return self._r

            def score(self, question: str, texts: Any) -> Any:
                return self._get().score(question, texts)

            def embed(self, texts: Any) -> Any:
                return self._get().embed(texts)

            def fingerprint(self) -> str:
                from .rankers import _model_id, default_embedding_model

                return f"bi-encoder:{_model_id(c.ranker_model or default_embedding_model())}"

        return _Lazy()
    if c.ranker == "cross-encoder":
        if not c.ranker_model:
            raise InputError("ranker='cross-encoder' needs ranker_model=<hub id or path>")
        from .rankers import CrossEncoderRanker

        return CrossEncoderRanker(c.ranker_model)
    if not c.ranker_model:
        raise InputError("ranker='lm' needs ranker_model=<causal LM hub id or path>")
    from .rankers import LMRanker

    return LMRanker(c.ranker_model)
