"""``CtxcompPostprocessor``: a LlamaIndex node postprocessor backed by ctxcomp."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

import ctxcomp

logger = logging.getLogger("llama_index.postprocessor.ctxcomp")

DEFAULT_METADATA_KEY = "ctxcomp"
DEFAULT_RATIO = 0.5


@dataclass(frozen=True)
class DroppedNode:
    """An input node that is not in the output, and why.

    ``index`` is its position in the input list, ``node`` the input ``NodeWithScore``
    (unchanged), ``reason`` is ``"budget"`` (the global budget left nothing of it) or
    ``"empty"`` (its text is empty or whitespace only), ``original_tokens`` its size in the
    reader's tokens (0 when empty), ``detail`` the compressor's own explanation when it
    gives one (e.g. a question-aware stage's).
    """

    index: int
    node: NodeWithScore
    reason: str
    original_tokens: int
    detail: str | None = None


class CtxcompPostprocessor(BaseNodePostprocessor):
    """Compress retrieved nodes to one global token budget with ctxcomp.

    One node comes out per node kept, in input order (or in the order a question-aware
    compressor ranks them in its text), with its score, ``node_id``,
    relationships and its own metadata, plus ctxcomp's stats under ``metadata["ctxcomp"]``
    (token counts in the reader's tokenizer, kept character spans into the input node's
    text). The stats key is added to ``excluded_llm_metadata_keys`` and
    ``excluded_embed_metadata_keys``, so it never reaches the LLM prompt. Nodes the budget
    removes entirely and empty nodes are not returned but reported: to ``on_dropped``, in
    the survivors' ``metadata["ctxcomp"]["call"]`` and to this module's logger.

    The budget covers node text only: metadata that LlamaIndex renders next to the text
    (``excluded_llm_metadata_keys`` decides which) is not counted.

    Args:
        compressor: a ready ``ctxcomp.Compressor`` (its reader tokenizer counts the budget).
        model: or a hub id / local path: compression then runs through ``ctxcomp.compress``,
            which loads it once per process and, given a query, adds ctxcomp's
            question-aware stage. With neither, ctxcomp's default model is used.
        reader: the tokenizer the budget is counted in; with ``compressor`` it must match.
        ratio / target_tokens: the budget over all nodes of one call (``ratio=0.5`` when
            neither is given).
        use_query: pass the query string to the compressor as the question.
        metadata_key: where the stats go in each output node's metadata.
        on_dropped: called with a list of :class:`DroppedNode` when any input is dropped.
    """

    compressor: Any = Field(default=None, exclude=True, description="a ctxcomp.Compressor")
    model: str | None = Field(default=None, description="hub id or local path to load")
    reader: str | None = Field(default=None, description="reader tokenizer of the budget")
    ratio: float | None = Field(default=None, description="fraction of tokens to keep")
    target_tokens: int | None = Field(default=None, description="tokens to keep")
    use_query: bool = Field(default=True, description="pass the query as the question")
    metadata_key: str = Field(default=DEFAULT_METADATA_KEY)
    on_dropped: Callable[[list[DroppedNode]], None] | None = Field(default=None, exclude=True)

    _budget: ctxcomp.Budget = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        # resolved here, not in a validator, so ctxcomp's errors reach the caller as they are
        ratio = self.ratio
        if ratio is None and self.target_tokens is None:
            ratio = DEFAULT_RATIO
        self._budget = ctxcomp.Budget(ratio=ratio, target_tokens=self.target_tokens)
        _check_engine(self.compressor, self.model, self.reader)

    @classmethod
    def class_name(cls) -> str:
        return "CtxcompPostprocessor"

    @property
    def budget(self) -> ctxcomp.Budget:
        return self._budget

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        texts, positions, empty = _split(nodes)
        result = None
        if texts:
            result = self._compress(texts, self._question(query_bundle))
        return self._finish(nodes, positions, empty, result)

    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        texts, positions, empty = _split(nodes)
        result = None
        if texts:
            question = self._question(query_bundle)
            if self.compressor is not None:
                result = await self.compressor.acompress(
                    texts, budget=self._budget, question=question
                )
            else:  # in a worker thread: the event loop is never blocked
                result = await asyncio.to_thread(self._compress, texts, question)
        return self._finish(nodes, positions, empty, result)

    # -- helpers ---------------------------------------------------------------------------

    def _compress(self, texts: list[str], question: str | None) -> ctxcomp.CompressionResult:
        if self.compressor is not None:
            return self.compressor.compress(texts, budget=self._budget, question=question)
        # ctxcomp.compress loads (model, reader) once per process and, given a question,
        # adds ctxcomp's question-aware stage; model None is ctxcomp's default model
        kw: dict[str, Any] = {} if self.reader is None else {"reader": self.reader}
        return ctxcomp.compress(
            texts, budget=self._budget, question=question, model=self.model, **kw
        )

    def _question(self, query_bundle: QueryBundle | None) -> str | None:
        if not self.use_query or query_bundle is None:
            return None
        q = query_bundle.query_str
        return q if isinstance(q, str) and q.strip() else None

    def _finish(
        self,
        nodes: Sequence[NodeWithScore],
        positions: list[int],
        empty: list[int],
        result: ctxcomp.CompressionResult | None,
    ) -> list[NodeWithScore]:
        dropped = [DroppedNode(i, nodes[i], "empty", 0) for i in empty]
        if result is not None:
            dropped += [
                DroppedNode(
                    positions[d.index], nodes[positions[d.index]], "budget", d.original_tokens
                )
                for d in result.documents
                if d.dropped
            ]
            dropped.sort(key=lambda x: x.index)
        out: list[NodeWithScore] = []
        if result is not None:
            call = {
                "nodes": len(nodes),
                "original_tokens": result.original_tokens,
                "compressed_tokens": result.compressed_tokens,
                "target_tokens": result.target_tokens,
                "dropped": [x.index for x in dropped if x.reason == "budget"],
                "empty": [x.index for x in dropped if x.reason == "empty"],
            }
            for k in _output_order(result):
                d = result.documents[k]
                if d.dropped:
                    continue
                pos = positions[d.index]
                stats: dict[str, Any] = {
                    "input_index": pos,
                    "original_tokens": d.original_tokens,
                    "compressed_tokens": d.compressed_tokens,
                    "kept_spans": [[s.start, s.end] for s in d.kept_spans],
                    "reader": result.reader,
                    "config_hash": result.config_hash,
                    "question_aware": result.question_aware,
                    "call": call,
                }
                for key in ("relevance", "rank", "reason"):  # from question-aware compressors
                    value = getattr(d, key, None)
                    if value is not None:
                        stats[key] = value
                out.append(self._copy(nodes[pos], d.text, stats))
        if dropped:
            logger.info(
                "ctxcomp dropped %d node(s): %s",
                len(dropped),
                ", ".join(f"#{x.index} ({x.reason})" for x in dropped),
            )
            if self.on_dropped is not None:
                self.on_dropped(list(dropped))
        return out

    def _copy(self, nws: NodeWithScore, text: str, stats: dict[str, Any]) -> NodeWithScore:
        """The input node with new text and metadata; the input is never modified."""
        src = nws.node
        key = self.metadata_key
        node = src.model_copy()
        node.set_content(text)
        node.metadata = {**dict(src.metadata or {}), key: stats}
        node.excluded_llm_metadata_keys = _with(src.excluded_llm_metadata_keys, key)
        node.excluded_embed_metadata_keys = _with(src.excluded_embed_metadata_keys, key)
        return NodeWithScore(node=node, score=nws.score)


def _output_order(result: ctxcomp.CompressionResult) -> list[int]:
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


def _with(keys: list[str] | None, key: str) -> list[str]:
    keys = list(keys or [])
    return keys if key in keys else [*keys, key]


def _split(nodes: Sequence[Any]) -> tuple[list[str], list[int], list[int]]:
    """Texts to compress with their input positions, and the empty nodes' positions.
    Types are checked first, so errors come before any model work."""
    if isinstance(nodes, (str, bytes)) or not isinstance(nodes, Sequence):
        raise ctxcomp.InputError(
            f"nodes must be a list of NodeWithScore, got {type(nodes).__name__}"
        )
    texts: list[str] = []
    positions: list[int] = []
    empty: list[int] = []
    for i, nws in enumerate(nodes):
        if not isinstance(nws, NodeWithScore):
            raise ctxcomp.InputError(f"node {i} must be a NodeWithScore, got {type(nws).__name__}")
        text = nws.node.get_content(metadata_mode=MetadataMode.NONE)
        if not isinstance(text, str):
            raise ctxcomp.InputError(
                f"node {i} ({nws.node.node_id}) has non-string text ({type(text).__name__}): "
                "convert it to text before compressing"
            )
        meta = nws.node.metadata
        if meta is not None and not isinstance(meta, Mapping):
            raise ctxcomp.InputError(
                f"node {i} metadata must be a mapping, got {type(meta).__name__}"
            )
        if text.strip():
            texts.append(text)
            positions.append(i)
        else:
            empty.append(i)
    return texts, positions, empty


def _check_engine(compressor: Any, model: str | None, reader: str | None) -> None:
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
        have = ctxcomp.get_tokenizer(compressor.reader).name  # every text compressor has one
        want = ctxcomp.get_tokenizer(reader).name
        if have != want:
            raise ctxcomp.InputError(
                f"the compressor counts its budget in {have!r} tokens, not {want!r}: build it "
                f"with reader={reader!r}, or pass model=... and reader=... instead"
            )
