"""``ctxcomp train-latent``: train a CompLLM concept-embedding encoder by distillation
(mounted by ctxcomp.cli)."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer


class OnError(str, Enum):
    skip = "skip"
    fail = "fail"


def train_latent(
    data: Annotated[
        list[Path],
        typer.Argument(
            help="JSONL/JSON files of {context, question, answer} records.", show_default=False
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Run directory: checkpoints/, encoder/, history.json."),
    ] = Path("complm-run"),
    val: Annotated[
        list[Path] | None, typer.Option(help="Validation files (KL and answer log-likelihood).")
    ] = None,
    lm: Annotated[
        str, typer.Option(help="Reader LM: 'smollm2' (offline package), a hub id, a dir or a GGUF.")
    ] = "smollm2",
    segment_tokens: Annotated[int, typer.Option(help="Segment length S in LM tokens.")] = 20,
    min_rate: Annotated[float, typer.Option(help="Lowest compression rate C trained.")] = 2.0,
    max_rate: Annotated[float, typer.Option(help="Highest compression rate C trained.")] = 4.0,
    lora_r: Annotated[int, typer.Option(help="LoRA rank.")] = 8,
    encoder_layers: Annotated[
        int | None, typer.Option(help="Encode with the LM's first N layers (default: all).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Items per step.")] = 4,
    max_steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 200,
    lr: Annotated[float, typer.Option(help="Peak learning rate (warm-up, cosine decay).")] = 1e-3,
    kl_weight: Annotated[float, typer.Option(help="Weight of the answer-token KL.")] = 1.0,
    ce_weight: Annotated[float, typer.Option(help="Weight of the answer-token CE.")] = 0.1,
    max_context_tokens: Annotated[
        int, typer.Option(help="Longer contexts are bad records (reported, skipped).")
    ] = 1024,
    eval_every: Annotated[int, typer.Option(help="Validate every N steps.")] = 50,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 50,
    resume: Annotated[bool, typer.Option(help="Continue from the latest checkpoint.")] = False,
    on_error: Annotated[
        OnError, typer.Option(help="Bad records: skip (report and count) or fail.")
    ] = OnError.skip,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda, cuda:1... (default: CUDA when available).")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.")] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
) -> None:
    """Train a CompLLM encoder (LoRA + linear head) so the LM reading concept embeddings
    answers like the LM reading the full context."""
    from .errors import CtxcompError
    from .latent.lm import load_lm
    from .latent.train import LatentTrainConfig, LatentTrainer
    from .latent.train_data import read_qa

    def err(msg: str) -> None:
        print(msg, file=sys.stderr)

    try:
        cfg = LatentTrainConfig(
            lm=lm,
            out=str(out),
            segment_tokens=segment_tokens,
            min_rate=min_rate,
            max_rate=max_rate,
            lora_r=lora_r,
            lora_alpha=2 * lora_r,
            encoder_layers=encoder_layers,
            batch_size=batch_size,
            max_steps=max_steps,
            lr=lr,
            kl_weight=kl_weight,
            ce_weight=ce_weight,
            eval_every=eval_every,
            checkpoint_every=checkpoint_every,
            seed=seed,
            device=device,
            threads=threads,
        )
        model, tok = load_lm(lm, device=device, threads=threads, memo=False)

        def count(s: str) -> int:
            return len(tok.encode(s, add_special_tokens=False))

        kw = dict(on_error=on_error.value, count_tokens=count, warn=err)
        train, rep = read_qa(data, max_context_tokens=max_context_tokens, **kw)  # type: ignore[arg-type]
        err(f"train data: {rep.summary()}")
        val_items: list[Any] = []
        if val:
            val_items, vrep = read_qa(val, max_context_tokens=max_context_tokens, **kw)  # type: ignore[arg-type]
            err(f"validation data: {vrep.summary()}")
        res = LatentTrainer(cfg, log=err).run(
            train, val_items, resume=resume, model=model, tokenizer=tok
        )
    except CtxcompError as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from exc
    print(json.dumps(res))


def compress_latent(
    source: Annotated[str, typer.Argument(help="Text file to compress, or '-' for stdin.")] = "-",
    encoder: Annotated[
        str, typer.Option(help="Trained CompLLM encoder directory (ctxcomp train-latent).")
    ] = "",
    lm: Annotated[str, typer.Option(help="Reader LM the encoder was trained for.")] = "smollm2",
    ratio: Annotated[float, typer.Option(help="Positions to keep / context tokens.")] = 0.5,
    out: Annotated[
        Path | None, typer.Option(help="Write the latent prompt here (.safetensors).")
    ] = None,
    question: Annotated[
        str | None, typer.Option(help="Answer this question from the compressed context.")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Answer length limit.")] = 64,
    cache: Annotated[
        Path | None, typer.Option(help="Segment cache file (SQLite) to reuse concept embeddings.")
    ] = None,
    namespace: Annotated[str, typer.Option(help="Cache namespace (tenant).")] = "default",
) -> None:
    """Compress a text into CompLLM concept embeddings for LM; print the summary as JSON,
    save the prompt with --out, answer --question with the LM reading it."""
    from .errors import CtxcompError, InputError
    from .latent import generate
    from .latent.complm import SegmentCompressor

    try:
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {source!r} as UTF-8 text: {exc}") from exc
        comp = SegmentCompressor(lm, encoder=encoder or None, cache=cache, namespace=namespace)
        lp = comp.compress(text, ratio=ratio)
        summary = lp.to_dict()
        summary.pop("parts")
        summary["encoded_segments"] = comp.forwards
        if out is not None:
            lp.save(out)
            summary["saved"] = str(out)
        if question:
            summary["answer"] = generate(
                comp.model, comp.tokenizer, question, lp, max_new_tokens=max_new_tokens
            )
    except CtxcompError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from exc
    print(json.dumps(summary, indent=2))
