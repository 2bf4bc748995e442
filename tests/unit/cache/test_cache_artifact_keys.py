"""Artifacts verify themselves; keys are content-addressed and stable."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctxcomp.cache import Artifact, CorruptEntryError, config_hash, segment_text, token_key
from ctxcomp.cache.artifact import decode
from ctxcomp.cache.keys import check_namespace, normalise, segment_id


def test_roundtrip_generic_arrays() -> None:
    a = Artifact(
        "latent",
        {
            "emb": np.random.default_rng(0).standard_normal((3, 8)).astype(np.float16),
            "ids": np.arange(5, dtype=np.int32),
        },
        meta={"layer": 3},
    )
    b = decode(a.encode(), kind="latent")
    assert b.kind == "latent" and b.meta == {"layer": 3}
    assert b.arrays["emb"].dtype == np.float16 and b.arrays["emb"].shape == (3, 8)
    np.testing.assert_array_equal(b.arrays["emb"], a.arrays["emb"])
    np.testing.assert_array_equal(b.arrays["ids"], a.arrays["ids"])


def test_kind_mismatch_is_refused() -> None:
    with pytest.raises(CorruptEntryError):
        decode(Artifact("a", {}).encode(), kind="b")


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_truncation_or_bit_flip_is_detected(data: st.DataObject) -> None:
    enc = Artifact("tc.window", {"p": np.linspace(0, 1, 50, dtype=np.float32)}).encode()
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(enc) - 1))
        bad = enc[:cut]
    else:
        pos = data.draw(st.integers(0, len(enc) - 1))
        bit = data.draw(st.integers(0, 7))
        bad = enc[:pos] + bytes([enc[pos] ^ (1 << bit)]) + enc[pos + 1 :]
    with pytest.raises(CorruptEntryError):
        decode(bad)


def test_token_key_depends_on_ids_and_config_only() -> None:
    ids = np.array([5, 6, 7], dtype=np.int64)
    c1, c2 = config_hash({"model": "a"}), config_hash({"model": "b"})
    assert token_key(c1, ids) == token_key(c1, ids.astype(np.int32))
    assert token_key(c1, ids) != token_key(c2, ids)
    assert token_key(c1, ids) != token_key(c1, ids[:2])
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})


def test_segment_id_uses_normalised_text() -> None:
    assert normalise("  Cafe\u0301 \n\t  au lait ") == "Café au lait"
    assert segment_id("c", "Café au lait") == segment_id("c", " Cafe\u0301\n au  lait")
    assert segment_id("c", "a b") != segment_id("d", "a b")


def test_namespaces_are_validated() -> None:
    assert check_namespace("tenant-42") == "tenant-42"
    for bad in ("", "a b", "x" * 200, "a\nb", None):
        with pytest.raises(Exception, match="namespace"):
            check_namespace(bad)  # type: ignore[arg-type]


def test_segments_are_stable_wherever_a_passage_appears(essays: dict[str, str]) -> None:
    passage = essays["copy"][:3000]
    alone = {s.id for s in segment_text(passage, "cfg")}
    in_context = {
        s.id for s in segment_text("Some preface.\n\n" + passage + "\n\nAn epilogue.", "cfg")
    }
    assert alone <= in_context


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab .!?\n")), max_size=400), st.integers(5, 60))
def test_segments_cover_all_text_in_order(text: str, max_chars: int) -> None:
    segs = segment_text(text, "c", max_chars=max_chars)
    pos = 0
    for s in segs:
        assert s.start >= pos and s.end > s.start
        assert text[pos : s.start].strip() == ""
        pos = s.end
    covered = "".join(text[s.start : s.end] for s in segs)
    assert "".join(covered.split()) == "".join(text.split())
