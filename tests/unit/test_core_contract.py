"""The generic compressor contract, exercised by a non-text method written only against
the public core: a toy "embedding" compressor that returns one vector per kept sentence,
caches each sentence's vector in the segment cache, and is created by name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest

import ctxcomp
from ctxcomp.cache import Artifact, MemoryStore, SegmentCache
from ctxcomp.core import (
    Compressor,
    ProgressCallback,
    Registry,
    Request,
    Result,
    compressors,
    config_hash,
    digest,
)


@dataclass(frozen=True)
class Embedded(Result):
    vectors: np.ndarray
    sources: tuple[tuple[int, int, int], ...]  # (document, start, end) per row
    compressor: str
    config_hash: str
    budget: ctxcomp.Budget
    original_tokens: int
    compressed_tokens: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"rows": int(self.vectors.shape[0]), "config_hash": self.config_hash}


class ToyEmbedder(Compressor[Embedded]):
    """Each sentence -> a hashed bag-of-characters vector; keeps the longest sentences."""

    name: ClassVar[str] = "toy-embedder"
    kind: ClassVar[str] = "latent"

    def __init__(self, dim: int = 8, cache: SegmentCache | None = None) -> None:
        self.dim = dim
        self.cache = cache
        self.forwards = 0

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim}

    def _embed(self, sentences: list[str]) -> np.ndarray:
        self.forwards += len(sentences)
        out = np.zeros((len(sentences), self.dim), np.float32)
        for i, s in enumerate(sentences):
            for ch in s:
                out[i, ord(ch) % self.dim] += 1.0
        return out

    def run(
        self, requests: Sequence[Request], *, progress: ProgressCallback | None = None
    ) -> list[Embedded]:
        results = []
        for r in requests:
            sents = [
                (d, a, a + len(s))
                for d, doc in enumerate(r.inputs)
                for a, s in _sentences(doc.text)
            ]
            texts = [r.inputs[d].text[a:b] for d, a, b in sents]
            keys = [digest(f"{self.config_hash}\0{t}") for t in texts]
            got = self.cache.get("default", "toy", keys) if self.cache else {}
            miss = [i for i, k in enumerate(keys) if k not in got]
            fresh = self._embed([texts[i] for i in miss]) if miss else None
            vecs = np.zeros((len(texts), self.dim), np.float32)
            for i, k in enumerate(keys):
                if k in got:
                    vecs[i] = got[k].arrays["v"]
            for j, i in enumerate(miss):
                assert fresh is not None
                vecs[i] = fresh[j]
            if self.cache and miss:
                self.cache.put(
                    "default", "toy", {keys[i]: Artifact("toy", {"v": vecs[i]}) for i in miss}
                )
            n = len(texts)
            k = min(n, r.budget.resolve(n))
            keep = sorted(sorted(range(n), key=lambda i: (-len(texts[i]), i))[:k])
            results.append(
                Embedded(
                    vectors=vecs[keep],
                    sources=tuple(sents[i] for i in keep),
                    compressor=self.name,
                    config_hash=self.config_hash,
                    budget=r.budget,
                    original_tokens=n,
                    compressed_tokens=len(keep),
                )
            )
        return results


def _sentences(text: str) -> list[tuple[int, str]]:
    out, a = [], 0
    for i, ch in enumerate(text):
        if ch == ".":
            out.append((a, text[a : i + 1]))
            a = i + 1
            while a < len(text) and text[a] == " ":
                a += 1
    if a < len(text):
        out.append((a, text[a:]))
    return out


TEXT = "Short one. A much longer second sentence here. Mid length third. End."


def test_toy_compressor_uses_the_derived_verbs() -> None:
    comp = ToyEmbedder()
    r = comp.compress(TEXT, ratio=0.5)
    assert isinstance(r, Result)
    assert r.compressed_tokens == 2 and r.original_tokens == 4
    assert r.ratio == 0.5
    assert [s[1] for s in r.sources] == sorted(s[1] for s in r.sources)  # order kept
    assert (
        r.config_hash == comp.config_hash == config_hash({"compressor": "toy-embedder", "dim": 8})
    )
    rs = comp.compress_batch([TEXT, "One. Two."], target_tokens=1)
    assert [x.compressed_tokens for x in rs] == [1, 1]


def test_cached_equals_uncached_and_skips_work() -> None:
    cache = SegmentCache(MemoryStore())
    cached, plain = ToyEmbedder(cache=cache), ToyEmbedder()
    first = cached.compress(TEXT, ratio=0.5)
    assert cached.forwards == 4
    second = cached.compress(TEXT, ratio=0.75)  # another budget: no new work
    assert cached.forwards == 4
    ref = plain.compress(TEXT, ratio=0.75)
    np.testing.assert_array_equal(second.vectors, ref.vectors)
    assert second.sources == ref.sources and first.compressed_tokens == 2


def test_registry_creates_by_name_and_reports_unknown() -> None:
    reg: Registry[Compressor[Any]] = Registry("compressor")
    reg.register("toy", ToyEmbedder, summary="test method")
    comp = reg.create("toy", dim=4)
    assert isinstance(comp, ToyEmbedder) and comp.dim == 4
    assert reg.names() == ("toy",) and "toy" in reg
    with pytest.raises(ctxcomp.InputError, match="already registered"):
        reg.register("toy", ToyEmbedder)
    with pytest.raises(ctxcomp.InputError, match=r"unknown compressor 'nope'; known: toy"):
        reg.create("nope")
    things: Registry[ctxcomp.Budget] = Registry("thing")
    things.register("budget", "ctxcomp.budget:Budget")  # imported when first created
    assert things.create("budget", ratio=0.5) == ctxcomp.Budget(ratio=0.5)


def test_global_registry_decorator() -> None:
    @compressors.register("toy-embedder-test", replace=True)
    class Local(ToyEmbedder):
        pass

    assert isinstance(compressors.create("toy-embedder-test"), Local)


def test_bad_inputs_named() -> None:
    comp = ToyEmbedder()
    with pytest.raises(ctxcomp.BudgetError):
        comp.compress(TEXT, ratio=0.5, target_tokens=3)
    with pytest.raises(ctxcomp.InputError, match="sequence of prompts"):
        comp.compress_batch(TEXT, ratio=0.5)  # type: ignore[arg-type]
    with pytest.raises(ctxcomp.InputError, match="question must be a string"):
        Request((ctxcomp.Document("x"),), ctxcomp.Budget(ratio=0.5), 3)  # type: ignore[arg-type]
    with pytest.raises(ctxcomp.InputError, match="at least one input"):
        Request((), ctxcomp.Budget(ratio=0.5))
    with pytest.raises(TypeError, match="kind must be one of"):

        class Bad(ToyEmbedder):
            kind = "audio"


def test_model_fingerprint_tracks_weights() -> None:
    torch = pytest.importorskip("torch")
    from ctxcomp.core import model_fingerprint

    torch.manual_seed(0)
    a = torch.nn.Linear(4, 3)
    b = torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    assert model_fingerprint(a) == model_fingerprint(b)
    with torch.no_grad():
        b.weight[0, 0] += 1.0
    assert model_fingerprint(a) != model_fingerprint(b)  # in-place edit seen
    c = torch.nn.Linear(4, 4)
    assert model_fingerprint(c) != model_fingerprint(a)
