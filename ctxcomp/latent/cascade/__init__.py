"""C3 (Context Cascade Compression): a small encoder LM turns a long context into a few
latent rows per chunk that a larger decoder LM reads through ``inputs_embeds``.

>>> from ctxcomp.latent.cascade import CascadeCompressor, reconstruct, answer
>>> comp = CascadeCompressor("path/to/c3-checkpoint", cache="segments.sqlite")  # doctest: +SKIP
>>> lp = comp.compress(text, ratio=0.125)                                  # doctest: +SKIP
>>> reconstruct(comp.model, lp)                                            # doctest: +SKIP

* :class:`CascadeCompressor` — registered as ``"c3"``; latents cached per chunk;
* :func:`load_c3` / :func:`save_c3` — C3's released checkpoint layout without remote code;
* :func:`reconstruct` / :func:`answer` — decoding on :mod:`ctxcomp.latent.generate`;
* :mod:`.train` — reconstruction (+ QA) training, frozen-decoder and full variants.

Importing this package is light: torch and transformers load when a name is used.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "CascadeCompressor": ".compressor",
    "CascadeEncoder": ".model",
    "CascadeModel": ".layout",
    "CascadeTemplate": ".template",
    "answer": ".decode",
    "build": ".layout",
    "load_c3": ".layout",
    "reconstruct": ".decode",
    "save_c3": ".layout",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(mod, __name__), name)


__all__ = sorted(_LAZY)
