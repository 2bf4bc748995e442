"""``ctxcomp c3``: train C3 cascades, compress with them, reconstruct (mounted by ctxcomp.cli)."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

c3_app = typer.Typer(
    help="C3 latent compression: a small LM encodes context into latents a decoder LM reads.",
    no_args_is_help=True,
)


class OnError(str, Enum):
    skip = "skip"
    fail = "fail"


class Variant(str, Enum):
    frozen_decoder = "frozen-decoder"
    full = "full"


class Amp(str, Enum):
    none = "none"
    bf16 = "bf16"
    fp16 = "fp16"


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2) from None


@c3_app.command()
def train(
    data: Annotated[
        list[Path],
        typer.Argument(help="JSONL/JSON: {text} and/or {context, question, answer} records."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory.")] = Path("c3-run"),
    val: Annotated[list[Path] | None, typer.Option(help="Validation files.")] = None,
    init: Annotated[
        Path | None, typer.Option(help="Start from a C3-layout checkpoint (else a fresh model).")
    ] = None,
    encoder: Annotated[str, typer.Option(help="Encoder LM: 'smollm2', a hub id or a dir.")] = (
        "smollm2"
    ),
    decoder: Annotated[str, typer.Option(help="Decoder LM: 'smollm2', a hub id or a dir.")] = (
        "smollm2"
    ),
    encoder_layers: Annotated[
        int | None, typer.Option(help="Encode with the encoder's first N layers (default: all).")
    ] = None,
    num_latents: Annotated[int, typer.Option(help="Latent rows per chunk (N).")] = 32,
    chunk: Annotated[
        list[int] | None, typer.Option(help="Chunk lengths trained (tokens); repeatable.")
    ] = None,
    template: Annotated[str, typer.Option(help="'c3' (C3's system turn) or 'compact'.")] = "c3",
    variant: Annotated[Variant, typer.Option(help="What is trained.")] = Variant.frozen_decoder,
    lora_rank: Annotated[
        int, typer.Option(help="LoRA adapters of rank r instead of full weights.")
    ] = 0,
    batch_size: Annotated[int, typer.Option(help="Samples per step.")] = 4,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps.")] = None,
    epochs: Annotated[float, typer.Option(help="Epochs (ignored with --max-steps).")] = 1.0,
    max_minutes: Annotated[
        float | None, typer.Option(help="Stop (checkpoint and write the model) after this time.")
    ] = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate of the LMs' weights.")] = 5e-5,
    latent_lr: Annotated[float, typer.Option(help="Learning rate of query and projector.")] = 1e-3,
    amp: Annotated[Amp, typer.Option(help="Mixed precision of the forward.")] = Amp.none,
    eval_every: Annotated[int, typer.Option(help="Validate every N steps.")] = 100,
    max_val: Annotated[int, typer.Option(help="Validation samples (at most).")] = 64,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 100,
    resume: Annotated[bool, typer.Option(help="Continue from the latest checkpoint.")] = False,
    on_error: Annotated[OnError, typer.Option(help="Bad records: skip or fail.")] = OnError.skip,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:1 | mps")] = "auto",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
) -> None:
    """Train a C3 cascade on reconstruction (and QA) records; writes OUT/model (C3 layout)."""
    from .errors import CtxcompError
    from .latent.cascade.train import CascadeTrainConfig
    from .latent.cascade.train import train as run_train
    from .latent.cascade.train_data import read_records

    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
        warn = lambda m: typer.echo(m, err=True)  # noqa: E731
        recs, rep = read_records(data, on_error=on_error.value, warn=warn)
        vrecs, vrep = read_records(val, on_error=on_error.value, warn=warn) if val else (None, None)
        cfg = CascadeTrainConfig(
            out=str(out), variant=variant.value, lora_rank=lora_rank,
            chunk_lengths=tuple(chunk or (128, 256)), batch_size=batch_size,
            max_steps=max_steps, epochs=epochs, max_minutes=max_minutes, lr=lr,
            latent_lr=latent_lr, amp=amp.value, eval_every=eval_every, max_val=max_val,
            checkpoint_every=checkpoint_every, resume=resume, seed=seed,
        )  # fmt: skip
        model = _model(init, encoder, decoder, encoder_layers, num_latents, template, device, cfg)
        res = run_train(model, recs, vrecs, cfg, fresh=init is None, log=warn)
    except CtxcompError as exc:
        _fail(exc)
        return
    typer.echo(f"training data: {rep.summary()}", err=True)
    if vrep is not None:
        typer.echo(f"validation data: {vrep.summary()}", err=True)
    summary = {
        "model": str(res.out), "steps": res.steps, "samples_seen": res.samples_seen,
        "seconds": round(res.seconds, 1), "train_loss": res.train_loss,
        "val_loss": res.val_loss, "val_accuracy": res.val_accuracy,
        "skipped_records": rep.n_skipped + (vrep.n_skipped if vrep else 0),
    }  # fmt: skip
    sys.stdout.write(json.dumps(summary) + "\n")


def _model(
    init: Path | None,
    encoder: str,
    decoder: str,
    encoder_layers: int | None,
    num_latents: int,
    template: str,
    device: str,
    cfg: Any,
) -> Any:
    from .errors import InputError
    from .latent import load_lm
    from .latent.cascade.layout import build, load_c3, resolve_device_dtype
    from .latent.cascade.model import truncate_layers
    from .latent.cascade.template import C3, COMPACT

    dev, _ = resolve_device_dtype(device, "float32")
    if init is not None:
        return load_c3(init, device=dev, dtype="float32")
    templates = {"c3": C3, "compact": COMPACT}
    if template not in templates:
        raise InputError(f"template must be one of {sorted(templates)}, got {template!r}")
    enc_lm, enc_tok = load_lm(encoder, device=dev, memo=False)
    dec_lm, dec_tok = load_lm(decoder, device=dev, memo=False)
    if encoder_layers:
        truncate_layers(enc_lm, encoder_layers)
    return build(
        enc_lm, dec_lm, enc_tok, dec_tok, num_latents=num_latents,
        template=templates[template], chunk_tokens=max(cfg.chunk_lengths),
    )  # fmt: skip


@c3_app.command()
def compress(
    model: Annotated[Path, typer.Argument(help="C3-layout checkpoint directory.")],
    source: Annotated[str, typer.Argument(help="Text file to compress, or '-' for stdin.")] = "-",
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the latent prompt (.safetensors).")
    ] = Path("prompt.c3.safetensors"),
    ratio: Annotated[float | None, typer.Option(help="Latent rows per context token.")] = None,
    target_tokens: Annotated[int | None, typer.Option(help="Latent rows in all.")] = None,
    cache: Annotated[Path | None, typer.Option(help="SQLite segment cache file.")] = None,
    namespace: Annotated[str, typer.Option(help="Cache namespace (tenant).")] = "default",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps")] = "auto",
) -> None:
    """Compress a text into C3 latents for the checkpoint's decoder; prints a JSON summary."""
    from .cli import read_text
    from .errors import CtxcompError
    from .latent.cascade import CascadeCompressor

    try:
        text = read_text(source)
        comp = CascadeCompressor(model, cache=cache, namespace=namespace, device=device)
        lp = comp.compress(text, ratio=ratio, target_tokens=target_tokens)
        lp.save(out)
    except CtxcompError as exc:
        _fail(exc)
        return
    summary = {"out": str(out), "original_tokens": lp.original_tokens,
               "latent_rows": lp.compressed_tokens, "chunks": lp.meta["chunks"],
               "target": lp.target, "notes": list(lp.notes)}  # fmt: skip
    sys.stdout.write(json.dumps(summary) + "\n")


@c3_app.command()
def reconstruct(
    model: Annotated[Path, typer.Argument(help="C3-layout checkpoint directory.")],
    prompt: Annotated[
        Path, typer.Argument(help="A latent prompt written by 'ctxcomp c3 compress'.")
    ],
    question: Annotated[
        str | None, typer.Option(help="Answer this question instead of writing the text back.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps")] = "auto",
) -> None:
    """Decode a latent prompt: the text back, or the answer to --question."""
    from .errors import CtxcompError
    from .latent import LatentPrompt
    from .latent.cascade import answer, load_c3
    from .latent.cascade import reconstruct as run_reconstruct

    try:
        m = load_c3(model, device=device)
        lp = LatentPrompt.load(prompt)
        text = answer(m, question, lp) if question else run_reconstruct(m, lp)
    except CtxcompError as exc:
        _fail(exc)
        return
    sys.stdout.write(text + "\n")
