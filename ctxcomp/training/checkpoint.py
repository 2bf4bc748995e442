"""Training checkpoints without pickle: one safetensors file per checkpoint.

Tensors (trainable weights, optimizer moments, torch's RNG states) are safetensors tensors;
everything else (step, history, config, optimizer hyper-parameters, scheduler counters,
Python's and NumPy's RNG states) is JSON in the file's metadata. Loading a checkpoint runs
no code from it, whoever wrote the file. Files are written to a temporary name and renamed,
so a run killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

SUFFIX = ".safetensors"
_META = "ctxcomp-checkpoint"


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}{SUFFIX}"


def list_checkpoints(ck_dir: Path) -> list[Path]:
    return sorted(ck_dir.glob(f"step-*{SUFFIX}"))


def save_checkpoint(
    path: Path,
    *,
    step: int,
    weights: dict[str, Any],
    optimizer: Any,
    scheduler: Any,
    generator: Any,
    history: list[dict[str, float]],
    config: dict[str, Any],
) -> None:
    import torch
    from safetensors.torch import save_file

    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in weights.items()}
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in opt["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"opt/{idx}/{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[k] = v
    tensors["rng/torch"] = torch.get_rng_state()
    tensors["rng/batches"] = generator.get_state()
    np_state: Any = np.random.get_state()
    py_state = random.getstate()
    meta = {
        "step": int(step),
        "history": history,
        "config": config,
        "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars},
        "scheduler": scheduler.state_dict(),
        "rng": {
            "python": [py_state[0], list(py_state[1]), py_state[2]],
            "numpy": [
                str(np_state[0]),
                np.asarray(np_state[1]).tolist(),
                int(np_state[2]),
                int(np_state[3]),
                float(np_state[4]),
            ],
        },
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={_META: json.dumps(meta)})
    os.replace(tmp, path)


def load_checkpoint(
    path: Path, *, model: Any, optimizer: Any, scheduler: Any, generator: Any, names: set[str]
) -> tuple[int, list[dict[str, float]]]:
    """Restore weights, optimizer, scheduler, RNG states and the batch-sampling
    ``generator``; (step, history). A resumed run continues exactly as an uninterrupted one."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})[_META])
        tensors = load_file(str(path))
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise InputError(f"checkpoint {path.name} cannot be read: {exc}") from None
    weights = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    missing = names - set(weights)
    if missing:
        raise InputError(
            f"checkpoint {path.name} does not match this run's trainable weights ({sorted(missing)[:3]})"
        )
    model.load_state_dict(weights, strict=False)
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("opt/"):
            _, idx, name = k.split("/", 2)
            state.setdefault(int(idx), {})[name] = v
    for idx, sc in meta["optimizer"]["scalars"].items():
        state.setdefault(int(idx), {}).update(sc)
    groups = meta["optimizer"]["param_groups"]
    for g in groups:
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    scheduler.load_state_dict(meta["scheduler"])
    py = meta["rng"]["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npr = meta["rng"]["numpy"]
    np.random.set_state((npr[0], np.asarray(npr[1], dtype=np.uint32), npr[2], npr[3], npr[4]))
    torch.set_rng_state(tensors["rng/torch"])
    generator.set_state(tensors["rng/batches"])
    return int(meta["step"]), list(meta["history"])


def save_features(path: Path, x: Any, y: Any, n_train: int) -> None:
    """Cached encoder features of a frozen-encoder run (safetensors, no pickle)."""
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file(
        {"x": x.contiguous(), "y": y.contiguous()}, str(tmp), metadata={"n_train": str(n_train)}
    )
    os.replace(tmp, path)


def load_features(path: Path) -> tuple[Any, Any, int]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        n_train = int((f.metadata() or {})["n_train"])
    d = load_file(str(path))
    return d["x"], d["y"], n_train


__all__ = [
    "checkpoint_name",
    "list_checkpoints",
    "load_checkpoint",
    "load_features",
    "save_checkpoint",
    "save_features",
]
