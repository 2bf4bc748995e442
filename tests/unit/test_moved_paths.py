"""Renamed modules and classes stay importable under their old names, with a
DeprecationWarning naming the new ones, and give the very same objects."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.mark.parametrize(
    "old,name,new",
    [
        ("ctxcomp.cache.tc", "score_windows", "ctxcomp.cache.token_scores"),
        ("ctxcomp.cache.tc", "WINDOW_KIND", "ctxcomp.cache.token_scores"),
        ("ctxcomp.compressors._plain", "WordPieceMemo", "ctxcomp.compressors.wordpiece_fastpath"),
        ("ctxcomp.structure", "codepoints", "ctxcomp.text.units"),
        ("ctxcomp.structure", "Protection", "ctxcomp.text.protect"),
        ("ctxcomp.structure", "find_protected", "ctxcomp.text.protect"),
    ],
)
def test_old_module_paths_forward(old: str, name: str, new: str) -> None:
    sys.modules.pop(old, None)  # imported by an earlier case: import it afresh
    with pytest.warns(DeprecationWarning, match=f"{old} has moved to .*{new}"):
        mod = importlib.import_module(old)
    assert getattr(mod, name) is getattr(importlib.import_module(new), name)
    with pytest.raises(AttributeError):
        mod.no_such_name  # noqa: B018


def test_plan_is_the_unit_table() -> None:
    import ctxcomp.selection as selection

    with pytest.warns(DeprecationWarning, match="Plan is now UnitTable"):
        from ctxcomp.selection import Plan
    assert Plan is selection.UnitTable
    with pytest.raises(AttributeError):
        selection.NoSuchName  # noqa: B018


def test_the_cache_kind_keeps_its_name() -> None:
    """Renaming the module changes no key: entries written before are still found."""
    from ctxcomp.cache.token_scores import WINDOW_KIND

    assert WINDOW_KIND == "tc.window"
