"""Writing a trained model as a delta directory (:mod:`ctxcomp.models.delta`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.fingerprint import file_digest
from ..models.delta import FORMAT


def write_delta(
    model: Any,
    tok: Any,
    out: Path,
    *,
    base_dir: str,
    base_entry: dict[str, Any],
    names: set[str],
    meta: dict[str, Any],
    export_full: bool,
    log: Any,
) -> None:
    """The trained tensors ``names`` of ``model`` (fp16) and a config naming the base
    (its weights' SHA-256 when they are a local file); with ``export_full``, a plain
    Hugging Face checkpoint beside it (linear head only). ``meta``: name, keep_layers,
    head, trained, compressor_options, history."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").eval()
    base = dict(base_entry)
    wf = Path(base_dir) / "model.safetensors"
    if wf.is_file():
        base["weights_file"] = wf.name
        base["sha256"] = file_digest(wf)
    delta = {k: v.detach().half().contiguous() for k, v in model.state_dict().items() if k in names}
    save_file(delta, str(out / "delta.safetensors"))
    conf = {
        "format": FORMAT,
        "name": meta["name"],
        "base": base,
        "keep_layers": meta["keep_layers"],
        "head": meta["head"],
        "num_labels": 2,
        "keep_label": 1,
        "trained": meta["trained"],
        "compressor_options": meta["compressor_options"],
        "history": meta["history"][-5:],
    }
    (out / "config.json").write_text(json.dumps(conf, indent=2) + "\n", encoding="utf-8")
    if export_full:
        if meta["head"]["type"] != "linear":
            log("export_full skipped: a plain Hugging Face checkpoint needs the linear head")
        else:
            full = out.parent / "hf-checkpoint"
            model.save_pretrained(full)
            tok.save_pretrained(full)
    log(f"model written to {out} ({sum(f.stat().st_size for f in out.iterdir()) / 1e6:.2f} MB)")
