"""Training checkpoints as safetensors + JSON (never pickle).

A checkpoint directory ``step-0000123/`` holds ``trainable.safetensors`` (the trained
tensors by parameter name), ``optimizer.safetensors`` (AdamW's per-parameter tensors,
flattened as ``<param index>.<name>``) and ``state.json`` (step, history, the run's config,
the optimizer's hyper-parameters and the scheduler's counter). Written to a temporary
directory and renamed, so a killed run never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ...errors import InputError

STATE = "state.json"
TRAINABLE = "trainable.safetensors"
OPTIMIZER = "optimizer.safetensors"


def optimizer_tensors(opt: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, JSON) of an optimizer's state dict."""
    import torch

    sd = opt.state_dict()
    tensors: dict[str, Any] = {}
    scalars: dict[str, Any] = {}
    for idx, st in sd["state"].items():
        for name, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{idx}.{name}"] = v.detach().to("cpu").contiguous()
            else:
                scalars[f"{idx}.{name}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(opt: Any, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    for key, v in meta.get("scalars", {}).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    ck_dir: Path,
    step: int,
    trainable: dict[str, Any],
    opt: Any,
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    from safetensors.torch import save_file

    final = ck_dir / f"step-{step:07d}"
    tmp = ck_dir / f".tmp-step-{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(
        {k: v.detach().to("cpu").contiguous() for k, v in trainable.items()}, str(tmp / TRAINABLE)
    )
    ot, om = optimizer_tensors(opt)
    save_file(ot, str(tmp / OPTIMIZER))
    (tmp / STATE).write_text(
        json.dumps({**state, "step": step, "optimizer": om}, indent=1, default=str) + "\n",
        encoding="utf-8",
    )
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in sorted(ck_dir.glob("step-*"))[: -max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(ck_dir: Path) -> Path | None:
    cks = sorted(p for p in ck_dir.glob("step-*") if (p / STATE).is_file())
    return cks[-1] if cks else None


def load_checkpoint(path: Path, names: set[str]) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """(trainable tensors, state JSON, optimizer tensors) of a checkpoint, checked against
    this run's trainable parameter names."""
    from safetensors.torch import load_file

    weights = load_file(str(path / TRAINABLE))
    if set(weights) != names:
        miss, extra = sorted(names - set(weights))[:3], sorted(set(weights) - names)[:3]
        raise InputError(
            f"checkpoint {path.name} does not match this run's trainable weights "
            f"(missing {miss}, unexpected {extra}): was it written by another variant?"
        )
    state = json.loads((path / STATE).read_text(encoding="utf-8"))
    return weights, state, load_file(str(path / OPTIMIZER))
