"""Training the question-conditioned sentence scorer (:mod:`ctxcomp.qscorer`).

Records: ``{"question", "context", "positives": [[start, end], ...]}`` — the character
ranges of the sentences that carry the answer and its support. From each record come
windows read as ``[CLS] question [SEP] passage [SEP]`` (the scorer's own packing of
consecutive sentences): one holding the first positive sentence (starting 0-3 sentences
before it), one around the non-positive sentence sharing most question words (a hard
negative) and one at random. Every passage token is labelled 1 when its sentence is
positive, else 0 (question and special tokens are ignored), as Provence labels tokens.

What is trained: the head and the top ``train_layers`` encoder layers (the rest frozen, so
the backward pass stops there). The result is a ctxcomp delta directory (config.json +
delta.safetensors in fp16: the trained tensors only) over the packaged MiniLM encoder.
The device is CUDA, then Apple MPS, when available; ``batch_size`` and ``epochs`` are flags
of the script, and ``max_minutes`` caps the loop's wall time (the learning rate then decays
to 0 at the cap, so a time-boxed CPU run still ends on a finished schedule).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

IGNORE = -100


@dataclass
class ScorerTrainConfig:
    out: str = "qscorer"
    train_layers: int = 2
    head_hidden: int = 256
    max_len: int = 256
    max_question_tokens: int = 64
    batch_size: int = 16
    epochs: float = 2.0
    lr: float = 1e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    val_fraction: float = 0.1
    seed: int = 0
    device: str | None = None
    threads: int | None = None
    max_minutes: float | None = None  # wall-clock cap on the optimisation loop


def positive_mask(
    spans: Sequence[tuple[int, int]], positives: Sequence[Sequence[int]]
) -> np.ndarray:
    """Sentences overlapping any positive character range."""
    out = np.zeros(len(spans), dtype=bool)
    for k, (a, b) in enumerate(spans):
        out[k] = any(a < pe and ps < b for ps, pe in positives)
    return out


def record_windows(
    rec: dict[str, Any], scorer: Any, rng: random.Random
) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) of a record's positive, hard-negative and random windows."""
    from ..rankers import sentence_spans
    from ..relevance import lexical_scores

    text, q = rec["context"], rec["question"]
    spans = sentence_spans(text)
    if not spans:
        return []
    pos = positive_mask(spans, rec["positives"])
    if not pos.any():
        return []
    first = int(np.flatnonzero(pos)[0])
    lex = lexical_scores(q, [text[a:b] for a, b in spans])
    lex[pos] = -1.0
    starts = [max(0, first - rng.randint(0, 3)), int(np.argmax(lex)), rng.randrange(len(spans))]
    starts[1] = max(0, starts[1] - rng.randint(0, 2))
    out = []
    for j, s in enumerate(starts):
        while True:
            sub = spans[s : s + 40]
            a0 = sub[0][0]
            inputs, owners = scorer.windows(
                q, text[a0 : sub[-1][1]], [(a - a0, b - a0) for a, b in sub]
            )
            ids, ow = inputs[0], owners[0]
            labels = [IGNORE if o < 0 else int(pos[s + o]) for o in ow.tolist()]
            # the positive window must hold the positive sentence: start closer to it
            if j or 1 in labels or s >= first:
                break
            s += 1
        out.append((ids, labels))
    return out


