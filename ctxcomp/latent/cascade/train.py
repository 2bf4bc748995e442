"""Training C3: the decoder writes a chunk back (or answers a question) from its latents.

Objective: next-token loss on the decoder's answer given only the latent block in its
prompt (:class:`~.template.CascadeTemplate`): "Repeat the text: " -> the chunk's text
(reconstruction), and optionally a question -> its answer (QA records). Variants:

* ``frozen-decoder``: the encoder LM, the query table and the projector are trained; the
  decoder is fixed (its fingerprint, hence the latents' target, does not change);
* ``full``: the decoder is trained too (C3's own recipe: both LMs trained).

``lora_rank > 0`` trains LoRA adapters (peft) instead of the LMs' full weights; they are
merged into the weights when the model is written. Batches are drawn by a seeded
function of the step, so ``resume=True`` continues exactly from the latest checkpoint
(safetensors + JSON, :mod:`.checkpoint`). The result is written in C3's layout
(``out/model``, :func:`~.layout.save_c3`) with ``train.json`` (config, history, time).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..._deps import require
from ...errors import InputError
from . import checkpoint as ck
from .layout import CascadeModel, save_c3
from .train_data import Record, Sample, make_samples
from .train_step import batch_loss, encoder_batch

VARIANTS = ("frozen-decoder", "full")
AMP = ("none", "bf16", "fp16")


@dataclass
class CascadeTrainConfig:
    out: str = "c3-run"
    variant: str = "frozen-decoder"
    lora_rank: int = 0
    chunk_lengths: tuple[int, ...] = (128, 256)
    batch_size: int = 4
    max_steps: int | None = None
    epochs: float = 1.0
    max_minutes: float | None = None
    lr: float = 5e-5
    latent_lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: float = 0.05
    val_fraction: float = 0.05
    max_val: int = 64
    eval_every: int = 100
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    seed: int = 0
    resume: bool = False
    gradient_checkpointing: bool = False
    amp: str = "none"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise InputError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.amp not in AMP:
            raise InputError(f"amp must be one of {AMP}, got {self.amp!r}")
        if self.batch_size < 1 or self.lora_rank < 0:
            raise InputError("batch_size must be >= 1 and lora_rank >= 0")
        self.chunk_lengths = tuple(int(c) for c in self.chunk_lengths)


@dataclass
class CascadeTrainResult:
    out: Path
    steps: int
    samples_seen: int
    seconds: float
    train_loss: float
    val_loss: float | None
    val_accuracy: float | None
    history: list[dict[str, float]]


def trainable_modules(model: CascadeModel, cfg: CascadeTrainConfig) -> dict[str, Any]:
    """Set requires_grad per variant (LoRA adapters wrapped in here); name -> parameter."""
    enc = model.encoder
    if cfg.lora_rank:
        enc.encoder = _lora(enc.encoder, cfg.lora_rank)
        if cfg.variant == "full":
            model.decoder = _lora(model.decoder, cfg.lora_rank)
    else:
        enc.encoder.requires_grad_(True)
        model.decoder.requires_grad_(cfg.variant == "full")
    enc.query.requires_grad_(True)
    enc.projector.requires_grad_(True)
    if cfg.lora_rank and cfg.variant != "full":
        model.decoder.requires_grad_(False)
    named = {f"encoder.{n}": p for n, p in enc.named_parameters() if p.requires_grad}
    named.update(
        {f"decoder.{n}": p for n, p in model.decoder.named_parameters() if p.requires_grad}
    )
    return named


def _lora(lm: Any, rank: int) -> Any:
    peft = require("peft", "latent")
    targets = [
        n
        for n in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
        if any(name.endswith(n) for name, _ in lm.named_modules())
    ]
    conf = peft.LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets, lora_dropout=0.0)
    return peft.get_peft_model(lm, conf)


def _unwrap(lm: Any) -> Any:
    return lm.merge_and_unload() if hasattr(lm, "merge_and_unload") else lm


def calibrate_projector(model: CascadeModel, samples: Sequence[Sample], n: int = 8) -> float:
    """Scale a fresh projector so latent rows have the decoder's token-embedding RMS."""
    import torch

    with torch.no_grad():
        lat = model.encoder(*encoder_batch(model, samples[:n]))
        target = model.decoder.get_input_embeddings().weight.float().pow(2).mean().sqrt()
        scale = float(target / lat.float().pow(2).mean().sqrt().clamp_min(1e-8))
        model.encoder.projector.weight.mul_(scale)
        model.encoder.projector.bias.mul_(scale)
    return scale


