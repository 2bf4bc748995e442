"""The proxy's configuration: where the upstream is, limits, tenancy, and the compression policy.

One file configures both ``ctxcomp compress`` and ``ctxcomp serve``: the ``[ctxcomp]`` table is
the pipeline (:class:`ctxcomp.PipelineConfig`), the ``[serve]`` table is this module's
:class:`ServeConfig`, with ``[serve.policy]``, ``[serve.routes."<path>"]`` and
``[serve.models."<glob>"]`` tables. Unknown keys are an error that names them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import ctxcomp

PART_KINDS = ("system", "user", "assistant", "tool", "document", "prompt")
ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/messages")
ON_ERROR = ("pass", "fail")
TENANCY = ("api-key", "shared")
AUTH_HEADERS = ("authorization", "x-api-key", "api-key")


def _err(msg: str) -> ctxcomp.InputError:
    return ctxcomp.InputError(msg)


def _check_keys(where: str, m: Mapping[str, Any], known: set[str]) -> None:
    bad = set(m) - known
    if bad:
        raise _err(f"unknown key(s) {sorted(bad)} in {where}; known: {sorted(known)}")


@dataclass(frozen=True)
class Policy:
    """What is compressed in a request, and to which budget.

    ``parts``: message parts that may be compressed — ``tool`` (tool results), ``document``
    (Anthropic document blocks; in an OpenAI user message with several text parts, every text
    part but the last), ``user`` (user turns of at least ``long_user_tokens``), ``prompt``
    (``/v1/completions`` prompts of at least ``long_user_tokens``), ``assistant``, ``system``.
    The budget is ``ratio`` of the compressible parts, and/or ``max_prompt_tokens`` for the
    whole request (counted with ``reader``: the upstream model's tokenizer); with both, the
    smaller target wins; with ``max_prompt_tokens`` alone a request already within it is sent
    as is. ``on_error``: ``pass`` forwards the request uncompressed (and says so in
    ``x-ctxcomp-status``), ``fail`` answers with an error and never calls the upstream.
    """

    enabled: bool = True
    parts: tuple[str, ...] = ("tool", "document", "user", "prompt")
    ratio: float | None = 0.5
    max_prompt_tokens: int | None = None
    min_part_tokens: int = 64
    long_user_tokens: int = 1024
    max_question_tokens: int = 256
    on_error: str = "pass"
    reader: str | None = None  # None: the pipeline's reader
    dropped_placeholder: str = "[omitted]"
    compress_timeout: float = 30.0  # longer (waiting for a worker included): on_error applies

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", tuple(self.parts))
        for name in ("ratio", "max_prompt_tokens"):  # TOML has no null: false or "none"
            if getattr(self, name) is False or getattr(self, name) == "none":
                object.__setattr__(self, name, None)
        bad = [p for p in self.parts if p not in PART_KINDS]
        if bad:
            raise _err(f"policy parts {bad} unknown; choose from {PART_KINDS}")
        if self.ratio is not None and (
            isinstance(self.ratio, bool)
            or not isinstance(self.ratio, (int, float))
            or not math.isfinite(self.ratio)
            or not 0.0 < self.ratio <= 1.0
        ):
            raise _err(f"policy ratio must be in (0, 1], got {self.ratio!r}")
        for name in ("max_prompt_tokens", "min_part_tokens", "long_user_tokens"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise _err(f"policy {name} must be a non-negative integer, got {v!r}")
        if self.max_prompt_tokens == 0:
            raise _err("policy max_prompt_tokens must be positive")
        if not isinstance(self.compress_timeout, (int, float)) or not self.compress_timeout > 0:
            raise _err(
                f"policy compress_timeout must be positive seconds, got {self.compress_timeout!r}"
            )
        if self.on_error not in ON_ERROR:
            raise _err(f"policy on_error must be one of {ON_ERROR}, got {self.on_error!r}")

    @property
    def active(self) -> bool:
        return (
            self.enabled
            and bool(self.parts)
            and (self.ratio is not None or self.max_prompt_tokens is not None)
        )

    def merged(self, overrides: Mapping[str, Any], where: str = "policy") -> Policy:
        known = {f.name for f in fields(Policy)}
        _check_keys(where, overrides, known)
        return replace(self, **dict(overrides)) if overrides else self


@dataclass(frozen=True)
class Override:
    """Settings for one route or one model (glob): policy keys, pipeline keys, and (routes
    only) another upstream base URL and auth header."""

    policy: Mapping[str, Any] = field(default_factory=dict)
    pipeline: Mapping[str, Any] = field(default_factory=dict)
    upstream: str | None = None
    auth_header: str | None = None

    @classmethod
    def parse(cls, where: str, m: Mapping[str, Any], *, route: bool) -> Override:
        if not isinstance(m, Mapping):
            raise _err(f"{where} must be a table/mapping")
        extra = {"pipeline", "upstream", "auth_header"} if route else {"pipeline"}
        policy = {k: v for k, v in m.items() if k not in extra}
        Policy().merged(policy, where)  # validates keys and values
        pipeline = m.get("pipeline", {})
        ctxcomp.PipelineConfig.from_mapping(pipeline)  # validates keys
        auth = m.get("auth_header")
        if auth is not None and auth not in AUTH_HEADERS:
            raise _err(f"{where}.auth_header must be one of {AUTH_HEADERS}, got {auth!r}")
        up = m.get("upstream")
        if up is not None:
            check_url(up, f"{where}.upstream")
        return cls(policy=policy, pipeline=dict(pipeline), upstream=up, auth_header=auth)


def check_url(url: Any, where: str) -> str:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise _err(f"{where} must be an http(s):// base URL, got {url!r}")
    return url.rstrip("/")


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``ctxcomp serve`` needs. ``upstream`` is the base URL an OpenAI client would
    take (e.g. ``https://api.openai.com/v1``, ``http://127.0.0.1:8000/v1`` for vLLM): the
    proxy's ``/v1/<path>`` goes to ``<upstream>/<path>``."""

    upstream: str
    upstream_api_key_env: str | None = None  # set: the proxy's own key; else clients' keys pass
    auth_header: str | None = None  # header the configured key goes in (None: by route)
    connect_timeout: float = 10.0
    read_timeout: float = 600.0  # longest silence between two upstream bytes
    write_timeout: float = 60.0
    pool_timeout: float = 30.0
    retries: int = 2  # only for failures before the request could reach the upstream
    retry_backoff: float = 0.2
    max_connections: int = 512
    max_keepalive: int = 128
    keepalive_expiry: float = 4.0  # below common servers' idle timeouts (uvicorn's is 5 s)
    client_keep_alive: float = 75.0  # idle client connections: longer than clients' pools keep them
    max_body_bytes: int = 16 * 2**20
    max_response_bytes: int = 64 * 2**20  # non-streaming bodies (streams are not buffered)
    compress_workers: int = 1
    compress_in: str = (
        "process"  # worker processes (the event loop never shares a GIL), or "thread"
    )
    max_pipelines: int = 8  # (tenant, pipeline settings) pairs loaded at once
    tenancy: str = "api-key"
    tenant_salt_env: str | None = None
    client_keys_env: str | None = None  # set: only these (comma-separated) client keys
    allow_header_overrides: bool = True
    preload: bool = True
    pipeline: Mapping[str, Any] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    routes: Mapping[str, Override] = field(default_factory=dict)
    models: Mapping[str, Override] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "upstream", check_url(self.upstream, "serve.upstream"))
        for name in (
            "connect_timeout",
            "read_timeout",
            "write_timeout",
            "pool_timeout",
            "keepalive_expiry",
            "client_keep_alive",
        ):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v > 0:
                raise _err(f"serve.{name} must be a positive number of seconds, got {v!r}")
        for name in (
            "max_connections",
            "max_keepalive",
            "max_body_bytes",
            "max_response_bytes",
            "compress_workers",
            "max_pipelines",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise _err(f"serve.{name} must be a positive integer, got {v!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise _err(f"serve.retries must be a non-negative integer, got {self.retries!r}")
        if self.compress_in not in ("process", "thread"):
            raise _err(f"serve.compress_in must be 'process' or 'thread', got {self.compress_in!r}")
        if self.tenancy not in TENANCY:
            raise _err(f"serve.tenancy must be one of {TENANCY}, got {self.tenancy!r}")
        if self.auth_header is not None and self.auth_header not in AUTH_HEADERS:
            raise _err(f"serve.auth_header must be one of {AUTH_HEADERS}, got {self.auth_header!r}")
        unknown = set(self.routes) - set(ROUTES)
        if unknown:
            raise _err(f"serve.routes {sorted(unknown)} unknown; routes are {ROUTES}")
        ctxcomp.PipelineConfig.from_mapping(self.pipeline)
        for name in ("upstream_api_key_env", "tenant_salt_env", "client_keys_env"):
            env = getattr(self, name)
            if env is not None and not os.environ.get(env):
                raise _err(f"serve.{name} names ${env}, which is not set in the environment")

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> ServeConfig:
        """From a file's whole content: ``{"ctxcomp": {...pipeline}, "serve": {...}}``."""
        _check_keys("the config file", m, {"ctxcomp", "serve"})
        serve = dict(m.get("serve") or {})
        known = {f.name for f in fields(cls)} - {"pipeline"}
        _check_keys("[serve]", serve, known)
        if "upstream" not in serve:
            raise _err("no upstream: give --upstream URL or serve.upstream in the config file")
        policy = Policy().merged(serve.pop("policy", {}) or {}, "[serve.policy]")
        routes = {
            k: Override.parse(f"[serve.routes.{k!r}]", v, route=True)
            for k, v in (serve.pop("routes", {}) or {}).items()
        }
        models = {
            k: Override.parse(f"[serve.models.{k!r}]", v, route=False)
            for k, v in (serve.pop("models", {}) or {}).items()
        }
        pipeline = dict(m.get("ctxcomp") or {})
        return cls(**serve, pipeline=pipeline, policy=policy, routes=routes, models=models)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> ServeConfig:
        """Read a TOML or JSON file; ``overrides`` (non-None) replace ``[serve]`` keys."""
        p = Path(path)
        if not p.is_file():
            raise _err(f"config file {str(path)!r} does not exist")
        try:
            if p.suffix == ".toml":
                import tomllib

                data = tomllib.loads(p.read_text(encoding="utf-8"))
            else:
                data = json.loads(p.read_text(encoding="utf-8"))
        except ValueError as exc:
            kind = p.suffix[1:] or "JSON"
            raise _err(f"config file {str(path)!r} is not valid {kind}: {exc}") from None
        if not isinstance(data, Mapping):
            raise _err(f"config file {str(path)!r} must hold a table/mapping")
        serve = {
            **(data.get("serve") or {}),
            **{k: v for k, v in overrides.items() if v is not None},
        }
        return cls.from_mapping({**data, "serve": serve})

    def to_mapping(self) -> dict[str, Any]:
        """The inverse of :meth:`from_mapping` (JSON-serialisable)."""
        serve: dict[str, Any] = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in {"pipeline", "policy", "routes", "models"}
        }
        serve["policy"] = {f.name: getattr(self.policy, f.name) for f in fields(Policy)}
        serve["policy"]["parts"] = list(self.policy.parts)
        serve["routes"] = {k: _override_mapping(v) for k, v in self.routes.items()}
        serve["models"] = {k: _override_mapping(v) for k, v in self.models.items()}
        return {"ctxcomp": dict(self.pipeline), "serve": serve}

    def upstream_for(self, route: str) -> str:
        o = self.routes.get(route)
        return o.upstream if o is not None and o.upstream else self.upstream

    def auth_header_for(self, route: str) -> str:
        o = self.routes.get(route)
        if o is not None and o.auth_header:
            return o.auth_header
        if self.auth_header:
            return self.auth_header
        return "x-api-key" if route == "/v1/messages" else "authorization"


def _override_mapping(o: Override) -> dict[str, Any]:
    out: dict[str, Any] = {**o.policy}
    if o.pipeline:
        out["pipeline"] = dict(o.pipeline)
    if o.upstream:
        out["upstream"] = o.upstream
    if o.auth_header:
        out["auth_header"] = o.auth_header
    return out
