"""Tokenizers of C3-layout checkpoints, loaded with plain transformers classes.

C3's release ships Qwen's tiktoken vocabulary (``qwen.tiktoken``) with a remote-code
``QWenTokenizer``. Without running that code, the vocabulary is converted to a fast
tokenizer by transformers' own :class:`~transformers.convert_slow_tokenizer.TikTokenConverter`
with Qwen's pre-tokenisation pattern and its special tokens in Qwen's order
(``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``, 205 ``<|extra_i|>``, then the tags
``<ref> </ref> <box> </box> <quad> </quad> <img> </img> <imgpad>``), numbered from the
vocabulary's size: for Qwen's 151,643 ranks, ``<img>`` = 151857, ``</img>`` = 151858,
``<imgpad>`` = 151859, the ids C3's config names. A checkpoint with a ``tokenizer.json``
(what :func:`~.layout.save_c3` writes) loads as it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..._deps import require
from ...errors import ModelLoadError

QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_TAGS = (
    "<ref>",
    "</ref>",
    "<box>",
    "</box>",
    "<quad>",
    "</quad>",
    "<img>",
    "</img>",
    "<imgpad>",
)
QWEN_SPECIAL = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    *(f"<|extra_{i}|>" for i in range(205)),
    *QWEN_TAGS,
)
TIKTOKEN_FILE = "qwen.tiktoken"


def qwen_tiktoken_tokenizer(vocab_file: str | os.PathLike[str]) -> Any:
    """A :class:`~transformers.PreTrainedTokenizerFast` equivalent to QWenTokenizer."""
    require("transformers")
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    try:
        conv = TikTokenConverter(
            vocab_file=str(vocab_file), pattern=QWEN_PATTERN, extra_special_tokens=QWEN_SPECIAL
        )
        tok = PreTrainedTokenizerFast(
            tokenizer_object=conv.converted(),
            eos_token="<|endoftext|>",
            pad_token="<|endoftext|>",
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read the tiktoken vocabulary {vocab_file}: {exc}") from exc
    return tok


def load_tokenizer(path: str | os.PathLike[str]) -> Any:
    """The tokenizer stored in a checkpoint directory, without remote code.

    ``tokenizer.json`` loads as :class:`~transformers.PreTrainedTokenizerFast` (whatever
    class ``tokenizer_config.json`` names); else ``qwen.tiktoken`` is converted."""
    require("transformers")
    from transformers import PreTrainedTokenizerFast

    d = Path(path)
    if (d / "tokenizer.json").is_file():
        try:
            return PreTrainedTokenizerFast.from_pretrained(str(d))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load the tokenizer in {d}: {exc}") from exc
    if (d / TIKTOKEN_FILE).is_file():
        return qwen_tiktoken_tokenizer(d / TIKTOKEN_FILE)
    raise ModelLoadError(
        f"no tokenizer in {d}: expected tokenizer.json or {TIKTOKEN_FILE} (C3's vocabulary)"
    )
