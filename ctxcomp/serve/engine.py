"""Compressing one request body under its policy, off the event loop.

:meth:`Engine.process` parses the body, picks the parts the policy compresses, counts the
request in the reader's tokens, and has a worker (:mod:`.worker`: a process by default)
compress them; the pieces are written back into the body. Model work never runs on the
event loop, and never delays another request's streaming.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass, replace
from typing import Any

import ctxcomp

from .config import Policy, ServeConfig
from .policy import resolve
from .shapes import MESSAGE_OVERHEAD, Conversation, Part, extract
from .worker import JobSpec, Workers

KEEP_OPEN, KEEP_CLOSE = "<ctxcomp:keep>", "</ctxcomp:keep>"
_KEEP_TAGS = re.compile(re.escape(KEEP_OPEN) + "|" + re.escape(KEEP_CLOSE))
_PARAGRAPH = re.compile(r"\n\s*\n")
INLINE_PLAN_BYTES = 32 * 1024  # smaller bodies are parsed and counted on the event loop


class CompressTimeout(ctxcomp.CtxcompError):
    """Compression (with its wait for a worker) took longer than ``compress_timeout``."""


class BodyError(ctxcomp.InputError):
    """The request body is not a JSON object (answered with 400)."""


@dataclass(frozen=True)
class Outcome:
    """What the engine did to one request, and the body the upstream gets."""

    body: bytes
    status: str  # compressed | skipped | off | error
    reason: str | None = None
    tokens_before: int | None = None
    tokens_after: int | None = None
    compression_ms: float = 0.0
    reader: str | None = None
    error: Exception | None = None
    fail: bool = False  # policy on_error=fail: answer with the error, do not call the upstream
    model: str | None = None


@dataclass
class _Job:
    conv: Conversation
    chosen: list[Part]
    fixed: int  # tokens of everything that is not compressed
    before: int
    target: int


@dataclass
class _Plan:
    obj: dict[str, Any]
    raw: bytes
    policy: Policy
    pipeline: dict[str, Any]
    reader: str
    jobs: list[_Job]
    changed: bool  # keep markers removed from parts that are not compressed
    skip_reason: str | None
    before: int
    model: str | None
    error: Exception | None = None


class Engine:
    """Turns client request bodies into upstream request bodies."""

    def __init__(self, config: ServeConfig, on_pipeline: Any = None) -> None:
        self.config = config
        self.workers = Workers(config.compress_in, config.compress_workers, config.max_pipelines)
        self._on_pipeline = on_pipeline  # told how many compressors a worker holds
        self._lock = threading.Lock()
        self._readers: dict[str, ctxcomp.ReaderTokenizer] = {}

    # -- compressors -----------------------------------------------------------------

    def reader(self, name: str) -> ctxcomp.ReaderTokenizer:
        with self._lock:
            if name not in self._readers:
                self._readers[name] = ctxcomp.get_tokenizer(name)
            return self._readers[name]

    async def preload(self, namespace: str) -> None:
        """Build the default pipeline in every worker now, not at the first request."""
        settings = dict(self.config.pipeline)
        futures = [self.workers.submit("warm", settings, namespace) for _ in range(self.workers.n)]
        for n in await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)):
            self._loaded(n)

    def _loaded(self, n: int) -> None:
        if self._on_pipeline is not None:
            self._on_pipeline(n)

    def close(self) -> None:
        self.workers.close()

    # -- the request -----------------------------------------------------------------

    async def process(
        self, route: str, raw: bytes, headers: Mapping[str, str], namespace: str
    ) -> Outcome:
        """Parse, plan and (in the compression pool) compress one request body.

        The outcome's ``compression_ms`` is all the time the engine took for this request:
        parsing, counting, waiting for a free compressor and compressing."""
        t0 = time.perf_counter()
        if len(raw) <= INLINE_PLAN_BYTES:
            plan = self.plan(route, raw, headers, namespace)
        else:
            plan = await asyncio.to_thread(self.plan, route, raw, headers, namespace)
        if plan.error is not None:
            out = _failed(plan, plan.error)
        elif not plan.jobs:
            out = self._unchanged(plan, "off" if not plan.policy.active else "skipped")
        else:
            out = await self.execute(plan, namespace)
        return replace(out, compression_ms=(time.perf_counter() - t0) * 1000)

    def plan(self, route: str, raw: bytes, headers: Mapping[str, str], namespace: str) -> _Plan:
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BodyError(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise BodyError(f"the request body must be a JSON object, got {type(obj).__name__}")
        model = obj.get("model") if isinstance(obj.get("model"), str) else None
        r = resolve(self.config, route, model, headers)
        reader_name = str(r.pipeline.get("reader") or ctxcomp.PipelineConfig().reader)
        convs = extract(route, obj)
        changed = False
        for conv in convs:  # ctxcomp's markers never reach the upstream
            for p in conv.parts:
                if KEEP_OPEN in p.text or KEEP_CLOSE in p.text:
                    p.write(_KEEP_TAGS.sub("", p.text))  # the part keeps its marked text
                    changed = True
        if changed:  # what the upstream gets when compression is skipped or fails
            raw = _dumps(obj)
        base = _Plan(obj, raw, r.policy, dict(r.pipeline), reader_name, [], changed, None, 0, model)
        if not r.policy.active:
            base.skip_reason = "compression is off for this request"
            return base
        if not convs:
            base.skip_reason = "no text in a shape ctxcomp compresses"
            return base
        reasons = []
        for conv in convs:
            try:  # a reader that fails to load, or a budget that cannot hold: the policy's call
                job, why = _job(conv, r.policy, self.reader(reader_name))
            except Exception as exc:
                base.error = exc
                return base
            base.before += job.before if job else (why[1] if why else 0)
            if job is not None:
                base.jobs.append(job)
            elif why is not None:
                reasons.append(why[0])
        if not base.jobs:
            base.skip_reason = reasons[0] if reasons else "nothing to compress"
        return base

    async def execute(self, plan: _Plan, namespace: str) -> Outcome:
        """Compress every job of a plan in a worker, and write the pieces back."""
        reader = self.reader(plan.reader)
        specs = []
        for job in plan.jobs:
            question, texts = _question_and_texts(job, plan.policy, reader)
            specs.append(
                JobSpec(
                    dict(plan.pipeline),
                    namespace,
                    tuple(texts),
                    job.target,
                    question,
                    plan.reader,
                    plan.policy.dropped_placeholder,
                )
            )
        timeout = plan.policy.compress_timeout
        try:
            future = asyncio.wrap_future(self.workers.submit("jobs", specs))
            results = await asyncio.wait_for(future, timeout)  # a queued job is withdrawn
        except asyncio.TimeoutError:
            return _failed(plan, CompressTimeout(f"compression took over {timeout:g} s"))
        except BrokenExecutor as exc:  # a worker died: replace the pool, answer by policy
            self.workers.restart()
            if self.config.preload:  # the new worker loads its model now, not at a request
                self.workers.submit("warm", dict(self.config.pipeline), namespace)
            return _failed(plan, exc)
        except Exception as exc:  # any failure: the policy says pass through or fail
            return _failed(plan, exc)
        self._loaded(results[-1].loaded)
        after = plan.before
        for job, res in zip(plan.jobs, results):
            for part, text in zip(job.chosen, res.pieces):
                part.write(text)
            after += job.fixed + res.tokens - job.before
        if len(plan.raw) > INLINE_PLAN_BYTES:
            body = await asyncio.to_thread(_dumps, plan.obj)
        else:
            body = _dumps(plan.obj)
        return Outcome(
            body, "compressed", None, plan.before, after, 0.0, plan.reader, model=plan.model
        )

    def _unchanged(self, plan: _Plan, status: str) -> Outcome:
        before = plan.before or None
        return Outcome(
            plan.raw, status, plan.skip_reason, before, before, 0.0, plan.reader, model=plan.model
        )


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _failed(plan: _Plan, exc: Exception) -> Outcome:
    """Compression failed: the client's body goes as is (``pass``), or the client gets the
    error (``fail``)."""
    return Outcome(
        plan.raw,
        "error",
        f"{type(exc).__name__}: {exc}",
        plan.before or None,
        None,
        0.0,
        plan.reader,
        exc,
        fail=plan.policy.on_error == "fail",
        model=plan.model,
    )


def _job(
    conv: Conversation, policy: Policy, reader: ctxcomp.ReaderTokenizer
) -> tuple[_Job | None, tuple[str, int] | None]:
    """The compression job of one conversation, or why there is none (and its tokens)."""
    counts = [reader.count(_KEEP_TAGS.sub("", p.text)) for p in conv.parts]
    fixed = MESSAGE_OVERHEAD * conv.messages + sum(reader.count(t) for t in conv.overhead)
    chosen: list[Part] = []
    chosen_tokens = 0
    for p, n in zip(conv.parts, counts):
        need = policy.long_user_tokens if p.kind in ("user", "prompt") else policy.min_part_tokens
        if p.kind in policy.parts and n >= max(need, 1) and p.text.strip():
            chosen.append(p)
            chosen_tokens += n
        else:
            fixed += n
    before = fixed + chosen_tokens
    if not chosen:
        return None, ("no part is of a compressed kind and long enough", before)
    targets = []
    if policy.ratio is not None:
        targets.append(max(1, math.floor(policy.ratio * chosen_tokens)))
    if policy.max_prompt_tokens is not None:
        if before <= policy.max_prompt_tokens and policy.ratio is None:
            return None, (f"within max_prompt_tokens={policy.max_prompt_tokens}", before)
        room = policy.max_prompt_tokens - fixed
        if room < 1:
            raise ctxcomp.BudgetError(
                f"the parts ctxcomp does not compress hold {fixed} tokens, which is not less "
                f"than max_prompt_tokens={policy.max_prompt_tokens}"
            )
        targets.append(room)
    target = min(targets)
    if target >= chosen_tokens:
        return None, ("the compressible parts are already within the budget", before)
    return _Job(conv, chosen, fixed, before, target), None


def _question_and_texts(
    job: _Job, policy: Policy, reader: ctxcomp.ReaderTokenizer
) -> tuple[str | None, list[str]]:
    """The question (the last user turn, or its last paragraph when the turn itself is
    compressed: that paragraph is then protected) and the texts to compress."""
    chosen = job.chosen
    texts = [p.text for p in chosen]
    q_part = job.conv.question_part
    if q_part is None or not q_part.text.strip():
        return None, texts
    if not any(p is q_part for p in chosen):
        q = _KEEP_TAGS.sub("", q_part.text).strip()
        return (q if reader.count(q) <= policy.max_question_tokens else None), texts
    paras = _PARAGRAPH.split(q_part.text.rstrip())
    last = paras[-1].strip() if paras else ""
    if len(paras) < 2 or not last or reader.count(last) > policy.max_question_tokens:
        return None, texts
    i = next(k for k, p in enumerate(chosen) if p is q_part)
    cut = q_part.text.rstrip().rfind(last)
    texts[i] = q_part.text[:cut] + KEEP_OPEN + q_part.text[cut:] + KEEP_CLOSE
    return _KEEP_TAGS.sub("", last), texts
