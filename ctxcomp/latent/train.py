"""Training a CompLLM encoder by distillation from the full-context LM.

For each (context, question, answer) item the LM reads the full context (teacher, frozen)
and, separately, the context's concept embeddings (student: the same frozen LM reading the
rows the encoder makes); the loss is the KL divergence from the teacher's next-token
distribution to the student's on the answer tokens, plus ``ce_weight`` x the cross-entropy
of the answer tokens (the LM's own greedy answers, when the data holds those). Only the
encoder's LoRA and linear head are trained. Each item is compressed at a rate drawn from
[min_rate, max_rate], so one encoder serves every budget in that range.

Checkpoints (``out/checkpoints/step-N/``: ``encoder.safetensors``, ``optimizer.safetensors``,
``state.json``) are written every ``checkpoint_every`` steps; ``resume=True`` continues from
the latest. Validation (mean KL and answer log-likelihood, student vs teacher) runs every
``eval_every`` steps; the final encoder is written to ``out/encoder``.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._deps import require
from ..errors import InputError
from .encoder import ConceptEncoder, EncoderConfig
from .generate import answer_window_logits, build_inputs
from .prompt import LatentPart, Part, TextPart
from .segments import RATE_STEP, Segment, rows_for, segment_documents
from .train_data import QAExample


@dataclass
class LatentTrainConfig:
    lm: str = "smollm2"
    out: str = "complm-run"
    segment_tokens: int = 20
    min_rate: float = 2.0
    max_rate: float = 4.0
    lora_r: int = 8
    lora_alpha: int = 16
    encoder_layers: int | None = None
    batch_size: int = 4
    max_steps: int = 200
    lr: float = 1e-3
    warmup: int = 10
    kl_weight: float = 1.0
    ce_weight: float = 0.1
    eval_every: int = 50
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    seed: int = 0
    device: str | None = None
    threads: int | None = None


def item_parts(
    encoder: ConceptEncoder, tokenizer: Any, context: str, rate: float, *, grad: bool
) -> list[Part]:
    """The context of one item as parts: CE rows for its segments (with gradients when
    ``grad``) and its ``<ctxcomp:keep>`` spans as text."""
    torch = require("torch")
    pieces, _ = segment_documents(tokenizer, [context], encoder.cfg.segment_tokens)
    segs = [p for p in pieces if isinstance(p, Segment)]
    ks = [rows_for(len(s.ids), rate) for s in segs]
    with torch.set_grad_enabled(grad):
        rows = encoder.encode([list(s.ids) for s in segs], ks) if segs else []
    parts: list[Part] = []
    run: list[Any] = []
    it = iter(rows)
    for p in pieces:
        if isinstance(p, Segment):
            run.append(next(it))
            continue
        if run:
            parts.append(LatentPart(torch.cat(run)))
            run = []
        parts.append(TextPart(p.text, "keep"))
    if run:
        parts.append(LatentPart(torch.cat(run)))
    return parts


def answer_logits(model: Any, batch: Any) -> list[Any]:
    """Per row, the logits ``[a, vocab]`` that predict its labelled answer tokens."""
    out, lab = answer_window_logits(model, batch)
    return [out[i][lab[i] >= 0] for i in range(out.shape[0])]


def distill_loss(
    model: Any,
    tokenizer: Any,
    encoder: ConceptEncoder,
    items: Sequence[QAExample],
    rates: Sequence[float],
    *,
    kl_weight: float,
    ce_weight: float,
    grad: bool = True,
) -> tuple[Any, dict[str, float]]:
    """(loss, stats) for a batch: KL(teacher || student) + ce_weight x CE on answer tokens."""
    torch = require("torch")
    qs = [x.question for x in items]
    ans = [x.answer for x in items]
    with torch.no_grad():
        t_batch = build_inputs(model, tokenizer, qs, [x.context for x in items], answers=ans)
        teacher = [t.log_softmax(-1) for t in answer_logits(model, t_batch)]
    parts = [item_parts(encoder, tokenizer, x.context, r, grad=grad) for x, r in zip(items, rates)]
    with torch.set_grad_enabled(grad):
        s_batch = build_inputs(model, tokenizer, qs, parts, answers=ans, check=False)
        student = [s.log_softmax(-1) for s in answer_logits(model, s_batch)]
        a_ids = [s_batch.labels[i][s_batch.labels[i] >= 0] for i in range(len(items))]
        kl = torch.stack(
            [(t.exp() * (t - s)).sum(-1).mean() for t, s in zip(teacher, student)]
        ).mean()
        s_ll = [s.gather(1, a[:, None]).sum() for s, a in zip(student, a_ids)]
        ce = -torch.stack([ll / len(a) for ll, a in zip(s_ll, a_ids)]).mean()
        loss = kl_weight * kl + ce_weight * ce
    t_ll = [float(t.gather(1, a[:, None]).sum()) for t, a in zip(teacher, a_ids)]
    stats = {
        "kl": float(kl.detach()),
        "ce": float(ce.detach()),
        "student_ll": sum(float(x.detach()) for x in s_ll) / len(items),
        "teacher_ll": sum(t_ll) / len(items),
    }
    return loss, stats


def _rate(rng: random.Random, cfg: LatentTrainConfig) -> float:
    steps = round((cfg.max_rate - cfg.min_rate) / RATE_STEP)
    return cfg.min_rate + RATE_STEP * rng.randint(0, max(steps, 0))


class LatentTrainer:
    """Runs :class:`LatentTrainConfig` on QA items; ``log`` receives progress lines."""

    def __init__(self, cfg: LatentTrainConfig, log: Callable[[str], None] = print) -> None:
        if cfg.batch_size < 1 or cfg.max_steps < 1:
            raise InputError("batch_size and max_steps must be at least 1")
        self.cfg = cfg
        self.log = log

    def run(
        self,
        train: Sequence[QAExample],
        val: Sequence[QAExample] = (),
        *,
        resume: bool = False,
        model: Any = None,
        tokenizer: Any = None,
    ) -> dict[str, Any]:
        torch = require("torch")
        cfg = self.cfg
        if not train:
            raise InputError("no training items")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if model is None:
            from .lm import load_lm

            model, tokenizer = load_lm(cfg.lm, device=cfg.device, memo=False)
        model.requires_grad_(False)
        enc_cfg = EncoderConfig(
            cfg.segment_tokens,
            cfg.min_rate,
            cfg.max_rate,
            cfg.lora_r,
            cfg.lora_alpha,
            encoder_layers=cfg.encoder_layers,
        )
        encoder = ConceptEncoder(model, tokenizer, enc_cfg, lm_spec=cfg.lm)
        params = encoder.trainable()
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
        out = Path(cfg.out)
        ck_dir = out / "checkpoints"
        rng = random.Random(cfg.seed)
        step, history = 0, list[dict[str, Any]]()
        if resume:
            step, history, rng = self._resume(ck_dir, encoder, opt, params)
        t0 = time.monotonic()
        from rich.progress import Progress

        with Progress(transient=True) as prog:
            task = prog.add_task("train-latent", total=cfg.max_steps, completed=step)
            while step < cfg.max_steps:
                for g in opt.param_groups:
                    g["lr"] = cfg.lr * _schedule(step, cfg)
                batch = [train[rng.randrange(len(train))] for _ in range(cfg.batch_size)]
                rates = [_rate(rng, cfg) for _ in batch]
                encoder.lm.train()
                loss, st = distill_loss(
                    model,
                    tokenizer,
                    encoder,
                    batch,
                    rates,
                    kl_weight=cfg.kl_weight,
                    ce_weight=cfg.ce_weight,
                )
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                encoder.lm.eval()
                step += 1
                history.append({"step": step, "loss": float(loss.detach()), **st})
                prog.update(task, completed=step)
                if step % cfg.eval_every == 0 or step == cfg.max_steps:
                    v = self.validate(model, tokenizer, encoder, val) if val else {}
                    history[-1].update({f"val_{k}": x for k, x in v.items()})
                    recent = history[-cfg.eval_every :]
                    kl = sum(h["kl"] for h in recent) / len(recent)
                    self.log(
                        f"step {step}: train kl {kl:.3f}"
                        + "".join(f", val {k} {x:.3f}" for k, x in v.items())
                        + f" ({time.monotonic() - t0:.0f} s)"
                    )
                if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
                    self._checkpoint(ck_dir, step, encoder, opt, params, history, rng)
        seconds = time.monotonic() - t0
        encoder.info.notes = {
            "steps": step,
            "batch_size": cfg.batch_size,
            "samples": step * cfg.batch_size,
            "train_items": len(train),
            "seconds_this_run": round(seconds, 1),
            "device": str(encoder.device),
            "threads": torch.get_num_threads(),
            "config": asdict(cfg),
            "final": history[-1] if history else {},
        }
        encoder.save(out / "encoder")
        (out / "history.json").write_text(json.dumps(history, indent=1))
        return {"encoder": str(out / "encoder"), "steps": step, "seconds": seconds}

    def validate(
        self, model: Any, tokenizer: Any, encoder: ConceptEncoder, val: Sequence[QAExample]
    ) -> dict[str, float]:
        """Mean KL and answer log-likelihoods on ``val`` at the middle rate (fixed)."""
        torch = require("torch")
        rate = (encoder.cfg.min_rate + encoder.cfg.max_rate) / 2
        rate = math.floor(rate / RATE_STEP) * RATE_STEP
        tot: dict[str, float] = {}
        with torch.no_grad():
            for x in val:
                _, st = distill_loss(
                    model, tokenizer, encoder, [x], [rate], kl_weight=1, ce_weight=0, grad=False
                )
                for k, v in st.items():
                    tot[k] = tot.get(k, 0.0) + v / len(val)
        return {k: tot[k] for k in ("kl", "student_ll", "teacher_ll")}

    # -- checkpoints (safetensors + JSON) ----------------------------------------------

    def _checkpoint(
        self,
        ck_dir: Path,
        step: int,
        encoder: ConceptEncoder,
        opt: Any,
        params: list[Any],
        history: list[dict[str, Any]],
        rng: random.Random,
    ) -> None:
        from safetensors.torch import save_file

        torch = require("torch")
        d = ck_dir / f"step-{step:07d}"
        tmp = ck_dir / f".step-{step:07d}.{os.getpid()}.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        encoder.save(tmp, half=False)
        tensors = {"torch_rng": torch.get_rng_state()}
        for i, p in enumerate(params):
            for k, v in opt.state.get(p, {}).items():
                if isinstance(v, torch.Tensor):
                    tensors[f"opt.{i}.{k}"] = v.detach().cpu().contiguous()
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        state = {"step": step, "history": history, "config": asdict(self.cfg)}
        state["python_rng"] = _rng_json(rng)
        (tmp / "state.json").write_text(json.dumps(state))
        os.replace(tmp, d)
        for old in sorted(ck_dir.glob("step-*"))[: -max(1, self.cfg.keep_checkpoints)]:
            for f in old.iterdir():
                f.unlink()
            old.rmdir()

    def _resume(
        self, ck_dir: Path, encoder: ConceptEncoder, opt: Any, params: list[Any]
    ) -> tuple[int, list[dict[str, Any]], random.Random]:
        from safetensors.torch import load_file

        torch = require("torch")
        cks = sorted(ck_dir.glob("step-*"))
        if not cks:
            self.log("no checkpoint to resume from: starting at step 0")
            return 0, [], random.Random(self.cfg.seed)
        last = cks[-1]
        state = json.loads((last / "state.json").read_text())
        encoder.load_state_dict(load_file(str(last / "encoder.safetensors")))
        tensors = load_file(str(last / "optimizer.safetensors"))
        for i, p in enumerate(params):
            st = {k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"opt.{i}.")}
            if st:
                opt.state[p] = st
        torch.set_rng_state(tensors["torch_rng"])
        rng = random.Random()
        rng.setstate(_rng_state(state["python_rng"]))
        self.log(f"resumed from {last.name}")
        return int(state["step"]), list(state["history"]), rng


def _schedule(step: int, cfg: LatentTrainConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.max_steps - cfg.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def _rng_json(rng: random.Random) -> list[Any]:
    v, state, gauss = rng.getstate()
    return [v, list(state), gauss]


def _rng_state(obj: list[Any]) -> tuple[Any, ...]:
    return (obj[0], tuple(obj[1]), obj[2])
