"""The base of every visual-token method: a :class:`~ctxcomp.core.Compressor` of visual tokens.

A method implements :meth:`VisualTokenPruner.assign` — given validated tokens and the
number ``k`` of output tokens, say which output row every input token goes to (or -1).
Everything else is shared: accepting inputs (``VisualTokens``, feature arrays, or images
when an encoder is attached), the budget (a ratio of the tokens or a token count), the
protected tokens, building the :class:`VisualResult` and its config hash.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from ..core import Compressor, ProgressCallback, Request
from ..errors import InputError
from .result import VisualResult, reduce_rows
from .tokens import VisualTokens, as_tokens

if TYPE_CHECKING:
    from .hf.encoders import VisionEncoder


class VisualTokenPruner(Compressor[VisualResult]):
    """Keeps or merges visual tokens down to a budget counted in visual tokens.

    Inputs are one token set per request: :class:`VisualTokens`, an ``(N, D)`` feature
    array, or — when an ``encoder`` (:class:`~ctxcomp.vision.hf.VisionEncoder`) is given —
    an image (path, PIL image, ``(H, W, 3)`` array). ``compress(x, ratio=0.25)`` keeps a
    quarter of the tokens, ``target_tokens=64`` keeps 64.
    """

    kind: ClassVar[str] = "visual"
    name: ClassVar[str] = "visual"
    #: signals the method ranks by; the encoder is asked to record them
    needs: ClassVar[tuple[str, ...]] = ()
    #: whether ``recycle="merge"`` applies (methods that drop tokens)
    drops: ClassVar[bool] = True

    def __init__(self, encoder: VisionEncoder | None = None, *, recycle: str = "none") -> None:
        self.encoder = encoder
        if recycle not in RECYCLE:
            raise InputError(f"recycle must be one of {RECYCLE}, got {recycle!r}")
        if recycle != "none" and not self.drops:
            raise InputError(
                f"{self.name} drops no tokens (it merges them all): recycle does not apply"
            )
        self.recycle = recycle

    # -- what methods implement -------------------------------------------------------

    @abstractmethod
    def assign(self, tokens: VisualTokens, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Output row (``0..k'-1``, ``k' <= k``) or -1 for each of ``tokens.n`` tokens, and
        the per-token scores ranked by (or None). Rows need not be ordered."""

    def method_config(self) -> dict[str, Any]:
        """The method's own options (hashed with the encoder's identity)."""
        return {}

    # -- Compressor ---------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        enc = self.encoder.config() if self.encoder is not None else None
        extra = {"recycle": self.recycle} if self.recycle != "none" else {}
        return {**self.method_config(), **extra, "encoder": enc}

    def inputs(self, prompt: Any) -> tuple[Any, ...]:
        if isinstance(prompt, (VisualTokens, np.ndarray, torch.Tensor)):
            if isinstance(prompt, VisualTokens):
                return (prompt,)
            if prompt.ndim == 2:
                return (as_tokens(prompt),)
            if prompt.ndim == 3 and prompt.shape[-1] == 3 and self.encoder is not None:
                return (prompt,)  # an (H, W, 3) image
            raise InputError(
                f"expected (tokens, dim) features{' or an (H, W, 3) image' if self.encoder else ''}"
                f", got an array of shape {tuple(prompt.shape)}"
            )
        if self.encoder is not None:
            return (prompt,)
        raise InputError(
            f"{self.name} takes VisualTokens or (tokens, dim) features, got {type(prompt).__name__};"
            " to give images, build it with encoder=VisionEncoder(...)"
        )

    def run(
        self, requests: Sequence[Request], *, progress: ProgressCallback | None = None
    ) -> list[VisualResult]:
        tokens = self.tokens_of([r.inputs[0] for r in requests])
        out = []
        for i, (req, tok) in enumerate(zip(requests, tokens)):
            if len(req.inputs) != 1:
                raise InputError("one visual request holds one token set (one image or video)")
            out.append(self.prune(tok, req))
            if progress is not None:
                progress(i + 1, len(requests))
        return out

    def tokens_of(self, items: Sequence[Any]) -> list[VisualTokens]:
        """Encode the images among ``items`` in one batch; pass token sets through."""
        images = [i for i, x in enumerate(items) if not isinstance(x, VisualTokens)]
        out: list[Any] = list(items)
        if images:
            if self.encoder is None:
                raise InputError(f"{self.name} got an image but has no encoder to read it")
            enc = self.encoder.encode([items[i] for i in images], signals=self.needs)
            for i, t in zip(images, enc):
                out[i] = t
        return out

    # -- shared machinery ---------------------------------------------------------------

    def prune(self, tokens: VisualTokens, request: Request) -> VisualResult:
        """Reduce one token set to the request's budget."""
        n = tokens.n
        k_asked = request.budget.resolve(n)
        notes: list[str] = []
        if k_asked >= n:
            if k_asked > n:
                notes.append(f"budget of {k_asked} tokens exceeds the {n} tokens: all kept")
            return self.result(
                torch.arange(n), request, notes, grid=tokens.grid, inputs=tokens.features
            )
        prot = tokens.protected
        if len(prot) > k_asked:
            from ..errors import BudgetError

            raise BudgetError(
                f"{len(prot)} protected tokens do not fit a budget of {k_asked} tokens"
            )
        if prot:
            free = np.setdiff1d(np.arange(n), np.asarray(prot))
            sub = _subset(tokens, free)
            a_sub, s_sub = self.select(sub, k_asked - len(prot))
            a = torch.full((n,), -1, dtype=torch.long)
            a[torch.as_tensor(free)] = a_sub.long()
            base = int(a_sub.max()) + 1 if bool((a_sub >= 0).any()) else 0
            a[torch.as_tensor(prot)] = base + torch.arange(len(prot))
            scores = None
            if s_sub is not None:
                scores = torch.full((n,), float("inf"))
                scores[torch.as_tensor(free)] = s_sub.float()
            notes.append(f"{len(prot)} protected tokens kept")
        else:
            a, scores = self.select(tokens, k_asked)
        return self.result(
            a, request, notes, grid=tokens.grid, inputs=tokens.features, scores=scores
        )

    def select(self, tokens: VisualTokens, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`assign`, then (``recycle="merge"``) every dropped token joins its most
        similar output row, so the ``k`` rows stand for all the tokens."""
        a, scores = self.assign(tokens, k)
        if self.recycle == "merge":
            a = recycle_dropped(a, tokens.metric)
        return a, scores

    def result(
        self,
        assignment: torch.Tensor,
        request: Request,
        notes: Sequence[str] = (),
        *,
        grid: tuple[int, ...] | None,
        inputs: torch.Tensor | None = None,
        rows: torch.Tensor | None = None,
        scores: torch.Tensor | None = None,
        cls: torch.Tensor | None = None,
    ) -> VisualResult:
        """Build the result, rows renumbered in order of their first token. Give either the
        input token features (``inputs``: each row becomes the mean of its tokens) or the
        output rows already formed (``rows``, one per row of ``assignment`` as numbered
        there: tokens merged inside an encoder)."""
        raw = assignment.long().cpu()
        a = canonical(raw)
        k = int(a.max()) + 1 if bool((a >= 0).any()) else 0
        if rows is None:
            assert inputs is not None
            feats = reduce_rows(inputs, a, k)
        else:
            live = a >= 0
            perm = torch.empty(k, dtype=torch.long)
            perm[a[live]] = raw[live]
            feats = rows[perm]
        return VisualResult(
            assignment=a.numpy(),
            features=feats,
            compressor=self.name,
            config_hash=self.config_hash,
            budget=request.budget,
            grid=grid,
            cls=cls,
            scores=scores.detach().float().cpu().numpy() if scores is not None else None,
            notes=tuple(notes),
        )


RECYCLE = ("none", "merge")


def recycle_dropped(assignment: torch.Tensor, metric: torch.Tensor) -> torch.Tensor:
    """Assign every dropped token (-1) to the output row most similar to it: cosine between
    the token's ``metric`` row and the row's mean metric (ties to the lower row). Rows and
    kept tokens do not change, so the count of rows (the budget) is held; the rows' sizes
    then add up to the token count (as in ToMe, LLaVA-PruMerge, SparseVLM's recycling)."""
    a = assignment.long().clone()
    drop = a < 0
    live = ~drop
    if not bool(drop.any()) or not bool(live.any()):
        return a
    k = int(a[live].max()) + 1
    m = torch.nn.functional.normalize(metric.float(), dim=-1)
    rows = torch.zeros(k, m.shape[1]).index_add_(0, a[live], m[live])
    sim = m[drop] @ torch.nn.functional.normalize(rows, dim=-1).T
    sim[:, torch.bincount(a[live], minlength=k) == 0] = -torch.inf  # row ids not in use
    a[drop] = sim.argmax(dim=1)
    return a


def canonical(assignment: torch.Tensor) -> torch.Tensor:
    """Renumber output rows 0..k-1 in the order of their first input token (-1 kept)."""
    a = assignment.clone()
    live = a >= 0
    if not bool(live.any()):
        return a
    ids = a[live]
    k = int(ids.max()) + 1
    n = a.numel()
    first = torch.full((k,), n, dtype=torch.long)
    pos = torch.arange(n)[live]
    first.scatter_reduce_(0, ids, pos, reduce="amin")
    used = first < n
    order = torch.argsort(first[used])
    remap = torch.full((k,), -1, dtype=torch.long)
    remap[torch.nonzero(used).flatten()[order]] = torch.arange(int(used.sum()))
    a[live] = remap[ids]
    return a


def keep_top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Assignment keeping the ``k`` highest-scored tokens (ties to the earlier token)."""
    n = scores.numel()
    # stable: sort by (-score, index)
    order = torch.sort(-scores.float(), stable=True).indices[:k]
    return keep_indices(order, n)


def keep_indices(kept: torch.Tensor, n: int) -> torch.Tensor:
    """Assignment keeping exactly the tokens ``kept`` (any order), each in its own row."""
    a = torch.full((n,), -1, dtype=torch.long)
    idx = torch.sort(kept.long()).values
    a[idx] = torch.arange(idx.numel())
    return a


def _subset(tokens: VisualTokens, idx: np.ndarray) -> VisualTokens:
    t = torch.as_tensor(idx)
    return VisualTokens(
        features=tokens.features[t],
        grid=None,
        keys=tokens.keys[t] if tokens.keys is not None else None,
        signals={k: v[t] for k, v in tokens.signals.items()},
    )
