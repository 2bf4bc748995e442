"""Line endings: compressed output uses the input's own convention, never a mix.

Kept text is copied verbatim from the input; what ctxcomp writes itself (a line break
between two kept runs whose dropped stretch held one, the separator between documents) is
written in the input's line ending: ``"\\r\\n"`` for Windows text, ``"\\r"`` for old Mac
text, ``"\\n"`` otherwise. When an input mixes conventions, the most frequent one is used.
"""

from __future__ import annotations

from collections.abc import Sequence


def line_ending(texts: Sequence[str]) -> str:
    """The line ending most used in ``texts`` (``"\\n"`` when they hold none)."""
    crlf = sum(t.count("\r\n") for t in texts)
    cr = sum(t.count("\r") for t in texts) - crlf
    lf = sum(t.count("\n") for t in texts) - crlf
    if crlf > max(lf, cr):
        return "\r\n"
    if cr > lf:
        return "\r"
    return "\n"


def with_line_ending(s: str, ending: str) -> str:
    """``s`` (a separator written by ctxcomp, in ``"\\n"`` form) in the ``ending`` convention."""
    return s if ending == "\n" or "\n" not in s else s.replace("\r\n", "\n").replace("\n", ending)


def document_separator(separator: str, texts: Sequence[str]) -> str:
    """The separator put between ``texts``, in their line-ending convention."""
    return with_line_ending(separator, line_ending(texts)) if "\n" in separator else separator


__all__ = ["document_separator", "line_ending", "with_line_ending"]
