"""Module paths that moved in the restructure: importing an old path still works, with a
DeprecationWarning naming the new one. Each old path is a thin module that forwards every
attribute to its new module(s); nothing is imported until it is asked for."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

# old module -> the module(s) its names live in now (searched in order)
MOVED: dict[str, tuple[str, ...]] = {
    "ctxcomp.pipeline": ("ctxcomp.config",),
    "ctxcomp.html": ("ctxcomp.text.html_view",),
    "ctxcomp.cli_cache": ("ctxcomp.cli.cache",),
    "ctxcomp.cli_train": ("ctxcomp.cli.train",),
    "ctxcomp.cli_batch": ("ctxcomp.cli.batch",),
    "ctxcomp.cli_vision": ("ctxcomp.cli.vision",),
    "ctxcomp.cli_latent": ("ctxcomp.cli.latent",),
    "ctxcomp.cli_serve": ("ctxcomp.cli.serve",),
    "ctxcomp.cli_cascade": ("ctxcomp.cli.cascade",),
    # the token classifier's backends, one module each
    "ctxcomp.compressors._hf": (
        "ctxcomp.backends.hf",
        "ctxcomp.backends.onednn",
        "ctxcomp.backends.tracing",
        "ctxcomp.backends.device",
    ),
    "ctxcomp.compressors._onnx": ("ctxcomp.backends.onnx",),
    # names that say what they hold
    "ctxcomp.cache.tc": ("ctxcomp.cache.token_scores",),
    "ctxcomp.compressors._plain": ("ctxcomp.compressors.wordpiece_fastpath",),
    "ctxcomp.structure": ("ctxcomp.text.units", "ctxcomp.text.protect"),
}


class _Forward(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # a fresh module object: the new module keeps its own identity

    def exec_module(self, module: ModuleType) -> None:
        targets = MOVED[module.__name__]
        warnings.warn(
            f"{module.__name__} has moved to {' / '.join(targets)}; import from there "
            "(the old path will be removed)",
            DeprecationWarning,
            stacklevel=2,
        )
        module.__getattr__ = _forwarder(targets)  # type: ignore[method-assign]
        if any(name.startswith(module.__name__ + ".") for name in MOVED):
            module.__path__ = []  # its moved submodules are found by this finder too


def _forwarder(targets: Sequence[str]) -> Any:
    def __getattr__(name: str) -> Any:
        for t in targets:
            mod = importlib.import_module(t)
            if hasattr(mod, name):
                return getattr(mod, name)
        raise AttributeError(f"module {targets[0]!r} has no attribute {name!r}")

    return __getattr__


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Forward())


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once): an old path is always the
    forwarder, even where a stale copy of the old file lies on another finder's path (an
    editable install of an older checkout, leftovers of an upgrade)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
