"""Latent compression: context turned into rows a causal LM reads through ``inputs_embeds``.

>>> from ctxcomp.latent import load_lm, generate
>>> model, tok = load_lm("smollm2")                      # doctest: +SKIP
>>> generate(model, tok, "Who wrote it?", latent_prompt)  # doctest: +SKIP

* :class:`LatentPrompt` — the result type every latent method returns: ordered latent and
  text parts, the slot map (segment -> rows), the target LM's fingerprint;
* :func:`build_inputs`, :func:`prefill`, :func:`generate`, :func:`check_target` — splice a
  latent prompt with template and question tokens for any ``*ForCausalLM``;
* :func:`load_lm` — hub ids, directories, GGUF files and the offline ``"smollm2"``.

Importing this package is light: torch and transformers load when used.
"""

from .generate import (
    Spliced,
    TargetMismatchError,
    answer_logprobs,
    build_inputs,
    check_target,
    generate,
    kv_cache_bytes,
    prefill,
    render_template,
)
from .lm import load_lm, local_model_dir
from .prompt import LatentPart, LatentPrompt, Slot, TextPart

__all__ = [
    "LatentPart",
    "LatentPrompt",
    "Slot",
    "Spliced",
    "TargetMismatchError",
    "TextPart",
    "answer_logprobs",
    "build_inputs",
    "check_target",
    "generate",
    "kv_cache_bytes",
    "load_lm",
    "local_model_dir",
    "prefill",
    "render_template",
]