class CascadeTrainer:
    def __init__(self, cfg: CascadeTrainConfig, log: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.log = log

    def run(
        self,
        model: CascadeModel,
        train: Sequence[Record],
        val: Sequence[Record] | None = None,
        *,
        fresh: bool = True,
    ) -> CascadeTrainResult:
        import torch

        cfg = self.cfg
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed)
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        if val is None:
            idx = list(range(len(train)))
            random.Random(cfg.seed).shuffle(idx)
            n_val = min(cfg.max_val, round(len(train) * cfg.val_fraction))
            vset = set(idx[:n_val])
            val = [train[i] for i in sorted(vset)]
            train = [train[i] for i in range(len(train)) if i not in vset]
        tok = model.encoder_tokenizer
        recon = model.template.reconstruct
        tr = make_samples(
            train, tok, chunk_lengths=cfg.chunk_lengths, reconstruct=recon, seed=cfg.seed
        )
        va = make_samples(
            val, tok, chunk_lengths=cfg.chunk_lengths, reconstruct=recon, seed=cfg.seed + 1
        )[: cfg.max_val]
        if not tr:
            raise InputError("no training samples: every record was too short or skipped")
        if max(cfg.chunk_lengths) > model.chunk_tokens:
            model.chunk_tokens = max(cfg.chunk_lengths)
        if fresh and not cfg.resume:
            self.log(f"projector scaled by {calibrate_projector(model, tr):.4g} (fresh model)")
        named = trainable_modules(model, cfg)
        if cfg.gradient_checkpointing:
            for lm in (model.encoder.encoder, model.decoder):
                lm.gradient_checkpointing_enable()
        latent_names = {n for n in named if ".query." in n or ".projector." in n}
        groups = [
            {"params": [p for n, p in named.items() if n in latent_names], "lr": cfg.latent_lr},
            {"params": [p for n, p in named.items() if n not in latent_names], "lr": cfg.lr},
        ]
        opt = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=cfg.weight_decay)
        total = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(tr) / cfg.batch_size))
        warm = max(1, int(cfg.warmup * total))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warm, max(0.05, (total - s) / max(1, total - warm)))
        )
        n_p = sum(p.numel() for p in named.values())
        self.log(
            f"{len(train)} train / {len(val)} val records -> {len(tr)} / {len(va)} samples "
            f"(chunks {list(cfg.chunk_lengths)} tokens -> {model.num_latents} latents); "
            f"variant {cfg.variant}{f', LoRA r={cfg.lora_rank}' if cfg.lora_rank else ''}; "
            f"{n_p:,} trainable parameters; {total} steps of {cfg.batch_size}"
        )
        step, history, spent = 0, [], 0.0
        ck_dir = out / "checkpoints"
        if cfg.resume and (last := ck.latest(ck_dir)) is not None:
            weights, state, otensors = ck.load_checkpoint(last, set(named))
            with torch.no_grad():
                for n, p in named.items():
                    p.copy_(weights[n])
            ck.load_optimizer(opt, otensors, state["optimizer"])
            sched.last_epoch = state["step"]  # the optimizer's groups carry their lr
            step, history, spent = state["step"], state["history"], state.get("seconds", 0.0)
            self.log(f"resumed from {last.name} (step {step})")
        bar = _progress(total, step)
        ema: float | None = None
        val_loss = val_acc = None
        t_run = time.perf_counter()
        while step < total:
            model.encoder.train()
            model.decoder.train(cfg.variant == "full")
            rng = random.Random(cfg.seed * 1_000_003 + step)
            batch = [tr[rng.randrange(len(tr))] for _ in range(cfg.batch_size)]
            with self.autocast(model):
                loss, _ = batch_loss(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(named.values()), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            lv = float(loss.detach())
            ema = lv if ema is None else 0.95 * ema + 0.05 * lv
            bar.update(1)
            bar.set_postfix(loss=f"{ema:.3f}")
            seconds = spent + time.perf_counter() - t_run
            out_of_time = cfg.max_minutes is not None and seconds >= 60 * cfg.max_minutes
            last_step = step == total or out_of_time
            if (cfg.eval_every and step % cfg.eval_every == 0) or last_step:
                val_loss, val_acc = self.evaluate(model, va)
                history.append(
                    {
                        "step": step,
                        "seconds": round(seconds, 3),
                        "train_loss": ema,
                        "val_loss": _nan(val_loss),
                        "val_accuracy": _nan(val_acc),
                    }
                )
                bar.write(
                    f"step {step} ({seconds / 60:.1f} min): train loss {ema:.3f}, "
                    f"val loss {_nan(val_loss):.3f}, val token accuracy {_nan(val_acc):.3f}"
                )
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or last_step:
                state = {
                    "history": history,
                    "seconds": seconds,
                    "config": asdict(cfg),
                    "samples_seen": step * cfg.batch_size,
                }
                ck.save_checkpoint(ck_dir, step, named, opt, state, cfg.keep_checkpoints)
            if out_of_time:
                self.log(f"stopping at step {step}: --max-minutes {cfg.max_minutes} reached")
                break
        bar.close()
        seconds = spent + time.perf_counter() - t_run
        model.encoder.encoder = _unwrap(model.encoder.encoder)
        model.decoder = _unwrap(model.decoder)
        model.encoder.eval()
        model.decoder.eval()
        dest = save_c3(model, out / "model")
        meta = {
            "config": asdict(cfg),
            "steps": step,
            "samples_seen": step * cfg.batch_size,
            "train_samples": len(tr),
            "val_samples": len(va),
            "seconds": round(seconds, 3),
            "threads": torch.get_num_threads(),
            "history": history,
        }
        (out / "train.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        self.log(f"model written to {dest} ({time.perf_counter() - t0:.0f} s in all)")
        return CascadeTrainResult(
            dest,
            step,
            step * cfg.batch_size,
            seconds,
            float(ema if ema is not None else math.nan),
            val_loss,
            val_acc,
            history,
        )

    def autocast(self, model: CascadeModel) -> Any:
        """Mixed precision around the forward (``amp``: bf16 suits CPUs with native bf16)."""
        import torch

        dev = model.encoder.query.weight.device.type
        dt = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.amp)
        return torch.autocast(dev, dtype=dt or torch.bfloat16, enabled=dt is not None)

    def evaluate(
        self, model: CascadeModel, samples: Sequence[Sample]
    ) -> tuple[float | None, float | None]:
        """Teacher-forced loss and next-token accuracy on the held-out samples."""
        import torch

        if not samples:
            return None, None
        model.encoder.eval()
        model.decoder.eval()
        tot = ok = n = 0.0
        with torch.no_grad(), self.autocast(model):
            for s in range(0, len(samples), self.cfg.batch_size):
                loss, (correct, count) = batch_loss(model, samples[s : s + self.cfg.batch_size])
                tot += float(loss) * count
                ok += correct
                n += count
        return tot / max(n, 1), ok / max(n, 1)


def _nan(x: float | None) -> float:
    return math.nan if x is None else x


def _progress(total: int, done: int) -> Any:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="c3 train", unit="step", dynamic_ncols=True, mininterval=2.0)
    bar.update(done)
    return bar


def train(
    model: CascadeModel,
    train_records: Sequence[Record],
    val_records: Sequence[Record] | None = None,
    cfg: CascadeTrainConfig | None = None,
    *,
    fresh: bool = True,
    log: Callable[[str], None] = print,
) -> CascadeTrainResult:
    """Train ``model`` in place and write it to ``cfg.out/model``; see the module doc."""
    return CascadeTrainer(cfg or CascadeTrainConfig(), log).run(
        model, train_records, val_records, fresh=fresh
    )
