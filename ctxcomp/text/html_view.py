"""An HTML page that shows every input word, kept or dropped, shaded by keep probability."""

from __future__ import annotations

import html
from collections.abc import Sequence

from ..result import CompressionResult
from ..rules import RULE_NAMES

_CSS = """
body{font:15px/1.6 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#111}
h1{font-size:1.3rem} .meta{color:#555;font-size:.9rem}
.doc{white-space:pre-wrap;border:1px solid #ddd;border-radius:6px;padding:1rem;margin:1rem 0}
.w{border-radius:3px}
.w.k{color:#111}
.w.d{color:#9a9a9a;text-decoration:line-through}
.w.f{box-shadow:inset 0 -2px 0 #2b6cb0}
.w.r{box-shadow:inset 0 -2px 0 #b7791f}
.legend span{padding:0 .4rem;margin-right:.5rem}
"""

_JS = """
(function(){
  var k=document.querySelectorAll('.doc .w.k').length, d=document.querySelectorAll('.doc .w.d').length;
  document.body.dataset.kept=k; document.body.dataset.dropped=d; document.body.dataset.ready='1';
  var s=document.getElementById('summary');
  if(s){s.textContent=k+' words kept, '+d+' dropped ('+(100*k/Math.max(1,k+d)).toFixed(1)+'% kept)';}
})();
"""


def _shade(p: float) -> str:
    # green for likely-keep, red for likely-drop, alpha by confidence
    a = abs(p - 0.5) * 2 * 0.55 + 0.05
    return f"rgba(46,160,67,{a:.3f})" if p >= 0.5 else f"rgba(220,53,69,{a:.3f})"


def render_html(result: CompressionResult, texts: Sequence[str], title: str = "ctxcomp") -> str:
    """Page for ``result`` of compressing ``texts`` (the input documents, in order)."""
    if len(texts) != len(result.documents):
        raise ValueError(
            f"{len(texts)} texts given for a result of {len(result.documents)} documents"
        )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p class='meta'>"
        f"{result.original_tokens} → {result.compressed_tokens} tokens ({result.reader}), "
        f"ratio {result.ratio:.3f}, target {result.target_tokens}, mode {result.mode}, "
        f"config {result.config_hash}</p>",
        "<p class='meta' id='summary'></p>",
        "<p class='legend meta'><span class='w k' style='background:rgba(46,160,67,.5)'>kept</span>"
        "<span class='w d' style='background:rgba(220,53,69,.5)'>dropped</span>"
        "<span class='w k f'>forced / protected</span>"
        "<span class='w k r'>moved by a selection rule</span> shade = keep probability</p>",
    ]
    for i, text in enumerate(texts):
        parts.append(f"<div class='doc' data-doc='{i}'>")
        sc = result.scores[i] if result.scores is not None else None
        if sc is None:  # returned unchanged: everything kept, no scores computed
            parts.append(f"<span class='w k' title='kept (unchanged)'>{html.escape(text)}</span>")
        else:
            pos = 0
            rules = sc.rule.tolist() if sc.rule is not None else [0] * sc.starts.size
            for a, b, p, k, f, r in zip(
                sc.starts.tolist(),
                sc.ends.tolist(),
                sc.probs.tolist(),
                sc.kept.tolist(),
                sc.forced.tolist(),
                rules,
            ):
                if a > pos:
                    parts.append(html.escape(text[pos:a]))
                cls = ("w k" if k else "w d") + (" f" if f else "") + (" r" if r else "")
                why = f" ({RULE_NAMES[r]})" if r else ""
                parts.append(
                    f"<span class='{cls}' style='background:{_shade(p)}' title='p={p:.3f}{why}'>"
                    f"{html.escape(text[a:b])}</span>"
                )
                pos = b
            if pos < len(text):
                parts.append(html.escape(text[pos:]))
        parts.append("</div>")
    parts.append(f"<script>{_JS}</script></body></html>")
    return "".join(parts)
