"""LatentPrompt: parts, slot map, validation and the safetensors round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ctxcomp
from ctxcomp.latent import LatentPart, LatentPrompt, Slot, TextPart

torch = pytest.importorskip("torch")


def make_prompt(d: int = 8) -> LatentPrompt:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, d, generator=g)
    b = torch.randn(2, d, generator=g)
    return LatentPrompt(
        parts=(
            TextPart("Read this:\n", "instruction"),
            LatentPart(a, (Slot(0, 0, 40, 0, 2), Slot(0, 41, 60, 2, 1))),
            TextPart("kept verbatim", "keep", 0, 61, 74),
            LatentPart(b, (Slot(1, 0, 25, 3, 2),)),
        ),
        target="abcdef0123456789",
        hidden_size=d,
        compressor="complm",
        config_hash="0123456789abcdef",
        budget=ctxcomp.Budget(ratio=0.5),
        original_tokens=20,
        compressed_tokens=9,
        notes=("a note",),
        meta={"rate": 2},
    )


def test_views_and_dict() -> None:
    p = make_prompt()
    assert p.n_rows == 5 and tuple(p.rows.shape) == (5, 8)
    assert [s.row for s in p.slots] == [0, 2, 3]
    assert [t.role for t in p.text_parts] == ["instruction", "keep"]
    assert p.ratio == pytest.approx(9 / 20)
    d = p.to_dict()
    json.dumps(d)  # JSON-serialisable
    assert d["latent_rows"] == 5 and [x["type"] for x in d["parts"]] == [
        "text",
        "latent",
        "text",
        "latent",
    ]
    assert d["parts"][1]["slots"][1] == {"document": 0, "start": 41, "end": 60, "row": 2, "rows": 1}


def test_save_load_round_trip(tmp_path: Path) -> None:
    p = make_prompt()
    path = tmp_path / "prompt.safetensors"
    p.save(path)
    q = LatentPrompt.load(path)
    assert q.to_dict() == p.to_dict()
    torch.testing.assert_close(q.rows, p.rows, rtol=0, atol=0)
    assert q.budget == p.budget and q.slots == p.slots and q.parts[2] == p.parts[2]
    assert LatentPrompt.from_bytes(p.to_bytes()).to_dict() == p.to_dict()
    half = LatentPart(p.rows.half(), ())
    r = LatentPrompt.from_bytes(
        LatentPrompt((half,), "t", 8, "x", "h", ctxcomp.Budget(target_tokens=5), 10, 5).to_bytes()
    )
    assert r.rows.dtype == torch.float16  # dtype kept


def test_load_refuses_other_files(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other))
    with pytest.raises(ctxcomp.InputError, match="not a latent prompt"):
        LatentPrompt.load(other)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 3)
    with pytest.raises(ctxcomp.InputError, match="not a latent prompt"):
        LatentPrompt.load(junk)
    with pytest.raises(ctxcomp.InputError, match="cannot read"):
        LatentPrompt.load(tmp_path / "missing.safetensors")


def test_validation() -> None:
    rows = torch.zeros(2, 8)
    with pytest.raises(ctxcomp.InputError, match="float tensor"):
        LatentPart(torch.zeros(2, 8, dtype=torch.long))
    with pytest.raises(ctxcomp.InputError, match="float tensor"):
        LatentPart(torch.zeros(8))
    with pytest.raises(ctxcomp.InputError, match="at least one row"):
        LatentPart(torch.zeros(0, 8))
    with pytest.raises(ctxcomp.InputError, match="non-empty text"):
        TextPart("")
    with pytest.raises(ctxcomp.InputError, match="role"):
        TextPart("x", "shout")
    b = ctxcomp.Budget(ratio=0.5)
    with pytest.raises(ctxcomp.InputError, match="width 8"):
        LatentPrompt((LatentPart(rows),), "t", 16, "c", "h", b, 4, 2)
    with pytest.raises(ctxcomp.InputError, match="outside"):
        LatentPrompt((LatentPart(rows, (Slot(0, 0, 5, 1, 2),)),), "t", 8, "c", "h", b, 4, 2)
    with pytest.raises(ctxcomp.InputError, match="at least one part"):
        LatentPrompt((), "t", 8, "c", "h", b, 4, 2)
