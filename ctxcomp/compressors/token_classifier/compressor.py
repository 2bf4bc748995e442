"""The token classifier: LLMLingua-2-style compression, a bidirectional encoder labels
every word keep/drop.

Flow for a batch of requests: analyse every document with the encoder's fast tokenizer
(:mod:`.analysis`: units, windows, protection), score all windows of all requests through
the model or the segment cache (:mod:`.scoring`), shape the unit scores with the selection
rules (:mod:`.shaping`), select under each request's one budget counted in the reader's
tokens (:mod:`.selection`; the per-chunk reference mode in :mod:`.reference`) and build the
result (:mod:`.result`). Everything after the forward is numpy over whole documents.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...budget import Budget
from ...core.compressor import ProgressCallback
from ...core.request import Request
from ...core.stage import Guidance
from ...errors import InputError
from ...newlines import document_separator
from ...result import CompressionResult
from ...tokens import DEFAULT_READER, ReaderTokenizer, get_tokenizer
from ..base import Compressor
from .analysis import Analyzer
from .doc import DocTokens
from .options import DEFAULT_SCORE_MEMO_BYTES, TokenClassifierOptions, norm_overrides
from .reader_starts import ReaderStarts
from .result import Context, unchanged_result
from .scoring import Scorer, ScoreSource
from .selection import select
from .windows import excluded_chars

if TYPE_CHECKING:
    from ...backends.hf import HFTokenClassifier

QUESTION_IGNORED = (
    "question ignored: the token classifier is question-agnostic; "
    "its keep probabilities do not depend on the question"
)


class TokenClassifierCompressor(Compressor):
    """Keep/drop word classification with any Hugging Face token-classification model.

    ``model`` is a hub id (e.g. ``microsoft/llmlingua-2-xlm-roberta-large-meetingbank``),
    a local directory, or an already loaded ``PreTrainedModel`` (then pass ``tokenizer``).
    ``keep_label`` is the label index meaning "keep" (1 for LLMLingua-2 checkpoints).
    ``backend`` names a registered backend (:data:`ctxcomp.core.registry.backends`):
    ``"torch"`` (the default: fp32; fp16 on CUDA), ``"torch-bf16"`` (bfloat16 weights and
    activations: CPUs with AVX512-BF16 or AMX, and GPUs), ``"auto"`` (bf16 on CPUs that
    compute it natively, else ``"torch"``), ``"onnx"`` (ONNX Runtime with fused attention,
    CPU), or the lossy ``"torch-int8"`` / ``"onnx-int8"`` (dynamic int8 quantisation, CPU).
    docs/performance.md measures each.
    """

    name = "token-classifier"

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        revision: str | None = None,
        device: str = "auto",
        backend: str | None = None,
        keep_label: int = 1,
        batch_tokens: int | None = None,
        max_chunk_tokens: int | None = None,
        reader: str | ReaderTokenizer = DEFAULT_READER,
        options: TokenClassifierOptions | None = None,
        local_files_only: bool | None = None,
        cache: Any = None,
        namespace: str = "default",
        score_memo_bytes: int = DEFAULT_SCORE_MEMO_BYTES,
        **option_overrides: Any,
    ) -> None:
        super().__init__(reader=reader)
        if options is None:
            options = TokenClassifierOptions(**norm_overrides(option_overrides))
        elif option_overrides:
            raise InputError("pass options=... or individual option keywords, not both")
        self.options = options
        self._reader = get_tokenizer(reader)
        self.keep_label = int(keep_label)
        # torch and transformers are imported here, not at import
        from ...backends.hf import load_token_classifier

        self._model = load_token_classifier(
            model,
            tokenizer,
            revision=revision,
            device=device,
            backend=backend,
            keep_label=self.keep_label,
            batch_tokens=batch_tokens,
            local_files_only=local_files_only,
            max_chunk_tokens=max_chunk_tokens,
        )
        self._tok = self._model.backend_tokenizer
        self.cache, self.namespace = _cache_init(cache, namespace)
        # with a cache, recurring documents also skip tokenisation: an in-process LRU of
        # their analyses (exact text key; bounded by encoder tokens held)
        self.analyzer = Analyzer(
            self._tok, self._model.max_chunk_tokens, memo=self.cache is not None
        )
        # without a cache, windows' keep probabilities are reused in-process (exact token ids
        # as the key): a second question over a document does not run the model again
        self.scorer = Scorer(score_memo_bytes if self.cache is None else None)

    # -- public -----------------------------------------------------------------------

    @property
    def model_info(self) -> dict[str, Any]:
        return self._model.info()

    @property
    def classifier(self) -> HFTokenClassifier:
        """The loaded classifier (:class:`~ctxcomp.backends.hf.HFTokenClassifier`)."""
        return self._model

    @property
    def reader_tokenizer(self) -> ReaderTokenizer:
        """The tokenizer budgets are counted in."""
        return self._reader

    @property
    def separator(self) -> str:
        """What joins a request's documents (before newline adaptation)."""
        return self.options.separator

    def config(self) -> dict[str, Any]:
        o = self.options
        return {
            "model": self._model.fingerprint,
            "backend": self._model.backend,
            "keep_label": self.keep_label,
            "window": self.analyzer.window,
            "reader": self._reader.name,
            "force_tokens": list(o.force_tokens),
            "keep_digits": o.keep_digits,
            "drop_consecutive": o.drop_consecutive,
            "token_to_word": o.token_to_word,
            "mode": o.mode,
            "chunk_end_tokens": list(o.chunk_end_tokens),
            "protection": o.protection.fingerprint(),
            "separator": o.separator,
            **({"neighbor_weight": o.neighbor_weight} if o.neighbor_weight else {}),
            **(
                {"rules": "capped-v1", "rule_shares": dataclasses.asdict(o.rule_shares)}
                if (o.neighbor_weight or o.repeat_cover or o.label_cover)
                else {}
            ),
            **({"repeat_cover": o.repeat_cover} if o.repeat_cover else {}),
            **(
                {"label_cover": o.label_cover, "label_scope": o.label_scope}
                if o.label_cover
                else {}
            ),
            **({"on_overflow": o.on_overflow} if o.on_overflow != "degrade" else {}),
        }

    def compress_batch(
        self,
        prompts: Sequence[Any],
        *,
        ratio: float | None = None,
        target_tokens: int | None = None,
        budget: Budget | None = None,
        question: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[CompressionResult]:
        b, docs = self._prepare(prompts, ratio, target_tokens, budget, question)
        return self.run([Request(tuple(d), b, question) for d in docs], progress=progress)

    def run(
        self, requests: Sequence[Request], *, progress: ProgressCallback | None = None
    ) -> list[CompressionResult]:
        """Compress validated requests (the question, when given, is noted and ignored)."""
        guidance = [
            Guidance(notes=(QUESTION_IGNORED,) if r.question and r.question.strip() else ())
            for r in requests
        ]
        return self.run_guided(requests, guidance, progress=progress)

    def run_guided(
        self,
        requests: Sequence[Request],
        guidance: Sequence[Guidance],
        *,
        progress: ProgressCallback | None = None,
    ) -> list[CompressionResult]:
        """Compress requests with one guidance each, from a coarse stage (:mod:`ctxcomp.core.stage`)."""
        results: list[CompressionResult | None] = [None] * len(requests)
        pending: list[tuple[int, list[DocTokens], int, int, str]] = []
        budgets = [r.budget for r in requests]
        gs = list(guidance)
        docs_of = [list(r.documents) for r in requests]
        seps = [document_separator(self.options.separator, [d.text for d in r]) for r in docs_of]
        joins = [sep.join(d.text for d in docs) for sep, docs in zip(seps, docs_of)]
        # reader token starts of each joined text; for long texts counted on a second thread
        # while this one runs the encoder's tokenizer (both release the GIL)
        starts_of = ReaderStarts(self._reader, joins)
        ctx = self._context()
        for ri, docs in enumerate(docs_of):
            g = gs[ri]
            texts = [d.text for d in docs]
            empty = {
                i: "empty document"
                for i, t in enumerate(texts)
                if not t.strip() and i not in g.drop
            }
            g_fine = dataclasses.replace(g, drop={**g.drop, **empty}) if empty else g
            # with the reader counting on a second thread, analyse meanwhile; else count
            # first, so an unchanged request is never analysed
            dts = (
                self.analyzer.request_doc_tokens(texts, g_fine.drop, self.options)
                if starts_of.background
                else None
            )
            n_orig = int(starts_of[ri].size)
            b = budgets[ri]
            target = b.resolve(n_orig)
            if target >= n_orig:
                results[ri] = unchanged_result(ctx, docs, joins[ri], n_orig, b, target, g)
                continue
            gs[ri] = g_fine
            if dts is None:
                dts = self.analyzer.request_doc_tokens(texts, g_fine.drop, self.options)
            pending.append((ri, dts, n_orig, target, joins[ri]))
        # windows wholly inside spans the coarse stage excluded are never scored
        skip = []
        for ri, dts, _, _, _ in pending:
            ex = gs[ri].exclude
            skip += [
                excluded_chars(dt.text, ex(di, dt.text) if ex else []) for di, dt in enumerate(dts)
            ]
        self.scorer.score(
            ScoreSource(self._model, self.keep_label, self.cache, self.namespace),
            [dt for _, dts, _, _, _ in pending for dt in dts],
            progress,
            skip,
        )
        for ri, dts, n_orig, target, joined in pending:
            results[ri] = select(
                ctx,
                list(requests[ri].documents),
                dts,
                n_orig,
                budgets[ri],
                target,
                joined,
                gs[ri],
                starts_of.pop(ri),
            )
        return [r for r in results if r is not None]

    def _context(self) -> Context:
        return Context(self.name, self.config_hash, self.options, self._reader, self._tok)


def _cache_init(cache: Any, namespace: str) -> tuple[Any, str]:
    """``cache``: None (off), True (default SQLite file), a path, a Store or a SegmentCache."""
    if cache is None or cache is False:
        return None, namespace
    from ...cache import as_cache
    from ...cache.keys import check_namespace

    return as_cache(cache), check_namespace(namespace)
