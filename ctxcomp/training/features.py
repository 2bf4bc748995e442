"""A frozen encoder's features: computed once, cached on disk, and the head's evaluation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .checkpoint import load_features, save_features
from .windows import IGNORE, Window, collate


def encoder_features(
    model: Any,
    windows: list[Window],
    n_tr_windows: int,
    pad_id: int,
    device: str,
    path: Path,
    *,
    max_len: int,
    log: Callable[[str], None],
    progress: Callable[[int, str], Any],
) -> tuple[Any, Any, int]:
    """(features, labels, number of training tokens): the encoder output (fp16) of every
    labelled token of ``windows``, training windows first; read from ``path`` when it
    exists, else computed and written there."""
    import torch

    if path.is_file():
        x, y, n_train = load_features(path)
        log(f"encoder features from cache ({len(y):,} tokens)")
        return x, y, n_train
    log("computing encoder features once (frozen encoder)")
    model.eval()
    enc = model.base_model
    order = sorted(range(len(windows)), key=lambda i: len(windows[i][0]))
    bar = progress(len(windows), "features")
    per = {}
    bs = max(1, 8192 // max_len)
    with torch.inference_mode():
        for s in range(0, len(order), bs):
            chunk = order[s : s + bs]
            ids, mask, lab = collate([windows[i] for i in chunk], pad_id)
            h = enc(
                input_ids=ids.to(device), attention_mask=mask.to(device)
            ).last_hidden_state.cpu()
            for r, i in enumerate(chunk):
                m = lab[r] != IGNORE
                per[i] = (h[r][m].half(), lab[r][m])
            bar.update(len(chunk))
    bar.close()
    xs = [per[i][0] for i in range(len(windows))]
    ys = [per[i][1] for i in range(len(windows))]
    n_train = int(sum(len(y) for y in ys[:n_tr_windows]))
    x, y = torch.cat(xs), torch.cat(ys)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_features(path, x, y, n_train)
    return x, y, n_train


def evaluate_head(model: Any, x: Any, y: Any, device: str) -> tuple[float | None, float | None]:
    """(loss, accuracy) of the head on cached features (None, None without any)."""
    import torch

    if len(y) == 0:
        return None, None
    model.eval()
    with torch.inference_mode():
        logits = model.classifier(x.to(device).float())
        loss = torch.nn.functional.cross_entropy(logits, y.to(device))
        acc = (logits.argmax(-1) == y.to(device)).float().mean()
    return float(loss), float(acc)


def evaluate(
    model: Any, windows: list[Window], pad_id: int, device: str
) -> tuple[float | None, float | None]:
    """(loss, accuracy) of the whole model on labelled windows (None, None without any)."""
    import torch

    if not windows:
        return None, None
    model.eval()
    tot_loss = tot_ok = n = 0.0
    with torch.inference_mode():
        for s in range(0, len(windows), 32):
            ids, mask, lab = collate(windows[s : s + 32], pad_id)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            lab = lab.to(device)
            m = lab != IGNORE
            tot_loss += float(torch.nn.functional.cross_entropy(logits[m], lab[m], reduction="sum"))
            tot_ok += float((logits[m].argmax(-1) == lab[m]).sum())
            n += int(m.sum())
    return tot_loss / max(n, 1), tot_ok / max(n, 1)
