"""A teacher that runs on a laptop CPU: word-level keep/drop labels for training data.

Labels are made per whitespace word of a text, from three signals:

* answer attribution (QA data only): words inside an occurrence of a gold answer in the
  context, and context words that repeat a content word of the question, are kept;
* self-information: ``-log p(word)`` under a unigram model counted on the training texts
  themselves (``UnigramModel``), or token surprisal summed per word under a small causal
  LM (``lm_surprisal``; SmolLM2-135M runs here but is ~100x slower);
* structural priors: numbers and capitalised words (names) up, stopwords down.

Words that are not attributed are ranked by self-information + priors and the top ones are
kept until ``keep_rate`` of the words are kept. ``label_text`` returns the labels;
``word_scores`` the ranking scores (a question-agnostic compressor of its own, used to
measure the teacher against the LM-surprisal alternative).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..stopwords import FUNCTION_WORDS

# modals and "one" are function words for labelling too; contraction fragments ("don't" ->
# "don", "t") are never content
STOPWORDS = (
    FUNCTION_WORDS
    | {"may", "might", "must", "one", "shall"}
    | set(["d", "ll", "m", "o", "re", "s", "t", "ve", "y"])
)

_STRIP = re.compile(r"^[^\w]+|[^\w]+$", re.UNICODE)
_HAS_DIGIT = re.compile(r"\d")


def norm_word(w: str) -> str:
    """Lower-case word with leading/trailing punctuation removed ('' for pure punctuation)."""
    return _STRIP.sub("", w).lower()


def split_words(text: str) -> list[tuple[int, int]]:
    """Character spans of the whitespace-separated words of ``text``."""
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


class UnigramModel:
    """Add-one smoothed unigram word model: cheap self-information ``-log p(word)``."""

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts
        self.total = sum(counts.values())
        self.vocab = len(counts) + 1

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> UnigramModel:
        c: Counter[str] = Counter()
        for t in texts:
            c.update(n for n in (norm_word(w) for w in t.split()) if n)
        return cls(c)

    def self_information(self, word: str) -> float:
        n = norm_word(word)
        if not n:
            return 0.0
        return -math.log((self.counts.get(n, 0) + 1) / (self.total + self.vocab))


def prior_scores(words: Sequence[str]) -> np.ndarray:
    """Structural prior per word: numbers and mid-sentence capitals up, stopwords and bare
    punctuation down (in self-information units, nats)."""
    out = np.zeros(len(words))
    prev_end = True
    for i, w in enumerate(words):
        n = norm_word(w)
        if not n:
            out[i] = -6.0
        elif n in STOPWORDS:
            out[i] = -4.0
        else:
            if _HAS_DIGIT.search(w):
                out[i] += 4.0
            core = _STRIP.sub("", w)
            if core[:1].isupper() and not prev_end:
                out[i] += 3.0
        prev_end = w[-1:] in ".!?:\n" or (i == 0 and False)
    return out


def lm_surprisal(
    text: str, words: Sequence[tuple[int, int]], model: Any, tokenizer: Any, window: int = 512
) -> np.ndarray:
    """Summed token surprisal (nats) of each word under a causal LM, windows of ``window``."""
    import torch

    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offs = enc["input_ids"], enc["offset_mapping"]
    nll = np.zeros(len(ids))
    for s in range(0, len(ids), window):
        chunk = torch.tensor([ids[s : s + window]])
        with torch.inference_mode():
            logits = model(chunk).logits[0].float()
        lp = torch.log_softmax(logits[:-1], dim=-1)
        v = -lp.gather(1, chunk[0, 1:, None])[:, 0].numpy()
        nll[s + 1 : s + chunk.shape[1]] = v
        nll[s] = float(v.mean()) if v.size else 0.0
    starts = np.array([a for a, _ in words])
    out = np.zeros(len(words))
    if len(ids):
        tok_start = np.array([o[0] for o in offs])
        w = np.clip(np.searchsorted(starts, tok_start, side="right") - 1, 0, len(words) - 1)
        np.add.at(out, w, nll)
    return out


def find_answer_words(
    text: str, spans: Sequence[tuple[int, int]], answers: Iterable[str]
) -> np.ndarray:
    """Mask of words overlapping a case-insensitive occurrence of any answer in ``text``."""
    mask = np.zeros(len(spans), dtype=bool)
    low = text.lower()
    starts = np.array([a for a, _ in spans], dtype=np.int64)
    ends = np.array([b for _, b in spans], dtype=np.int64)
    for ans in answers:
        a = ans.strip().lower()
        if not a:
            continue
        for m in re.finditer(re.escape(a), low):
            mask |= (starts < m.end()) & (ends > m.start())
    return mask


@dataclass
class TeacherConfig:
    keep_rate: float = 0.35
    prior_weight: float = 1.0
    question_words: bool = True


def word_scores(
    words: Sequence[str], si: np.ndarray, cfg: TeacherConfig | None = None
) -> np.ndarray:
    """Question-agnostic importance: self-information plus structural priors."""
    cfg = cfg or TeacherConfig()
    return np.asarray(si, dtype=np.float64) + cfg.prior_weight * prior_scores(words)


def label_text(
    text: str,
    si: np.ndarray | None = None,
    *,
    unigram: UnigramModel | None = None,
    answers: Sequence[str] = (),
    question: str | None = None,
    cfg: TeacherConfig | None = None,
) -> tuple[list[str], list[int]]:
    """(words, 0/1 labels) for ``text``: attributed words kept, the rest ranked."""
    cfg = cfg or TeacherConfig()
    spans = split_words(text)
    words = [text[a:b] for a, b in spans]
    if not words:
        return [], []
    if si is None:
        if unigram is None:
            raise ValueError("give si=... (per-word self-information) or unigram=...")
        si = np.array([unigram.self_information(w) for w in words])
    keep = find_answer_words(text, spans, answers)
    if cfg.question_words and question:
        qw = {norm_word(w) for w in question.split()} - STOPWORDS - {""}
        keep |= np.array([norm_word(w) in qw for w in words])
    score = word_scores(words, si, cfg)
    n_keep = max(round(cfg.keep_rate * len(words)), int(keep.sum()))
    rest = n_keep - int(keep.sum())
    if rest > 0:
        order = np.argsort(-np.where(keep, -np.inf, score), kind="stable")
        keep[order[:rest]] = True
    return words, keep.astype(int).tolist()
