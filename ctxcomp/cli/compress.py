"""``ctxcomp compress``: compress a file or stdin to a budget (mounted by ctxcomp.cli)."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import CtxcompError, InputError
from ..validate import check_text

if TYPE_CHECKING:
    from rich.console import Console

    from ..budget import Budget
    from ..core.compressor import Compressor
    from ..result import CompressionResult


class Mode(str, Enum):
    global_ = "global"
    per_chunk = "per_chunk"


def read_text(source: str) -> str:
    """Read FILE or stdin ('-') as strict UTF-8, checked by :func:`ctxcomp.validate.check_text`."""
    if source == "-":
        data = sys.stdin.buffer.read()
        name = "<stdin>"
    else:
        p = Path(source)
        if not p.exists():
            raise InputError(f"input file {source!r} does not exist")
        if p.is_dir():
            raise InputError(f"input {source!r} is a directory, not a file")
        data = p.read_bytes()
        name = source
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name} is not valid UTF-8: byte {exc.start} ({data[exc.start : exc.start + 1]!r}) "
            f"cannot be decoded; convert the file to UTF-8 first"
        ) from exc
    if text.startswith("\ufeff"):
        text = text[1:]
    check_text(text, name)
    if not text.strip():
        raise InputError(f"{name} is empty or whitespace only: there is nothing to compress")
    return text


def compress(
    source: Annotated[str, typer.Argument(help="Text file to compress, or '-' for stdin.")] = "-",
    ratio: Annotated[
        float | None, typer.Option(help="Fraction of tokens to keep, in (0, 1].")
    ] = None,
    target_tokens: Annotated[int | None, typer.Option(help="Token budget for the output.")] = None,
    question: Annotated[
        str | None, typer.Option(help="The question the context must answer.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Hub id or local path of a token-classification model.")
    ] = None,
    reader: Annotated[
        str | None,
        typer.Option(
            help="Tokenizer the budget is counted in: cl100k_base (default), o200k_base, hf:<path>."
        ),
    ] = None,
    mode: Annotated[
        Mode | None,
        typer.Option(help="global (default): one exact budget; per_chunk: LLMLingua-2's rule."),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="Inference backend, a name registered in ctxcomp.core.backends: torch, torch-bf16, onnx, torch-int8, onnx-int8, or auto (bf16 on CPUs that compute it natively); default: the model's own (auto for the embedded default, torch for others)"
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="auto (default), cpu, cuda, cuda:N, mps.")
    ] = None,
    order: Annotated[
        str | None,
        typer.Option(
            help="With --question: documents in 'original' (default) or 'relevance' order."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="Pipeline config file (JSON or TOML); flags override it.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result object as JSON.")
    ] = False,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Write a page showing kept and dropped words.")
    ] = None,
) -> None:
    """Compress FILE (or stdin) to a budget and print the compressed text."""
    from rich.console import Console

    err = Console(stderr=True, soft_wrap=True)
    try:
        text = read_text(source)
        if html_out is not None:
            check_writable(html_out, "--html")  # before the work, not after it
        if (ratio is None) == (target_tokens is None):
            raise InputError("give exactly one of --ratio or --target-tokens")
        from ..budget import Budget
        from ..config import PipelineConfig, build

        budget = Budget(ratio=ratio, target_tokens=target_tokens)
        base = PipelineConfig.from_file(config) if config is not None else PipelineConfig()
        flags: dict[str, Any] = {
            "model": model,
            "reader": reader,
            "backend": backend,
            "device": device,
            "order": order,
        }
        flags = {k: v for k, v in flags.items() if v is not None}
        if mode is not None:
            flags["options"] = {"mode": mode.value}
        _quiet_hf()
        with err.status("loading model…"):
            comp = build(base, **flags)
        result = _run(comp, text, budget, question, err)
    except CtxcompError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if html_out is not None:
        from ..text.html_view import render_html

        try:
            html_out.write_text(
                render_html(result, [text], title=f"ctxcomp: {source}"), encoding="utf-8"
            )
        except OSError as exc:
            err.print(f"[bold red]error:[/] cannot write --html {str(html_out)!r}: {exc.strerror}")
            raise typer.Exit(2) from None
        err.print(f"wrote {html_out}")
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(result.text + ("\n" if not result.text.endswith("\n") else ""))
    err.print(
        f"{result.original_tokens} → {result.compressed_tokens} tokens "
        f"(target {result.target_tokens}, ratio {result.ratio:.3f})"
    )


def check_writable(path: Path, option: str) -> None:
    """An :class:`InputError` unless ``path`` can be written as a file: its folder exists
    and is writable, and the path is not a folder itself."""
    import os

    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"{option} {str(path)!r} is a folder; give a file name")
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist"
        raise InputError(f"{option} {str(path)!r}: folder {str(parent)!r} {what}")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"{option} {str(path)!r} is not writable")


def _quiet_hf() -> None:
    """The CLI shows its own progress: silence transformers' load bars and reports."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _run(
    comp: Compressor[CompressionResult],
    text: str,
    budget: Budget,
    question: str | None,
    err: Console,
) -> CompressionResult:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    show = len(text) > 20_000 and err.is_terminal
    if not show:
        return comp.compress(text, budget=budget, question=question)
    with Progress(
        TextColumn("scoring"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} tokens"),
        TimeRemainingColumn(),
        console=err,
    ) as prog:
        task = prog.add_task("score", total=None)

        def cb(done: int, total: int) -> None:
            prog.update(task, completed=done, total=total)

        return comp.compress(text, budget=budget, question=question, progress=cb)
