"""Rankers by name: one lazy helper (``ctxcomp.rankers.LazyRanker``) creates the registered
ranker on first use, for the config builder and for the coarse stage's default. No model."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pytest

import ctxcomp
from ctxcomp import CoarseToFineCompressor, Document
from ctxcomp.core import compressors, rankers
from ctxcomp.rankers import LazyRanker
from tests.unit.test_coarse_stage import DOCS, BagOfWords, Q, WholeDocuments


class CountedBagOfWords(BagOfWords):
    """The bag-of-words ranker, counting how many were created."""

    name = "bow-test"
    made: ClassVar[list[str | None]] = []

    def __init__(self, model: str | None = None) -> None:
        CountedBagOfWords.made.append(model)


class UpFront(CountedBagOfWords):
    """...and one that says its fingerprint without being created."""

    @classmethod
    def fingerprint_for(cls, model: str | None = None) -> str:
        return f"up-front:{model}"


class ScoresOnly:
    name = "scores-only-test"

    def __init__(self, model: str | None = None) -> None:
        pass

    def score(self, question: str, texts: Sequence[str]) -> np.ndarray:
        return np.zeros(len(texts))

    def fingerprint(self) -> str:
        return "scores-only"


rankers.register("bow-test", CountedBagOfWords, replace=True)
rankers.register("up-front-test", UpFront, replace=True)
rankers.register("scores-only-test", ScoresOnly, replace=True)
compressors.register("whole-documents-test", WholeDocuments, replace=True)


def test_created_on_first_use_only() -> None:
    CountedBagOfWords.made.clear()
    lazy = LazyRanker("bow-test", "m1")
    assert lazy.name == "bow-test" and hasattr(lazy, "embed")
    assert CountedBagOfWords.made == []  # naming it, asking what it can do: nothing loaded
    assert lazy.score(Q, DOCS).shape == (len(DOCS),)
    assert lazy.embed(DOCS).shape == (len(DOCS), 256)
    assert lazy.fingerprint() == "bag-of-words-256"
    assert CountedBagOfWords.made == ["m1"]  # created once, with its model


def test_fingerprint_up_front_and_embed_only_where_the_ranker_has_it() -> None:
    CountedBagOfWords.made.clear()
    assert LazyRanker("up-front-test", "m2").fingerprint() == "up-front:m2"
    assert CountedBagOfWords.made == []
    assert not hasattr(LazyRanker("scores-only-test"), "embed")


def test_unknown_name_and_pickling() -> None:
    with pytest.raises(ctxcomp.InputError, match=r"unknown ranker 'bm25'; known: .*bi-encoder"):
        LazyRanker("bm25")
    lazy = LazyRanker("bow-test", "m3")
    lazy.get()
    again = pickle.loads(pickle.dumps(lazy))  # its name and model travel, not the model
    assert (again.name, again.model) == ("bow-test", "m3")


def test_the_config_builder_and_the_coarse_default_use_it() -> None:
    CountedBagOfWords.made.clear()
    c2f = ctxcomp.build_pipeline(method="whole-documents-test", ranker="bow-test")
    assert isinstance(c2f, CoarseToFineCompressor) and isinstance(c2f.ranker, LazyRanker)
    assert c2f.ranker.name == "bow-test" and CountedBagOfWords.made == []
    r = c2f.compress([Document(t) for t in DOCS], ratio=0.5, question=Q)
    assert CountedBagOfWords.made == [None] and r.question_aware
    assert min(r.documents, key=lambda d: d.rank).index in (0, 2)  # the fishing documents
    with pytest.raises(ctxcomp.InputError, match="needs ranker_model"):
        ctxcomp.build_pipeline(method="whole-documents-test", ranker="cross-encoder")
    default = CoarseToFineCompressor(WholeDocuments())
    assert isinstance(default.ranker, LazyRanker) and default.ranker.name == "bi-encoder"
