"""Which policy applies to one request: defaults < route < model (first matching glob) <
request headers.

Headers a client may send (when ``allow_header_overrides``; they are never forwarded):

=============================== ================================================
``x-ctxcomp-compress``          ``off`` (send the request as is) or ``on``
``x-ctxcomp-ratio``             a number in (0, 1], or ``none``
``x-ctxcomp-max-prompt-tokens`` a positive integer, or ``none``
``x-ctxcomp-parts``             comma-separated part kinds (``tool,document``)
``x-ctxcomp-on-error``          ``pass`` or ``fail``
=============================== ================================================
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ctxcomp

from .config import Policy, ServeConfig

HEADER_PREFIX = "x-ctxcomp-"


@dataclass(frozen=True)
class Resolved:
    """The policy and the pipeline settings for one request."""

    policy: Policy
    pipeline: Mapping[str, Any]


def resolve(
    config: ServeConfig, route: str, model: str | None, headers: Mapping[str, str]
) -> Resolved:
    """Merge the layers; a bad header value is an :class:`ctxcomp.InputError` naming it."""
    policy = config.policy
    pipeline: dict[str, Any] = dict(config.pipeline)
    layers = []
    if route in config.routes:
        layers.append(config.routes[route])
    if isinstance(model, str):
        for pattern, o in config.models.items():
            if fnmatch.fnmatchcase(model, pattern):
                layers.append(o)
                break
    for o in layers:
        policy = policy.merged(o.policy)
        pipeline.update(o.pipeline)
    if config.allow_header_overrides:
        policy = policy.merged(header_overrides(headers))
    if policy.reader is not None:
        pipeline["reader"] = policy.reader
    return Resolved(policy, pipeline)


def header_overrides(headers: Mapping[str, str]) -> dict[str, Any]:
    """The policy keys the ``x-ctxcomp-*`` request headers set."""
    out: dict[str, Any] = {}
    for name, value in headers.items():
        name = name.lower()
        if not name.startswith(HEADER_PREFIX):
            continue
        key, v = name[len(HEADER_PREFIX) :], value.strip()
        if key == "compress":
            if v.lower() not in ("on", "off"):
                raise _bad(name, value, "'on' or 'off'")
            out["enabled"] = v.lower() == "on"
        elif key == "ratio":
            out["ratio"] = None if v.lower() == "none" else _number(name, value, float)
        elif key == "max-prompt-tokens":
            out["max_prompt_tokens"] = None if v.lower() == "none" else _number(name, value, int)
        elif key == "parts":
            out["parts"] = tuple(p.strip() for p in v.split(",") if p.strip())
        elif key == "on-error":
            out["on_error"] = v.lower()
        else:
            raise ctxcomp.InputError(
                f"unknown header {name!r}: ctxcomp reads x-ctxcomp-compress, -ratio, "
                "-max-prompt-tokens, -parts and -on-error"
            )
    try:
        Policy().merged(out)  # validate the values now, naming the header family
    except ctxcomp.InputError as exc:
        raise ctxcomp.InputError(f"bad x-ctxcomp-* header: {exc}") from None
    return out


def _number(name: str, value: str, kind: type) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise _bad(name, value, "a number" if kind is float else "an integer") from None


def _bad(name: str, value: str, want: str) -> ctxcomp.InputError:
    return ctxcomp.InputError(f"header {name}: {value!r} is not {want}")
