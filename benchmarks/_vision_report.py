"""Scores, tables, goal checks and the plot of the visual-token fidelity benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

RATIOS = (0.5, 0.25, 0.125)
PURE = ("vtc-cls", "divprune", "fastv")
METHODS = (
    "random", "random+merge", "pooling",
    "vtc-cls", "vtc-cls+merge", "divprune", "divprune+merge", "fastv", "fastv+merge",
    "tome", "tome-late", "dymu",
)  # fmt: skip
MATCHED = ("dymu", "random|dymu", "random+merge|dymu", "pooling|dymu", "tome|dymu")
MERGING = ("random+merge", "pooling", "vtc-cls+merge", "divprune+merge", "fastv+merge",
           "tome", "tome-late", "dymu")  # fmt: skip


def baselines(method: str) -> tuple[str, ...]:
    """The rows a method must beat: random and pooling; with recycling, random+merge and
    pooling (so a win is the selection rule's, not merging's); DyMU: both baselines at
    its own count per picture."""
    if method == "dymu":
        return ("random|dymu", "pooling|dymu")
    if method.endswith("+merge"):
        return ("random+merge", "pooling")
    return ("random", "pooling")


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1))


def summarise(res: dict, labels: np.ndarray | None, folds: list) -> dict:
    """Mean cosines (random rows: averaged over seeds), tokens, and probe accuracy."""
    ref = res["ref"]
    entry: dict[str, Any] = {}
    acc = probe(res, labels, folds) if labels is not None else {}
    for key, runs in res.items():
        if not isinstance(key, tuple):
            continue
        c = np.mean([[cos(o[0][0], r[0]) for o, r in zip(run, ref)] for run in runs], axis=0)
        p = np.mean([[cos(o[0][1], r[1]) for o, r in zip(run, ref)] for run in runs], axis=0)
        e = {
            "cls": float(c.mean()),
            "pooled": float(p.mean()),
            "tokens": float(np.mean([[o[2] for o in run] for run in runs])),
            "cls_min": float(c.min()),
        }
        if runs[0][0][1] is not None:
            e["cls_noprop"] = float(
                np.mean([[cos(o[1][0], r[0]) for o, r in zip(run, ref)] for run in runs])
            )
        name = f"{key[0]}@{key[1]:g}"
        if name in acc:
            e["probe_acc"] = acc[name]
        entry[name] = e
    if labels is not None:
        entry["full"] = {"probe_acc": acc["full"]}
    return entry


def probe(res: dict, labels: np.ndarray, folds: list) -> dict:
    """Logistic regression on full-token features ([CLS] + pooled) of one fold's scored
    pictures, accuracy on the other fold's (full features, and each row's); both ways."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    def feats(outs: list) -> np.ndarray:
        return np.stack([torch.cat([o[0], o[1]]).float().numpy() for o in outs])

    full = feats(res["ref"])
    right: dict[str, float] = {}
    total = 0
    for f, (_, test) in enumerate(folds):
        train = np.asarray(folds[1 - f][1])
        test = np.asarray(test)
        sc = StandardScaler().fit(full[train])
        clf = LogisticRegression(max_iter=5000, C=0.5).fit(sc.transform(full[train]), labels[train])
        y = labels[test]
        total += len(test)
        right["full"] = right.get("full", 0.0) + float(
            (clf.predict(sc.transform(full[test])) == y).sum()
        )
        for key, runs in res.items():
            if not isinstance(key, tuple):
                continue
            name = f"{key[0]}@{key[1]:g}"
            hits = [
                (clf.predict(sc.transform(feats([run[i][0] for i in test]))) == y).sum()
                for run in runs
            ]
            right[name] = right.get(name, 0.0) + float(np.mean(hits))
    return {k: v / total for k, v in right.items()}


def wins(entry: dict) -> tuple[list[str], list[str]]:
    """(method@ratio that beat both their baselines on [CLS] cosine, those that did not)."""
    yes, no = [], []
    for m in METHODS:
        if m in ("random", "random+merge", "pooling"):
            continue
        for r in RATIOS:
            e = entry.get(f"{m}@{r:g}")
            if e is None:
                continue
            best = max(entry[f"{b}@{r:g}"]["cls"] for b in baselines(m))
            (yes if e["cls"] > best else no).append(f"{m}@{r:g}")
    return yes, no


