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


BASELINES = ("random", "random+merge", "pooling")


def baseline_row(method: str, base: str) -> str:
    """The row of baseline ``base`` that ``method`` is compared with: DyMU's count follows
    the picture, so its baselines are measured at its own count per picture."""
    return f"{base}|dymu" if method == "dymu" else base


def goal_baselines(method: str, like_for_like: bool) -> tuple[str, ...]:
    """The baselines a method must beat. The goal as the issue states it: random and
    uniform pooling. Like for like: a row that merges (``+merge``, ToMe, DyMU) must also
    beat random+merge, so a win is the rule's and not merging's."""
    merges = method.endswith("+merge") or method.startswith(("tome", "dymu"))
    return BASELINES if like_for_like and merges else ("random", "pooling")


def margins(entry: dict, method: str, ratio: float) -> dict[str, float]:
    """[CLS] cosine of ``method`` minus each baseline's, at ``ratio``."""
    e = entry[f"{method}@{ratio:g}"]["cls"]
    return {b: e - entry[f"{baseline_row(method, b)}@{ratio:g}"]["cls"] for b in BASELINES}


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1))


def summarise(res: dict, labels: np.ndarray | None, folds: list) -> dict:
    """Mean cosines (random rows: averaged over seeds), tokens, probe accuracy, and each
    method's paired [CLS] comparison with every baseline (``paired``)."""
    ref = res["ref"]
    entry: dict[str, Any] = {}
    each: dict[str, np.ndarray] = {}
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
        each[name] = c
    for name, e in entry.items():
        m, r = name.split("@")
        if m in BASELINES or "|" in m:
            continue
        e["paired"] = {b: _paired(each[name], each[f"{baseline_row(m, b)}@{r}"]) for b in BASELINES}
    if labels is not None:
        entry["full"] = {"probe_acc": acc["full"]}
    return entry


def _paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Per-picture [CLS] cosine differences a - b: mean, standard error, share a > b."""
    d = a - b
    return {"diff": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1
            else float("nan"), "wins": float((d > 0).mean())}  # fmt: skip


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


def wins(entry: dict, like_for_like: bool = False) -> tuple[list[str], list[str]]:
    """(method@ratio that beat their baselines on [CLS] cosine, those that did not)."""
    yes, no = [], []
    for m in METHODS:
        if m in BASELINES:
            continue
        for r in RATIOS:
            if f"{m}@{r:g}" not in entry:
                continue
            d = margins(entry, m, r)
            ok = all(d[b] > 0 for b in goal_baselines(m, like_for_like))
            (yes if ok else no).append(f"{m}@{r:g}")
    return yes, no


def noise(entry: dict, method: str, ratio: float, base: str) -> bool:
    """Whether the mean paired difference is within 2 standard errors of zero."""
    p = entry[f"{method}@{ratio:g}"].get("paired", {}).get(base)
    return p is not None and abs(p["diff"]) < 2 * p["se"]


def _margin(entry: dict, m: str, r: float, b: str) -> str:
    return f"{margins(entry, m, r)[b]:+.3f}" + ("~" if noise(entry, m, r, b) else "")


def goal_table(entry: dict) -> str:
    """Per method and ratio: [CLS] cosine minus random's / random+merge's / pooling's."""
    lines = [
        "[CLS] cosine minus random / random+merge / pooling (DyMU: at its count per picture;"
        " ~: within 2 standard errors of the per-picture differences)",
        "| method | " + " | ".join(f"{r:g}" for r in RATIOS) + " |",
        "|---" * (len(RATIOS) + 1) + "|",
    ]
    for m in METHODS:
        if m in BASELINES:
            continue
        cells = [" / ".join(_margin(entry, m, r, b) for b in BASELINES) for r in RATIOS]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    for like, what in ((False, "random and pooling (the goal as stated)"),
                       (True, "like for like (merging rows also random+merge)")):  # fmt: skip
        yes, no = wins(entry, like)
        lines.append(f"\nbeat {what}: {', '.join(yes) or '-'}")
        lines.append(f"did not: {', '.join(no) or '-'}")
        close = [w for w in yes if any(noise(entry, *_split(w), b)
                                       for b in goal_baselines(w.split("@")[0], like))]  # fmt: skip
        lines.append(f"wins within 2 standard errors: {', '.join(close) or '-'}")
    return "\n".join(lines)


def _split(name: str) -> tuple[str, float]:
    m, r = name.split("@")
    return m, float(r)


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
    lines += ["", goal_table(entry)]
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
