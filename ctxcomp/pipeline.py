"""The middleware: one object that composes cache, coarse and fine stages from a config.

``ctxcomp.compress``, the CLI and the integrations all build their compressor here, so a
config (a mapping, or a JSON/TOML file) means the same thing everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

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
    cache: str | None = None  # SQLite file path, or a redis:// URL
    namespace: str = "default"
    extra: Mapping[str, Any] = field(default_factory=dict)  # more TokenClassifierCompressor options
    # more CoarseToFineCompressor options (sentence_weight, kind_bonus, relevance, ...)
    coarse_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
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
        p = Path(path)
        if not p.is_file():
            raise InputError(f"config file {str(path)!r} does not exist")
        raw = p.read_bytes()
        if p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(raw.decode("utf-8"))
            data = data.get("ctxcomp", data)
        else:
            data = json.loads(raw)
        if not isinstance(data, Mapping):
            raise InputError(f"config file {str(path)!r} must hold a mapping")
        return cls.from_mapping(data)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["force_tokens"] = list(self.force_tokens)
        d["extra"] = dict(self.extra)
        d["coarse_options"] = dict(self.coarse_options)
        return d


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
    if c.cache is not None:
        kwargs["cache"] = c.cache
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
