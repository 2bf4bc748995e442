"""What text ctxcomp accepts: one policy shared by the library, the CLI and the integrations.

Accepted: any valid Unicode text (no lone surrogates) without C0 control characters other
than the whitespace ones (``\\t \\n \\v \\f \\r``) and without DEL. NUL, ESC (terminal escape
sequences), backspace and the rest are refused with their position, because they are
invisible in a prompt, change how terminals and some tokenizers treat the text, and are
almost always a sign of binary or mis-decoded input. Strip them first if they are intended.
"""

from __future__ import annotations

import re

from .errors import InputError

# C0 controls except \t \n \v \f \r, and DEL
CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def check_text(text: str, what: str) -> str:
    """``text`` if it follows the policy above, else an :class:`InputError` naming ``what``
    (e.g. ``"document 2"``, ``"the question"``) and the offending character's position."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"{what} contains an invalid character, the lone surrogate {text[exc.start]!r}, "
            f"at {_where(text, exc.start)}: not valid Unicode text (was it decoded with "
            "errors='surrogateescape'?)"
        ) from None
    m = CONTROL.search(text)
    if m is not None:
        raise InputError(
            f"{what} contains control character {m.group()!r} at {_where(text, m.start())}; "
            "only tab, newline, carriage return, form feed and vertical tab are accepted"
        )
    return text


def check_question(question: object) -> str | None:
    """The question (or ``None``) if it is a string that follows the policy above."""
    if question is None:
        return None
    if not isinstance(question, str):
        raise InputError(f"question must be a string, got {type(question).__name__}")
    return check_text(question, "the question")


def _where(text: str, i: int) -> str:
    line = text.count("\n", 0, i) + 1
    col = i - (text.rfind("\n", 0, i) + 1) + 1
    return f"offset {i} (line {line}, column {col})"


__all__ = ["CONTROL", "check_question", "check_text"]
