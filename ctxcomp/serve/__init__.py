"""``ctxcomp serve``: an OpenAI- and Anthropic-compatible proxy that compresses requests.

>>> from ctxcomp.serve import ServeConfig, create_app  # doctest: +SKIP
>>> app = create_app(ServeConfig(upstream="http://127.0.0.1:8000/v1"))  # doctest: +SKIP

Needs the ``serve`` extra (Starlette, uvicorn, httpx, prometheus-client):
``pip install 'ctxcomp[serve]'``. Importing ``ctxcomp`` never imports this package.
See docs/proxy.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import ctxcomp

from .config import Override, Policy, ServeConfig

if TYPE_CHECKING:
    from starlette.applications import Starlette

_NEEDS = ("starlette", "uvicorn", "httpx", "prometheus_client", "anyio")


def require_serve() -> None:
    """Fail with the install hint when a package of the ``serve`` extra is missing."""
    for name in _NEEDS:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ctxcomp.MissingDependencyError(
                f"{name!r} is needed by `ctxcomp serve` but is not installed: "
                "pip install 'ctxcomp[serve]'"
            ) from exc


def create_app(config: ServeConfig) -> Starlette:
    """The proxy as an ASGI app (see :mod:`ctxcomp.serve.app`)."""
    require_serve()
    from .app import create_app as _create

    return _create(config)


__all__ = ["Override", "Policy", "ServeConfig", "create_app", "require_serve"]
