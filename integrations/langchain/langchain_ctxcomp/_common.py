"""What the LangChain adapters share: compressor and budget resolution, input checks,
per-document stats and drop reports. Uses ctxcomp's public API only."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ctxcomp

logger = logging.getLogger("langchain_ctxcomp")

DEFAULT_METADATA_KEY = "ctxcomp"
DEFAULT_RATIO = 0.5
DEFAULT_READER = "cl100k_base"  # ctxcomp.compress's default reader
DROPPED_EVENT = "ctxcomp_dropped_documents"


@dataclass(frozen=True)
class DroppedDocument:
    """An input document that is not in the output, and why.

    ``index`` is its position in the input sequence, ``document`` the input object itself
    (unchanged), ``reason`` is ``"budget"`` (the global budget left nothing of it) or
    ``"empty"`` (its content is empty or whitespace only: nothing to keep),
    ``original_tokens`` its size in the reader's tokens (0 when empty), and ``detail`` the
    compressor's own explanation when it gives one (e.g. a question-aware stage's).
    """

    index: int
    document: Any
    reason: str
    original_tokens: int
    detail: str | None = None


DroppedCallback = Callable[[list[DroppedDocument]], None]


class Engine:
    """Runs compression: a given ``ctxcomp.Compressor``, or ``ctxcomp.compress`` with a model
    id / path (``None``: ctxcomp's default model). ``ctxcomp.compress`` loads each
    (model, reader) once per process and adds ctxcomp's question-aware stage when a question
    is given."""

    def __init__(
        self, compressor: ctxcomp.Compressor | None, model: str | None, reader: str | None
    ) -> None:
        if compressor is not None and model is not None:
            raise ctxcomp.InputError("give compressor=... or model=..., not both")
        if compressor is not None and not isinstance(compressor, ctxcomp.Compressor):
            raise ctxcomp.InputError(
                f"compressor must be a ctxcomp.Compressor, got {type(compressor).__name__}"
            )
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise ctxcomp.InputError(f"model must name a hub id or a local path, got {model!r}")
        if compressor is not None and getattr(compressor, "reader", None) is None:
            raise ctxcomp.InputError(
                "compressor must be a text compressor (one that counts a reader's tokens), got "
                f"a {getattr(compressor, 'kind', 'non-text')} method"
            )
        if compressor is not None and reader is not None:
            # a compressor counts its budget in the reader it was built with
            have = ctxcomp.get_tokenizer(compressor.reader).name  # every text compressor has one
            want = ctxcomp.get_tokenizer(reader).name
            if have != want:
                raise ctxcomp.InputError(
                    f"the compressor counts its budget in {have!r} tokens, not {want!r}: build "
                    f"it with reader={reader!r} (e.g. ctxcomp.load_compressor(model, "
                    f"reader={reader!r})), or pass model=... and reader=... instead"
                )
        self.compressor = compressor
        self.model = model
        self.reader = reader

    def compress(
        self, texts: list[str], *, question: str | None, **budget: Any
    ) -> ctxcomp.CompressionResult:
        if self.compressor is not None:
            return self.compressor.compress(texts, question=question, **budget)
        kw: dict[str, Any] = {} if self.reader is None else {"reader": self.reader}
        return ctxcomp.compress(texts, question=question, model=self.model, **budget, **kw)

    async def acompress(
        self, texts: list[str], *, question: str | None, **budget: Any
    ) -> ctxcomp.CompressionResult:
        """In a worker thread: the event loop is never blocked."""
        if self.compressor is not None:
            return await self.compressor.acompress(texts, question=question, **budget)
        return await asyncio.to_thread(
            functools.partial(self.compress, texts, question=question, **budget)
        )

    def reader_tokenizer(self) -> ctxcomp.ReaderTokenizer:
        """The tokenizer the budget is counted in."""
        if self.compressor is not None:
            return ctxcomp.get_tokenizer(self.compressor.reader)
        return ctxcomp.get_tokenizer(self.reader or DEFAULT_READER)


def resolve_budget(ratio: float | None, target_tokens: int | None) -> ctxcomp.Budget:
    """A validated budget; ``ratio=0.5`` when neither is given."""
    if ratio is None and target_tokens is None:
        ratio = DEFAULT_RATIO
    return ctxcomp.Budget(ratio=ratio, target_tokens=target_tokens)


def text_of(doc: Any, index: int, attr: str = "page_content") -> str:
    """The text of one input document; anything but ``str`` is an InputError naming it."""
    if isinstance(doc, str):
        return doc
    if not hasattr(doc, attr):
        raise ctxcomp.InputError(
            f"document {index} is a {type(doc).__name__} without a {attr!r} attribute"
        )
    text = getattr(doc, attr)
    if not isinstance(text, str):
        raise ctxcomp.InputError(
            f"document {index} has non-string {attr} ({type(text).__name__}): "
            "convert it to text before compressing"
        )
    return text


def metadata_of(doc: Any, index: int) -> dict[str, Any]:
    """A shallow copy of the document's metadata; ``{}`` when it has none (missing or None)."""
    meta = getattr(doc, "metadata", None)
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise ctxcomp.InputError(
            f"document {index} metadata must be a mapping, got {type(meta).__name__}"
        )
    return dict(meta)


@dataclass
class Batch:
    """Input documents split into the ones to compress and the empty ones."""

    texts: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # input index of each text
    empty: list[int] = field(default_factory=list)
    n_inputs: int = 0


def split_inputs(documents: Sequence[Any], attr: str = "page_content") -> Batch:
    """Check every document (types first, so errors come before any model work)."""
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise ctxcomp.InputError(
            f"documents must be a sequence of documents, got {type(documents).__name__}"
        )
    batch = Batch(n_inputs=len(documents))
    for i, doc in enumerate(documents):
        text = text_of(doc, i, attr)
        metadata_of(doc, i)
        if text.strip():
            batch.texts.append(text)
            batch.positions.append(i)
        else:
            batch.empty.append(i)
    return batch


def dropped_report(
    batch: Batch, documents: Sequence[Any], result: ctxcomp.CompressionResult | None
) -> list[DroppedDocument]:
    out = [DroppedDocument(i, documents[i], "empty", 0) for i in batch.empty]
    if result is not None:
        for d in result.documents:
            if d.dropped:
                pos = batch.positions[d.index]
                detail = getattr(d, "reason", None)
                out.append(
                    DroppedDocument(pos, documents[pos], "budget", d.original_tokens, detail)
                )
    return sorted(out, key=lambda x: x.index)


def doc_stats(
    result: ctxcomp.CompressionResult,
    d: ctxcomp.DocumentResult,
    input_index: int,
    dropped: list[DroppedDocument],
    n_inputs: int,
) -> dict[str, Any]:
    """The stats stored in each output document's metadata (JSON-serialisable)."""
    stats: dict[str, Any] = {
        "input_index": input_index,
        "original_tokens": d.original_tokens,
        "compressed_tokens": d.compressed_tokens,
        "kept_spans": [[s.start, s.end] for s in d.kept_spans],
        "reader": result.reader,
        "config_hash": result.config_hash,
        "question_aware": result.question_aware,
        "call": {
            "documents": n_inputs,
            "original_tokens": result.original_tokens,
            "compressed_tokens": result.compressed_tokens,
            "target_tokens": result.target_tokens,
            "dropped": [x.index for x in dropped if x.reason == "budget"],
            "empty": [x.index for x in dropped if x.reason == "empty"],
        },
    }
    # what a question-aware compressor adds (relevance, rank, why it was shortened)
    for key in ("relevance", "rank", "reason"):
        value = getattr(d, key, None)
        if value is not None:
            stats[key] = value
    return stats


def output_order(result: ctxcomp.CompressionResult) -> list[int]:
    """Document indices in the order the compressor put them in its text (a question-aware
    compressor may rank them); input order otherwise."""
    n = len(result.documents)
    order = getattr(result, "document_order", None)
    if order is None:
        return list(range(n))
    first = [int(i) for i in order if 0 <= int(i) < n]
    if len(set(first)) != len(first):
        return list(range(n))
    seen = set(first)
    return first + [i for i in range(n) if i not in seen]


def report(dropped: list[DroppedDocument], on_dropped: DroppedCallback | None) -> None:
    if not dropped:
        return
    logger.info(
        "ctxcomp dropped %d document(s): %s",
        len(dropped),
        ", ".join(f"#{x.index} ({x.reason})" for x in dropped),
    )
    if on_dropped is not None:
        on_dropped(list(dropped))


def question_of(query: Any, use_query: bool) -> str | None:
    if not use_query or query is None:
        return None
    if not isinstance(query, str):
        raise ctxcomp.InputError(f"query must be a string, got {type(query).__name__}")
    return query if query.strip() else None
