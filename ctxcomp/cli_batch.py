"""``ctxcomp batch IN OUT``: compress a whole corpus (JSONL / Parquet) on Ray Data.

Mounted by ``ctxcomp/cli.py`` as ``app.command("batch")(batch)``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .errors import CtxcompError, InputError


def batch(
    source: Annotated[
        Path, typer.Argument(metavar="IN", help="Input corpus: *.jsonl / *.ndjson or *.parquet.")
    ],
    output: Annotated[
        Path,
        typer.Argument(
            metavar="OUT", help="Output file: *.jsonl or *.parquet (resumed if it exists)."
        ),
    ],
    ratio: Annotated[
        float | None, typer.Option(help="Fraction of tokens to keep, in (0, 1].")
    ] = None,
    target_tokens: Annotated[int | None, typer.Option(help="Token budget per row.")] = None,
    id_field: Annotated[str, typer.Option(help="Field holding each row's unique id.")] = "id",
    text_field: Annotated[str, typer.Option(help="Field holding the text to compress.")] = "text",
    question_field: Annotated[
        str | None, typer.Option(help="Field holding a per-row question (question-aware).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="Pipeline config file (JSON or TOML), as for `compress`.")
    ] = None,
    actors: Annotated[
        int | None, typer.Option(help="Actors (model copies); default: one per GPU, else per CPU.")
    ] = None,
    threads_per_actor: Annotated[
        int | None, typer.Option(help="CPU threads per actor (torch); default: CPUs / actors.")
    ] = None,
    gpus_per_actor: Annotated[
        float | None, typer.Option(help="GPUs per actor (may be fractional); default: 1 if any.")
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to run on (e.g. auto, ray://head:10001); default: local."),
    ] = None,
    num_cpus: Annotated[
        int | None, typer.Option(help="CPUs for the local Ray (default: all of this machine's).")
    ] = None,
    cache: Annotated[
        str | None,
        typer.Option(
            help="Segment cache: redis://host:port/db (shared by all actors) or a directory "
            "(one SQLite file per actor)."
        ),
    ] = None,
    batch_rows: Annotated[int, typer.Option(help="Rows per actor call.")] = 16,
    rows_per_call: Annotated[
        int,
        typer.Option(help="Rows per compress_batch call (1: each row exactly as compress())."),
    ] = 1,
    commit_rows: Annotated[
        int, typer.Option(help="Commit results every N rows (at most what a kill recomputes).")
    ] = 1000,
    max_chars: Annotated[
        int, typer.Option(help="Reject texts longer than this many characters.")
    ] = 2_000_000,
    rejects: Annotated[
        Path | None, typer.Option(help="Rejects file (default: OUT's name + .rejects.jsonl).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Discard an earlier run's output instead of resuming it.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run summary as JSON on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress or summary on stderr.")] = False,
) -> None:
    """Compress every row of IN into OUT on Ray (resumable; bad rows go to a rejects file)."""
    from rich.console import Console

    err = Console(stderr=True, soft_wrap=True)
    try:
        if (ratio is None) == (target_tokens is None):
            raise InputError("give exactly one of --ratio or --target-tokens")
        from .batch import Fields, RunOptions, run_batch

        summary = run_batch(
            source,
            output,
            ratio=ratio,
            target_tokens=target_tokens,
            fields=Fields(id=id_field, text=text_field, question=question_field),
            config=config,
            options=RunOptions(
                actors=actors,
                threads_per_actor=threads_per_actor,
                gpus_per_actor=gpus_per_actor,
                ray_address=ray_address,
                num_cpus=num_cpus,
                cache=cache,
                batch_rows=batch_rows,
                rows_per_call=rows_per_call,
                max_chars=max_chars,
                commit_rows=commit_rows,
            ),
            rejects=rejects,
            overwrite=overwrite,
            progress=not quiet,
        )
    except CtxcompError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("[yellow]stopped[/]: run the same command again to resume")
        raise typer.Exit(130) from None
    if as_json:
        sys.stdout.write(json.dumps(summary.to_dict(), indent=2) + "\n")


__all__ = ["batch"]
