"""The ``ctxcomp`` command line: one Typer app, one line per subcommand.

Each subcommand lives in a module of its own — a ``typer.Typer()`` group or a command
function — and is mounted below by one :func:`mount` line naming it as
``"module:attribute"`` (imported when the CLI starts).
"""

from __future__ import annotations

import importlib
from typing import Any

import typer

app = typer.Typer(
    name="ctxcomp",
    help="Compress prompt context for LLMs: exact token budgets, provenance, caching.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Compress prompt context for LLMs: exact token budgets, provenance, caching."""


def mount(name: str, target: str, help: str | None = None) -> None:
    """Add the subcommand ``name``: ``target`` (``"package.module:attribute"``) is a
    ``typer.Typer`` group or a command function (its docstring is its help)."""
    module, _, attr = target.partition(":")
    obj: Any = getattr(importlib.import_module(module), attr)
    if isinstance(obj, typer.Typer):
        app.add_typer(obj, name=name, help=help)
    else:
        app.command(name, help=help)(obj)


mount("compress", "ctxcomp.cli.compress:compress")
mount("cache", "ctxcomp.cli.cache:cache_app", "Inspect and clear the segment cache.")
mount("train", "ctxcomp.cli.train:train_app", "Train a token-classification compressor.")
mount("batch", "ctxcomp.cli.batch:batch")
mount("serve", "ctxcomp.cli.serve:serve_command")
mount("vision", "ctxcomp.cli.vision:vision_app", "Prune or merge visual tokens of pictures.")
mount(
    "train-latent", "ctxcomp.cli.latent:train_latent", "Train a CompLLM concept-embedding encoder."
)
mount("c3", "ctxcomp.cli.cascade:c3_app", "C3 latent compression: train, compress, reconstruct.")
mount(
    "compress-latent",
    "ctxcomp.cli.latent:compress_latent",
    "Compress into CompLLM concept embeddings.",
)


def main() -> None:
    app()


__all__ = ["app", "main", "mount"]
