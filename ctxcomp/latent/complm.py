"""CompLLM segment compression (arXiv 2509.19228): concept embeddings per segment, cached.

The context is cut into short segments of the reader LM's own tokens (S ≈ 20,
sentence-aware); each segment is compressed *on its own* into ⌈len/C⌉ concept embeddings
(:class:`~ctxcomp.latent.encoder.ConceptEncoder`). Because a segment's rows depend on that
segment alone, they are cached by content — key = (segment token ids, row count, encoder
fingerprint, LM fingerprint) in a namespace — and every later query over the same
documents reads them back with no encoder forward. The question is never compressed.

>>> comp = SegmentCompressor("smollm2", cache="segments.sqlite")        # doctest: +SKIP
>>> lp = comp.compress(docs, ratio=0.5)                                 # doctest: +SKIP
>>> generate(comp.model, comp.tokenizer, "Who founded it?", lp)        # doctest: +SKIP

Near-duplicate reuse (``near=True`` and a cache with ``near=True``): a segment with no
exact entry may take the rows of a cached segment whose embedding is within the cache's
cosine threshold *and* whose tokens differ by at most ``near_max_edits`` tokens, with the
same row count; see docs/latent.md for the measured effect and the rule.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .._deps import require
from ..budget import Budget
from ..cache import Artifact, SegmentCache, as_cache, token_key
from ..cache import config_hash as cache_config_hash
from ..core.compressor import Compressor, ProgressCallback
from ..core.request import Request
from ..errors import InputError, ModelLoadError
from .encoder import ConceptEncoder, EncoderConfig
from .prompt import LatentPart, LatentPrompt, Part, Slot, TextPart
from .segments import Segment, Verbatim, choose_rate, rows_for, segment_documents

CE_KIND = "complm.ce"
SEG_KIND = "complm.seg"
DOC_SEPARATOR = "\n\n"


class SegmentCompressor(Compressor[LatentPrompt]):
    """CompLLM for a Hugging Face causal LM: context -> :class:`LatentPrompt`.

    ``model``: an LM spec for :func:`~ctxcomp.latent.load_lm` (e.g. ``"smollm2"``) or a
    loaded ``*ForCausalLM`` (then give ``tokenizer``). ``encoder``: a trained
    :class:`ConceptEncoder` or a directory saved by it (``ctxcomp train-latent`` writes
    one). ``cache``: anything :func:`ctxcomp.cache.as_cache` takes. ``near``: reuse
    near-duplicate segments' rows (the cache must have ``near=True``).
    """

    name: ClassVar[str] = "complm"
    kind: ClassVar[str] = "latent"

    def __init__(
        self,
        model: Any = "smollm2",
        tokenizer: Any = None,
        *,
        encoder: ConceptEncoder | str | Path | None,
        cache: Any = None,
        namespace: str = "default",
        near: bool = False,
        near_max_edits: int = 2,
        batch_segments: int = 64,
        separator: str = DOC_SEPARATOR,
    ) -> None:
        require("torch")
        if isinstance(model, str):
            from .lm import load_lm

            spec = model
            model, tokenizer = load_lm(model)
        else:
            spec = ""
            if tokenizer is None:
                raise InputError("give the tokenizer with a loaded model")
        self.model = model
        self.tokenizer = tokenizer
        if isinstance(encoder, ConceptEncoder):
            self.encoder = encoder
        elif encoder is None:
            raise ModelLoadError(
                "CompLLM needs a trained encoder for this LM: train one with "
                "`ctxcomp train-latent` (docs/latent.md) and pass encoder='<run>/encoder'"
            )
        else:
            self.encoder = ConceptEncoder.load(encoder, model, tokenizer)
            self.encoder.info.lm_spec = self.encoder.info.lm_spec or spec
        if self.encoder.target != self.target:
            raise ModelLoadError("the encoder was built on another LM than `model`")
        self.cache: SegmentCache | None = as_cache(cache)
        self.namespace = namespace
        self.near = bool(near)
        if self.near and (self.cache is None or not self.cache.near):
            raise InputError("near=True needs a cache made with SegmentCache(..., near=True)")
        if near_max_edits < 0:
            raise InputError(f"near_max_edits must be >= 0, got {near_max_edits}")
        self.near_max_edits = int(near_max_edits)
        self.batch_segments = int(batch_segments)
        self.separator = separator
        self.forwards = 0  # segments encoded by this compressor (cache misses)
        self.near_reused = 0

    # -- contract ---------------------------------------------------------------------

    @property
    def target(self) -> str:
        from ..core.fingerprint import model_fingerprint

        return model_fingerprint(self.model)

    @property
    def cfg(self) -> EncoderConfig:
        return self.encoder.cfg

    def config(self) -> dict[str, Any]:
        return {
            "lm": self.target,
            "encoder": self.encoder.fingerprint,
            "segment_tokens": self.cfg.segment_tokens,
            "min_rate": self.cfg.min_rate,
            "max_rate": self.cfg.max_rate,
            "dtype": str(self.encoder.dtype),
            "separator": self.separator,
        }

    def _score_hash(self, rows: int | None) -> str:
        c: dict[str, Any] = {
            "kind": CE_KIND,
            "lm": self.target,
            "encoder": self.encoder.fingerprint,
        }
        c["dtype"] = str(self.encoder.dtype)
        if rows is not None:
            c["rows"] = rows
        return cache_config_hash(c)

    def run(
        self, requests: Sequence[Request], *, progress: ProgressCallback | None = None
    ) -> list[LatentPrompt]:
        plans = [self._plan(r) for r in requests]
        wanted = list(dict.fromkeys((s.ids, k) for p in plans for s, k in zip(p.segments, p.rows)))
        rows = self._rows(wanted, progress)
        return [self._build(r, p, rows) for r, p in zip(requests, plans)]

    def positions(self, prompt: Any, rate: float) -> int:
        """Positions (rows + verbatim tokens) this compressor uses for ``prompt`` at
        ``rate``: the ``target_tokens`` that asks for exactly that rate."""
        if not self.cfg.min_rate <= rate <= self.cfg.max_rate:
            raise InputError(
                f"rate {rate} is outside this encoder's trained range "
                f"[{self.cfg.min_rate:g}, {self.cfg.max_rate:g}]"
            )
        texts = [d.text for d in self.inputs(prompt)]
        pieces, _ = segment_documents(self.tokenizer, texts, self.cfg.segment_tokens)
        sep = len(self.tokenizer.encode(self.separator, add_special_tokens=False))
        n = sep * (len(texts) - 1)
        for p in pieces:
            if isinstance(p, Segment):
                n += rows_for(len(p.ids), rate)
            else:
                n += len(self.tokenizer.encode(p.text, add_special_tokens=False))
        return n

    # -- planning ---------------------------------------------------------------------

    def _plan(self, req: Request) -> _Plan:
        texts = [getattr(d, "text", d) for d in req.inputs]
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(f"document {i} is not text ({type(t).__name__})")
        pieces, tokens = segment_documents(self.tokenizer, texts, self.cfg.segment_tokens)
        sep = len(self.tokenizer.encode(self.separator, add_special_tokens=False))
        sep_tokens = sep * (len(texts) - 1)
        segs = [p for p in pieces if isinstance(p, Segment)]
        verbatim = sum(
            len(self.tokenizer.encode(p.text, add_special_tokens=False))
            for p in pieces
            if isinstance(p, Verbatim)
        )
        original = tokens + sep_tokens
        target = req.budget.resolve(original)
        notes: list[str] = []
        if req.question is not None:
            notes.append("the question is not compressed and does not change the rows (CompLLM)")
        lengths = [len(s.ids) for s in segs]
        room = target - verbatim - sep_tokens
        if segs and room < len(segs):
            from ..errors import BudgetError

            raise BudgetError(
                f"a budget of {target} positions leaves {room} for {len(segs)} segments after "
                f"{verbatim + sep_tokens} verbatim tokens: every segment needs at least one row; "
                "raise the budget"
            )
        rate = choose_rate(lengths, room, self.cfg.min_rate, self.cfg.max_rate)
        if segs and sum(lengths) <= room and rate == self.cfg.min_rate and self.cfg.min_rate > 1:
            notes.append(
                f"the budget allows more rows than rate {rate:g}x gives: this encoder was "
                f"trained for rates {self.cfg.min_rate:g}x-{self.cfg.max_rate:g}x"
            )
        ks = [rows_for(n, rate) for n in lengths]
        return _Plan(pieces, segs, ks, verbatim + sep_tokens, original, rate, notes)

    # -- rows: cache, near duplicates, encoder ----------------------------------------

    def _rows(self, wanted: list[tuple[tuple[int, ...], int]], progress: Any) -> dict[Any, Any]:
        torch = require("torch")
        out: dict[Any, Any] = {}
        keys = {w: token_key(self._score_hash(w[1]), np.asarray(w[0])) for w in wanted}
        if self.cache is not None and wanted:
            got = self.cache.get(self.namespace, CE_KIND, keys.values())
            for w, key in keys.items():
                a = got.get(key)
                if a is not None and tuple(a.arrays["ids"].tolist()) == w[0]:
                    out[w] = torch.from_numpy(a.arrays["rows"]).to(self.encoder.dtype)
        miss = [w for w in wanted if w not in out]
        vecs = None
        if self.near and miss:
            vecs = self._near(miss, out)
            miss = [w for w in miss if w not in out]
        if miss:
            with torch.inference_mode():
                fresh = self.encoder.encode(
                    [list(w[0]) for w in miss],
                    [w[1] for w in miss],
                    batch_size=self.batch_segments,
                    progress=progress,
                )
            self.forwards += len(miss)
            for w, r in zip(miss, fresh):
                out[w] = r.detach().to("cpu")
            if self.cache is not None:
                self._store(miss, out, keys, vecs)
        elif progress is not None:
            progress(len(wanted), len(wanted))
        return out

    def _store(self, miss: list[Any], out: dict[Any, Any], keys: dict[Any, str], vecs: Any) -> None:
        assert self.cache is not None
        arts = {
            keys[w]: Artifact(
                CE_KIND,
                {"rows": out[w].float().numpy(), "ids": np.asarray(w[0], dtype=np.int32)},
                {"rows": w[1]},
            )
            for w in miss
        }
        self.cache.put(self.namespace, CE_KIND, arts)
        if self.near:
            content = {w: token_key(self._score_hash(None), np.asarray(w[0])) for w in miss}
            self.cache.put(
                self.namespace,
                SEG_KIND,
                {content[w]: Artifact(SEG_KIND, {"ids": np.asarray(w[0], np.int32)}) for w in miss},
            )
            assert vecs is not None
            self.cache.near_add(
                self.namespace, [content[w] for w in miss], np.stack([vecs[w] for w in miss])
            )

    def _near(self, miss: list[Any], out: dict[Any, Any]) -> dict[Any, Any]:
        """Fill ``out`` for misses whose near duplicate is cached; return every miss's
        embedding (for indexing the ones encoded fresh)."""
        torch = require("torch")
        assert self.cache is not None
        texts = [self.tokenizer.decode(list(w[0])) for w in miss]
        emb = self.cache.embed(texts)
        vecs = {w: emb[i] for i, w in enumerate(miss)}
        found = self.cache.near_search(self.namespace, emb)
        cands = {w: f[0] for w, f in zip(miss, found) if f is not None}
        if not cands:
            return vecs
        segs = self.cache.get(self.namespace, SEG_KIND, set(cands.values()), count=False)
        want: dict[Any, tuple[str, tuple[int, ...]]] = {}
        for w, ck in cands.items():
            a = segs.get(ck)
            if a is None:
                continue
            other = tuple(a.arrays["ids"].tolist())
            if token_edits(w[0], other) <= self.near_max_edits:
                want[w] = (token_key(self._score_hash(w[1]), np.asarray(other)), other)
        got = self.cache.get(self.namespace, CE_KIND, [k for k, _ in want.values()], count=False)
        for w, (k, other) in want.items():
            a = got.get(k)
            if a is not None and tuple(a.arrays["ids"].tolist()) == other:
                out[w] = torch.from_numpy(a.arrays["rows"]).to(self.encoder.dtype)
                self.cache.note_near_hit()
                self.near_reused += 1
        return vecs

    # -- result -----------------------------------------------------------------------

    def _build(self, req: Request, plan: _Plan, rows: dict[Any, Any]) -> LatentPrompt:
        torch = require("torch")
        parts: list[Part] = []
        run: list[Any] = []
        slots: list[Slot] = []
        row = 0
        doc = 0

        def flush() -> None:
            if run:
                parts.append(LatentPart(torch.cat(run, dim=0), tuple(slots)))
                run.clear()
                slots.clear()

        seg_i = 0
        for p in plan.pieces:
            if p.document != doc:
                flush()
                parts.append(TextPart(self.separator, "context"))
                doc = p.document
            if isinstance(p, Verbatim):
                flush()
                parts.append(TextPart(p.text, "keep", p.document, p.start, p.end))
                continue
            k = plan.rows[seg_i]
            r = rows[(p.ids, k)]
            run.append(r)
            slots.append(Slot(p.document, p.start, p.end, row, k))
            row += k
            seg_i += 1
        flush()
        return LatentPrompt(
            parts=tuple(parts),
            target=self.target,
            hidden_size=self.encoder.hidden_size,
            compressor=self.name,
            config_hash=self.config_hash,
            budget=req.budget,
            original_tokens=plan.original_tokens,
            compressed_tokens=row + plan.text_tokens,
            notes=tuple(plan.notes),
            meta={"rate": plan.rate, "segments": len(plan.segments)},
        )


class _Plan:
    __slots__ = ("notes", "original_tokens", "pieces", "rate", "rows", "segments", "text_tokens")

    def __init__(
        self,
        pieces: list[Segment | Verbatim],
        segments: list[Segment],
        rows: list[int],
        text_tokens: int,
        original_tokens: int,
        rate: float,
        notes: list[str],
    ) -> None:
        self.pieces = pieces
        self.segments = segments
        self.rows = rows
        self.text_tokens = text_tokens
        self.original_tokens = original_tokens
        self.rate = rate
        self.notes = notes


def token_edits(a: Sequence[int], b: Sequence[int]) -> int:
    """Tokens changed between two id sequences (replaced, inserted or deleted; the longer
    side of each replaced run)."""
    n = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op != "equal":
            n += max(i2 - i1, j2 - j1)
    return n


def budget_for_rate(rate: float) -> Budget:
    """The budget of a ``rate``-times compression (``ratio = 1 / rate``)."""
    if rate < 1:
        raise InputError(f"a compression rate must be at least 1, got {rate}")
    return Budget(ratio=1.0 / rate)