def train_scorer(
    records: Sequence[dict[str, Any]],
    cfg: ScorerTrainConfig,
    *,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune the scorer on ``records``; writes the delta to ``cfg.out``; returns a report."""
    import torch
    from safetensors.torch import save_file

    from ..backends import pick_device
    from ..core.fingerprint import file_digest
    from ..models import build_model, resolve_base
    from ..qscorer import QuestionScorer
    from .trainer import PACKAGE_BASES

    if not records:
        raise InputError("no training records")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    base_entry = dict(PACKAGE_BASES["minilm"])
    base_dir = resolve_base(base_entry)
    model, tok = build_model(
        base_dir, keep_layers=None, head="mlp", head_hidden=cfg.head_hidden, num_labels=2
    )
    device = pick_device(cfg.device)
    packer = QuestionScorer(
        model=model,
        tokenizer=tok,
        device="cpu",
        max_len=cfg.max_len,
        max_question_tokens=cfg.max_question_tokens,
    )
    recs = list(records)
    rng.shuffle(recs)
    n_val = max(1, int(len(recs) * cfg.val_fraction))
    val = [w for r in recs[:n_val] for w in record_windows(r, packer, rng)]
    train = [w for r in recs[n_val:] for w in record_windows(r, packer, rng)]
    n_layers = model.config.num_hidden_layers
    trainable = [f"encoder.layer.{i}." for i in range(n_layers - cfg.train_layers, n_layers)]
    head_params, layer_params = [], []
    names: list[str] = []
    for name, p in model.named_parameters():
        if name.startswith("classifier."):
            head_params.append(p)
        elif any(t in name for t in trainable):
            layer_params.append(p)
        else:
            p.requires_grad_(False)
            continue
        names.append(name)
    model.to(device).train()
    opt = torch.optim.AdamW(
        [{"params": layer_params, "lr": cfg.lr}, {"params": head_params, "lr": cfg.head_lr}],
        weight_decay=cfg.weight_decay,
    )
    steps = max(1, math.ceil(len(train) / cfg.batch_size * cfg.epochs))
    warm = max(1, int(steps * cfg.warmup))
    clock = {"t0": time.perf_counter()}

    def lr_factor(s: int) -> float:
        # linear warm-up, then linear decay to 0 at the last step or at the time cap,
        # whichever comes first (progress is the larger of the two fractions)
        done = (s - warm) / max(1, steps - warm)
        if cfg.max_minutes:
            done = max(done, (time.perf_counter() - clock["t0"]) / (60 * cfg.max_minutes))
        return min(1.0, (s + 1) / warm) * max(0.0, 1.0 - done)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    pad = tok.pad_token_id or 0

    def batch(ws: list[tuple[list[int], list[int]]]) -> tuple[Any, Any, Any]:
        width = max(len(i) for i, _ in ws)
        ids = torch.full((len(ws), width), pad, dtype=torch.long)
        lab = torch.full((len(ws), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(ws), width), dtype=torch.long)
        for r, (i, lb) in enumerate(ws):
            ids[r, : len(i)] = torch.tensor(i)
            lab[r, : len(lb)] = torch.tensor(lb)
            mask[r, : len(i)] = 1
        return ids.to(device), mask.to(device), lab.to(device)

    def evaluate() -> dict[str, float]:
        model.eval()
        loss, n, correct, tot = 0.0, 0, 0, 0
        with torch.inference_mode():
            for k in range(0, len(val), cfg.batch_size):
                ids, mask, lab = batch(val[k : k + cfg.batch_size])
                out = model(input_ids=ids, attention_mask=mask, labels=lab)
                loss += float(out.loss) * ids.shape[0]
                n += ids.shape[0]
                m = lab != IGNORE
                correct += int((out.logits.argmax(-1)[m] == lab[m]).sum())
                tot += int(m.sum())
        model.train()
        return {"val_loss": loss / max(n, 1), "val_accuracy": correct / max(tot, 1)}

    history = [{"step": 0, **evaluate()}]
    t0, c0 = time.perf_counter(), time.process_time()
    clock["t0"] = t0
    step = 0
    while step < steps:
        rng.shuffle(train)
        for k in range(0, len(train), cfg.batch_size):
            if step >= steps or (  # the time cap stops after at least one step
                cfg.max_minutes and step and time.perf_counter() - t0 > 60 * cfg.max_minutes
            ):
                steps = step
                break
            ids, mask, lab = batch(train[k : k + cfg.batch_size])
            loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(layer_params + head_params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if progress:
                progress(step, steps, float(loss.detach()))
    history.append({"step": step, **evaluate()})
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    sd = model.state_dict()
    delta = {k: sd[k].detach().to("cpu", torch.float16).contiguous() for k in names}
    save_file(delta, str(out / "delta.safetensors"))
    weights = base_dir / "model.safetensors"
    report = {
        "format": "ctxcomp-delta-v1",
        "name": "ctxcomp-qscorer-minilm-l6",
        "kind": "question-scorer",
        "base": {**base_entry, "weights_file": "model.safetensors", "sha256": file_digest(weights)},
        "keep_layers": None,
        "head": {"type": "mlp", "hidden": cfg.head_hidden},
        "num_labels": 2,
        "keep_label": 1,
        "trained": {
            **{k: v for k, v in asdict(cfg).items() if k not in ("out", "device", "threads")},
            "records": len(recs),
            "train_windows": len(train),
            "val_windows": len(val),
            "steps": step,
            "device": device,
            "wall_seconds": round(wall, 1),
            "cpu_seconds": round(cpu, 1),
        },
        "history": history,
    }
    (out / "config.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report
