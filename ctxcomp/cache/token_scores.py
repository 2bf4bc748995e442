"""Token-classifier glue: score windows through the cache.

A window's keep probabilities are a function of its token ids and the score config only,
so a cached window serves every budget and every selection option. Flow for one batch:

1. key every window (:func:`~ctxcomp.cache.keys.token_key`), fetch all keys in one read;
   an entry is used only if its stored token ids equal the window's ids;
2. (near reuse on) embed the missed windows' text, look each up in the namespace's FAISS
   index; for a hit above the similarity threshold, align the cached window to the new one
   (:mod:`ctxcomp.cache.align`) and plan model inputs only for the unmatched stretches
   (plus context) — unless too much is unmatched, then the window is scored in full;
3. one batched model call for full windows and stretches together;
4. windows scored in full are written back (one atomic batch) with their embeddings.
   Near-reused windows are not written: their probabilities are approximate, and exact
   entries must stay exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .align import fresh_spans, reuse_scores
from .artifact import Artifact, probabilities, register_validator
from .keys import token_key
from .segment_cache import SegmentCache

WINDOW_KIND = "tc.window"


def _check_window(a: Artifact) -> str | None:
    ids = a.arrays.get("ids")
    if ids is None or ids.ndim != 1 or ids.dtype.kind not in "iu":
        return "'ids' must be a 1-D integer array"
    if ids.size and int(ids.min()) < 0:
        return "'ids' holds negative token ids"
    p = a.arrays.get("p")
    problem = probabilities(p, "p")
    if problem is None and p is not None and p.shape != ids.shape:
        return "'p' and 'ids' differ in length"
    return problem


register_validator(WINDOW_KIND, _check_window)

Predict = Callable[..., list[np.ndarray]]


def score_windows(
    cache: SegmentCache,
    namespace: str,
    cfg_hash: str,
    windows: Sequence[np.ndarray],
    predict: Predict,
    *,
    texts: Callable[[int], str] | None = None,
    progress: Any = None,
) -> list[np.ndarray]:
    """Keep probabilities of every window, from the cache where possible."""
    n = len(windows)
    keys = [token_key(cfg_hash, w) for w in windows]
    out: list[np.ndarray | None] = [None] * n
    got = cache.get(namespace, WINDOW_KIND, keys)
    for i, k in enumerate(keys):
        a = got.get(k)
        if a is not None and _valid(a, windows[i]):
            out[i] = a.arrays["p"]
    # first window per missing key is scored; duplicates in the batch copy it
    first_of: dict[str, int] = {}
    missing = []
    for i in range(n):
        if out[i] is None and keys[i] not in first_of:
            first_of[keys[i]] = i
            missing.append(i)

    inputs: list[np.ndarray] = []
    plan: list[tuple[str, int, Any]] = []  # ("full", window, None) | ("part", window, (lo, parts))
    partial: dict[int, np.ndarray] = {}
    vecs: np.ndarray | None = None
    vec_row: dict[int, int] = {}
    if missing and cache.near and texts is not None:
        vecs = cache.embed([texts(i) for i in missing])
        vec_row = {i: r for r, i in enumerate(missing)}
        found = cache.near_search(namespace, vecs)
        cand = {f[0] for f in found if f is not None}
        cached = cache.get(namespace, WINDOW_KIND, cand, count=False) if cand else {}
        full = []
        for i, f in zip(missing, found):
            a = cached.get(f[0]) if f is not None else None
            if a is None or "ids" not in a.arrays:
                full.append(i)
                continue
            probs, known = reuse_scores(a.arrays["ids"], a.arrays["p"], windows[i])
            if 1.0 - known.mean() > cache.max_fresh_fraction:
                full.append(i)
                continue
            partial[i] = probs
            spans = fresh_spans(known, cache.context_tokens)
            for lo, hi, parts in spans:
                plan.append(("part", i, (lo, parts)))
                inputs.append(windows[i][lo:hi])
            cache.note_near_hit()
            cache.stats.model_tokens_saved += int(
                windows[i].size - sum(hi - lo for lo, hi, _ in spans)
            )
        missing_full = full
    else:
        missing_full = missing
    for i in missing_full:
        plan.append(("full", i, None))
        inputs.append(windows[i])
    preds = predict(inputs, progress=progress) if inputs else []
    fresh: dict[int, np.ndarray] = {}
    for (what, i, extra), p in zip(plan, preds):
        if what == "full":
            fresh[i] = np.asarray(p, np.float32)
        else:
            lo, parts = extra
            for a, b in parts:
                partial[i][a:b] = p[a - lo : b - lo]
    for i, p in {**partial, **fresh}.items():
        out[i] = p
    for i in range(n):
        if out[i] is None:
            out[i] = out[first_of[keys[i]]]
    cache.stats.model_tokens_saved += int(
        sum(windows[i].size for i in range(n) if i not in fresh and i not in partial)
    )
    if fresh:
        cache.put(
            namespace,
            WINDOW_KIND,
            {
                keys[i]: Artifact(WINDOW_KIND, {"ids": windows[i].astype("<i4"), "p": p})
                for i, p in fresh.items()
            },
        )
        if cache.near and vecs is not None:
            rows = [i for i in fresh if i in vec_row]
            cache.near_add(namespace, [keys[i] for i in rows], vecs[[vec_row[i] for i in rows]])
        elif cache.near and texts is not None:
            rows = list(fresh)
            cache.near_add(
                namespace, [keys[i] for i in rows], cache.embed([texts(i) for i in rows])
            )
    return [np.asarray(p, np.float32) for p in out]


def _valid(a: Artifact, ids: np.ndarray) -> bool:
    p, cid = a.arrays.get("p"), a.arrays.get("ids")
    return (
        p is not None
        and cid is not None
        and p.shape == ids.shape
        and cid.shape == ids.shape
        and bool(np.array_equal(cid.astype(np.int64), ids))
    )
