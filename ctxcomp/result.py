"""Typed inputs and results: documents in, compressed pieces with provenance out."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .budget import Budget
from .core.result import Result
from .errors import InputError
from .validate import check_text


@dataclass(frozen=True)
class Document:
    """One input document: its text and any metadata the caller wants carried through."""

    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


class KeptSpan(NamedTuple):
    """A run of the input kept verbatim: ``documents[document].text[start:end]``.

    A named tuple (immutable; unpacks as ``document, start, end``): results carry one per
    kept run, hundreds per compression, and tuples are built several times faster than
    frozen dataclasses."""

    document: int
    start: int
    end: int


@dataclass(frozen=True)
class UnitScores:
    """Every selection unit of one document: character span, keep probability, verdict.

    ``kept`` is the final verdict; ``forced`` marks units kept regardless of score (force
    tokens, digits when asked, protected spans). Arrays share one length.
    """

    starts: np.ndarray
    ends: np.ndarray
    probs: np.ndarray
    kept: np.ndarray
    forced: np.ndarray
    # per unit: the selection rule whose bonus ranked it (ctxcomp.rules.RULE_NAMES), 0 = none
    rule: np.ndarray | None = None


@dataclass(frozen=True)
class DocumentResult:
    """The compressed piece of one input document."""

    index: int
    text: str
    original_tokens: int
    compressed_tokens: int
    kept_spans: tuple[KeptSpan, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    relevance: float | None = None  # question relevance, when a coarse stage ranked documents
    rank: int | None = None  # 0 = most relevant
    reason: str | None = None  # why the document was dropped or shortened, when it was

    @property
    def dropped(self) -> bool:
        """True when the budget left nothing of this document."""
        return not self.kept_spans


@dataclass(frozen=True)
class CompressionResult(Result):
    """What a compressor returns.

    ``text`` is the compressed prompt (the documents' pieces joined by ``separator``);
    ``documents`` holds one piece per input document, in input order; ``spans`` maps every
    kept run back to (document index, character start, end). Token counts are integers in
    the reader's tokenizer (``original_tokens``: the input documents joined by ``separator``
    in ``document_order``), ``ratio`` = compressed / original tokens.
    """

    text: str
    documents: tuple[DocumentResult, ...]
    original_tokens: int
    compressed_tokens: int
    budget: Budget
    target_tokens: int
    reader: str
    compressor: str
    config_hash: str
    mode: str = "global"
    question_aware: bool = False
    notes: tuple[str, ...] = ()
    scores: tuple[UnitScores, ...] | None = field(default=None, repr=False, compare=False)
    separator: str = "\n\n"
    document_order: tuple[int, ...] | None = (
        None  # order of documents in ``text`` (None: input order)
    )

    @property
    def spans(self) -> tuple[KeptSpan, ...]:
        return tuple(s for d in self.documents for s in d.kept_spans)

    @property
    def dropped_documents(self) -> tuple[int, ...]:
        """Indices of documents the budget removed entirely."""
        return tuple(d.index for d in self.documents if d.dropped)

    def to_dict(self, *, include_scores: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": self.text,
            "original_tokens": self.original_tokens,
            "compressed_tokens": self.compressed_tokens,
            "ratio": self.ratio,
            "target_tokens": self.target_tokens,
            "budget": {"ratio": self.budget.ratio, "target_tokens": self.budget.target_tokens},
            "reader": self.reader,
            "compressor": self.compressor,
            "config_hash": self.config_hash,
            "mode": self.mode,
            "question_aware": self.question_aware,
            "notes": list(self.notes),
            "dropped_documents": list(self.dropped_documents),
            "document_order": list(self.document_order)
            if self.document_order is not None
            else None,
            "documents": [
                {
                    "index": d.index,
                    "text": d.text,
                    "original_tokens": d.original_tokens,
                    "compressed_tokens": d.compressed_tokens,
                    "kept_spans": [[s.start, s.end] for s in d.kept_spans],
                    "metadata": _jsonable(d.metadata),
                    "relevance": d.relevance,
                    "rank": d.rank,
                    "reason": d.reason,
                }
                for d in self.documents
            ],
        }
        if include_scores and self.scores is not None:
            out["scores"] = [
                {
                    "starts": s.starts.tolist(),
                    "ends": s.ends.tolist(),
                    "probs": [round(float(p), 4) for p in s.probs],
                    "kept": s.kept.astype(int).tolist(),
                    "forced": s.forced.astype(int).tolist(),
                }
                for s in self.scores
            ]
        return out

    def to_json(self, **kwargs: Any) -> str:
        include_scores = kwargs.pop("include_scores", False)
        return json.dumps(self.to_dict(include_scores=include_scores), ensure_ascii=False, **kwargs)


def _jsonable(meta: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in meta.items():
        try:
            json.dumps(v)
            out[str(k)] = v
        except (TypeError, ValueError):
            out[str(k)] = repr(v)
    return out


PromptInput = str | Document | Mapping[str, Any] | Sequence[str | Document | Mapping[str, Any]]


def as_documents(prompt: Any) -> list[Document]:
    """Normalise a prompt (a string, a Document, or a sequence of them) to documents.

    Accepts strings, :class:`Document`, mappings with ``text`` (or ``page_content``) and
    optional ``metadata``, and objects with ``page_content``/``text`` attributes (LangChain,
    LlamaIndex). Anything else, an empty sequence, or an empty/whitespace-only document is an
    :class:`InputError` naming the offending item.
    """
    if isinstance(prompt, (str, Document, Mapping)):
        items: list[Any] = [prompt]
    elif isinstance(prompt, (bytes, bytearray)):
        raise InputError(
            "prompt is bytes: decode it to str first (ctxcomp does not guess encodings)"
        )
    elif isinstance(prompt, Sequence) or _is_iterable_of_docs(prompt):
        items = list(prompt)
        if not items:
            raise InputError("prompt is an empty sequence: give at least one document")
    else:
        raise InputError(
            f"prompt must be a string, a Document, or a sequence of them, got {type(prompt).__name__}"
        )
    docs = [_one(item, i) for i, item in enumerate(items)]
    if all(not d.text.strip() for d in docs):
        raise InputError("prompt is empty or whitespace only: there is nothing to compress")
    return docs


def _is_iterable_of_docs(obj: Any) -> bool:
    return hasattr(obj, "__iter__") and not isinstance(obj, (str, bytes, Mapping))


def _one(item: Any, i: int) -> Document:
    if isinstance(item, Document):
        doc = item
    elif isinstance(item, str):
        doc = Document(item)
    elif isinstance(item, Mapping):
        text = item.get("text", item.get("page_content"))
        if not isinstance(text, str):
            raise InputError(f"document {i} has no string 'text' field (got {type(text).__name__})")
        meta = item.get("metadata") or {}
        if not isinstance(meta, Mapping):
            raise InputError(f"document {i} metadata must be a mapping, got {type(meta).__name__}")
        doc = Document(text, dict(meta))
    elif isinstance(getattr(item, "page_content", None), str):
        doc = Document(item.page_content, dict(getattr(item, "metadata", None) or {}))
    elif isinstance(getattr(item, "text", None), str):
        doc = Document(item.text, dict(getattr(item, "metadata", None) or {}))
    else:
        raise InputError(
            f"document {i} must be a string, a Document or a mapping with 'text', "
            f"got {type(item).__name__}"
        )
    if not isinstance(doc.text, str):
        raise InputError(f"document {i} text must be str, got {type(doc.text).__name__}")
    check_text(doc.text, f"document {i}")
    return doc