def table(name: str, entry: dict) -> str:
    has_probe = "full" in entry
    lines = [
        f"\n{name}: [CLS] cosine / pooled cosine{' / probe accuracy' if has_probe else ''}"
        " (mean tokens kept when not the budget)",
        "| method | " + " | ".join(f"{r:g}" for r in RATIOS) + " |",
        "|---" * (len(RATIOS) + 1) + "|",
    ]
    for m in METHODS:
        lines.append(f"| {m} | " + " | ".join(_cell(entry, m, r, has_probe) for r in RATIOS) + " |")
    if has_probe:
        lines.append(f"\nprobe accuracy with all tokens: {entry['full']['probe_acc']:.3f}")
    lines += ["", "DyMU and the baselines at DyMU's count per picture (ToMe: at its mean count)",
              "| row | " + " | ".join(f"{r:g}" for r in RATIOS) + " |",
              "|---" * (len(RATIOS) + 1) + "|"]  # fmt: skip
    for m in MATCHED:
        lines.append(
            f"| {m} | " + " | ".join(_cell(entry, m, r, has_probe, True) for r in RATIOS) + " |"
        )
    if any("cls_noprop" in e for e in entry.values() if isinstance(e, dict)):
        lines += ["", "[CLS] cosine with proportional attention / without (sizes ignored)",
                  "| row | " + " | ".join(f"{r:g}" for r in RATIOS) + " |",
                  "|---" * (len(RATIOS) + 1) + "|"]  # fmt: skip
        for m in MERGING:
            cells = [_noprop(entry[f"{m}@{r:g}"]) for r in RATIOS]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    yes, no = wins(entry)
    lines.append(f"\nbeat both baselines: {', '.join(yes) or '-'}")
    lines.append(f"did not: {', '.join(no) or '-'}")
    return "\n".join(lines)


def _noprop(e: dict) -> str:
    return f"{e['cls']:.3f} / {e['cls_noprop']:.3f}" if "cls_noprop" in e else f"{e['cls']:.3f} / -"


def _cell(entry: dict, m: str, r: float, probe: bool, tokens: bool = False) -> str:
    e = entry[f"{m}@{r:g}"]
    cell = f"{e['cls']:.3f} / {e['pooled']:.3f}"
    if probe:
        cell += f" / {e['probe_acc']:.3f}"
    if tokens or m == "dymu":
        cell += f" ({e['tokens']:.0f})"
    return cell


def plot(report: dict, path: Path) -> None:
    """[CLS] cosine against the share of tokens kept: pure rules (top), with recycling
    (bottom); one column per picture set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(report["sets"])
    panels = (
        ("pure selection, encoder merging", ("random", "pooling", *PURE, "tome", "tome-late")),
        ("with recycling (+merge)", ("random+merge", "pooling", *(f"{m}+merge" for m in PURE))),
    )
    fig, axes = plt.subplots(2, len(sets), figsize=(5 * len(sets), 8), squeeze=False)
    for col, name in enumerate(sets):
        e = report["sets"][name]
        for row, (title, methods) in enumerate(panels):
            ax = axes[row][col]
            for m in methods:
                ys = [e[f"{m}@{r:g}"]["cls"] for r in RATIOS]
                style = "--" if m in ("random", "random+merge", "pooling") else "-"
                ax.plot([r * 100 for r in RATIOS], ys, style, marker="o", label=m)
            ax.set_xscale("log", base=2)
            ax.set_xticks([r * 100 for r in RATIOS], [f"{r * 100:g}%" for r in RATIOS])
            ax.set_title(f"{name}: {title}", fontsize=10)
            ax.set_xlabel("visual tokens kept")
            ax.set_ylabel("[CLS] cosine to all tokens")
            ax.grid(alpha=0.3)
            if col == 0:
                ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
