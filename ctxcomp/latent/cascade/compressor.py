"""CascadeCompressor: context -> C3 latent blocks (one per chunk) for one decoder LM, cached.

>>> comp = CascadeCompressor("runs/c3/model", cache="segments.sqlite")   # doctest: +SKIP
>>> lp = comp.compress(long_text, ratio=0.25)          # a LatentPrompt          # doctest: +SKIP
>>> reconstruct(comp.model, lp)                       # the text, back          # doctest: +SKIP

Each document is tokenized with the encoder's tokenizer and cut into chunks no longer than
the encoder's trained window (:mod:`.plan`: the budget, in latent rows, decides the chunk
length); every chunk becomes ``N`` rows in the decoder's input-embedding space. A chunk's
rows depend only on its token ids and the two models, so they are cached per chunk — key:
chunk ids + a hash of (encoder fingerprint, decoder fingerprint, N, block markers) — in
the caller's namespace; a repeated chunk is never encoded twice. The result is a
:class:`~ctxcomp.latent.LatentPrompt` whose ``target`` is the decoder's fingerprint (another
LM is refused by :func:`~ctxcomp.latent.check_target`) with one latent part per chunk and
a slot per chunk (document, character span -> rows).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ...cache import Artifact, SegmentCache, as_cache, token_key
from ...cache import config_hash as cache_config_hash
from ...cache.keys import check_namespace
from ...core import Compressor, ProgressCallback, Request, model_fingerprint
from ..prompt import LatentPart, LatentPrompt, Slot
from .layout import CascadeModel, load_c3
from .plan import chunk_length, split

KIND = "c3.latent"


@dataclass(frozen=True)
class Chunk:
    document: int
    start: int  # characters
    end: int
    ids: tuple[int, ...]


class CascadeCompressor(Compressor[LatentPrompt]):
    """C3 latent compression (arXiv 2511.15244) with any C3-layout checkpoint.

    ``model``: a :class:`~.layout.CascadeModel` or a checkpoint directory (loaded with
    ``device``/``dtype``). ``cache``: anything :func:`ctxcomp.cache.as_cache` takes;
    ``namespace``: the tenant whose entries are read and written. ``max_chunk_tokens``
    (default: the model's trained window) and ``min_chunk_tokens`` (default ``N``) bound
    the chunk length; ``chunk_grid`` snaps it so equal budgets cut equal chunks.
    """

    name: ClassVar[str] = "c3"
    kind: ClassVar[str] = "latent"

    def __init__(
        self,
        model: CascadeModel | str | os.PathLike[str],
        *,
        cache: Any = None,
        namespace: str = "default",
        max_chunk_tokens: int | None = None,
        min_chunk_tokens: int | None = None,
        chunk_grid: int = 16,
        batch_size: int = 8,
        device: str = "auto",
        dtype: Any = "auto",
    ) -> None:
        if not isinstance(model, CascadeModel):
            model = load_c3(model, device=device, dtype=dtype)
        self.model = model
        self.cache: SegmentCache | None = as_cache(cache)
        self.namespace = check_namespace(namespace)
        self.max_chunk = int(max_chunk_tokens or model.chunk_tokens)
        self.min_chunk = int(min_chunk_tokens or model.num_latents)
        self.grid = int(chunk_grid)
        self.batch_size = max(1, int(batch_size))
        self.forwards = 0  # chunks encoded by this compressor (cache misses)

    @property
    def target(self) -> str:
        """Fingerprint of the decoder LM the latents are made for."""
        return model_fingerprint(self.model.decoder)

    def latent_hash(self) -> str:
        """What a chunk's rows depend on besides its ids (the cache key's config part)."""
        enc = self.model.encoder
        return cache_config_hash(
            {
                "kind": KIND,
                "encoder": model_fingerprint(enc),
                "target": self.target,
                "latents": enc.num_latents,
                "start": enc.start_ids.tolist(),
                "end": enc.end_ids.tolist(),
                "dtype": str(enc.projector.weight.dtype),
            }
        )

    def config(self) -> dict[str, Any]:
        return {
            "latent_hash": self.latent_hash(),
            "max_chunk_tokens": self.max_chunk,
            "min_chunk_tokens": self.min_chunk,
            "chunk_grid": self.grid,
            "template": self.model.template.to_dict(),
        }

    # -- planning -------------------------------------------------------------------------

    def _plan(self, r: Request) -> tuple[list[Chunk], int, int, list[str]]:
        tok = self.model.encoder_tokenizer
        docs: list[tuple[list[int], list[tuple[int, int]]]] = []
        notes = []
        for i, d in enumerate(r.inputs):
            enc = tok(d.text, add_special_tokens=False, return_offsets_mapping=True)
            docs.append((list(enc["input_ids"]), list(enc["offset_mapping"])))
            if not enc["input_ids"]:
                notes.append(f"document {i} is empty: it has no latent rows")
        if r.question is not None:
            notes.append("C3 encodes the context without the question: ask it with answer()")
        lengths = [len(ids) for ids, _ in docs]
        total = sum(lengths)
        n = self.model.num_latents
        c = chunk_length(
            lengths,
            r.budget.resolve(total),
            num_latents=n,
            max_chunk=self.max_chunk,
            min_chunk=self.min_chunk,
            grid=self.grid,
        )
        chunks = []
        for i, (ids, offs) in enumerate(docs):
            for a, b in split(len(ids), c):
                chunks.append(Chunk(i, int(offs[a][0]), int(offs[b - 1][1]), tuple(ids[a:b])))
        if len(chunks) * n > total:
            notes.append(
                f"{len(chunks) * n} latent rows stand for {total} tokens: short input, no saving"
            )
        return chunks, total, c, notes

    # -- rows: cache, then the encoder ------------------------------------------------------

    def rows(
        self, chunks: Sequence[Chunk], progress: ProgressCallback | None = None
    ) -> dict[tuple[int, ...], Any]:
        """Latent rows ``[N, d]`` (torch, the model's dtype) of each distinct chunk."""
        import torch

        enc = self.model.encoder
        n, d = enc.num_latents, enc.out_dim
        lh = self.latent_hash()
        keys = {c.ids: token_key(lh, np.asarray(c.ids)) for c in chunks}
        out: dict[tuple[int, ...], Any] = {}
        if self.cache is not None and keys:
            got = self.cache.get(self.namespace, KIND, keys.values())
            for ids, k in keys.items():
                art = got.get(k)
                if art is not None and art.arrays.get("rows", np.empty(0)).shape == (n, d):
                    out[ids] = torch.from_numpy(art.arrays["rows"]).to(enc.projector.weight.dtype)
        miss = sorted((ids for ids in keys if ids not in out), key=len)
        done = len(out)
        if progress is not None:
            progress(done, len(keys))
        fresh: dict[str, Artifact] = {}
        dev = enc.query.weight.device
        for s in range(0, len(miss), self.batch_size):
            part = miss[s : s + self.batch_size]
            width = max(len(x) for x in part)
            batch = torch.zeros(len(part), width, dtype=torch.long)
            mask = torch.zeros(len(part), width, dtype=torch.long)
            for i, x in enumerate(part):
                batch[i, : len(x)] = torch.tensor(x)
                mask[i, : len(x)] = 1
            with torch.inference_mode():
                lat = enc(batch.to(dev), mask.to(dev)).cpu()
            self.forwards += len(part)
            for i, x in enumerate(part):
                out[x] = lat[i].clone()
                if self.cache is not None:
                    arr = lat[i].float().numpy() if lat.dtype == torch.bfloat16 else lat[i].numpy()
                    fresh[keys[x]] = Artifact(KIND, {"rows": arr}, {"tokens": len(x)})
            done += len(part)
            if progress is not None:
                progress(done, len(keys))
        if self.cache is not None and fresh:
            self.cache.put(self.namespace, KIND, fresh)
        return out

    # -- the contract ----------------------------------------------------------------------

    def run(
        self, requests: Sequence[Request], *, progress: ProgressCallback | None = None
    ) -> list[LatentPrompt]:
        plans = [self._plan(r) for r in requests]
        rows = self.rows([c for p in plans for c in p[0]], progress)
        target, ch = self.target, self.config_hash
        results = []
        n = self.model.num_latents
        for r, (chunks, total, c, notes) in zip(requests, plans):
            parts = tuple(
                LatentPart(rows[x.ids], (Slot(x.document, x.start, x.end, j * n, n),))
                for j, x in enumerate(chunks)
            )
            results.append(
                LatentPrompt(
                    parts=parts,
                    target=target,
                    hidden_size=self.model.encoder.out_dim,
                    compressor=self.name,
                    config_hash=ch,
                    budget=r.budget,
                    original_tokens=total,
                    compressed_tokens=len(chunks) * n,
                    notes=tuple(notes),
                    meta={"chunk_tokens": c, "chunks": len(chunks), "latents_per_chunk": n},
                )
            )
        return results
