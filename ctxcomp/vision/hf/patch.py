"""ToMe / DyMU merging inside Hugging Face ViT-family encoders, and [CLS] attention recording.

Works by forward hooks on the encoder's own modules (no copied model code), for every
encoder whose blocks sit in a ``ModuleList`` and whose attention has a ``k_proj`` (ViT,
CLIP, SigLIP, DINOv2 in transformers 5; ``key`` in older releases):

- the key projection of each block is read (the mean key over heads is ToMe's metric);
- after each block, :func:`ctxcomp.vision.merge.merge` folds tokens together;
- before each block, the attention mask argument carries ``log(size)`` so a merged token
  gets the attention of all the tokens it stands for (proportional attention).

``hidden_states[i + 1]`` of the model's output is then the merged output of block ``i``,
and :attr:`TokenMerging.history` holds the matching :class:`MergeState` for each.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ...errors import InputError
from ..merge import MergeState, batch_threshold, counts, match, merge, size_bias


def encoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The ModuleList of transformer blocks of a ViT-family encoder (the longest one whose
    blocks all have a key projection)."""
    best: nn.ModuleList | None = None
    for _name, mod in model.named_modules():
        if (
            isinstance(mod, nn.ModuleList)
            and len(mod) > 0
            and all(_key_proj(b) is not None for b in mod)
            and (best is None or len(mod) > len(best))
        ):
            best = mod
    if best is None:
        raise InputError(
            f"{type(model).__name__} has no list of attention blocks with a key projection "
            "(k_proj / key): token merging supports ViT, CLIP, SigLIP and DINOv2 encoders"
        )
    return best


def protected_tokens(model: nn.Module) -> int:
    """Leading tokens that are not patches: [CLS] (if the embeddings have one) + registers."""
    n = 0
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("cls_token", "class_embedding"):
            n += 1
        elif leaf == "register_tokens":
            n += int(p.shape[-2])
    return n


def _key_proj(block: nn.Module) -> nn.Linear | None:
    for name, mod in block.named_modules():
        if isinstance(mod, nn.Linear) and name.rsplit(".", 1)[-1] in ("k_proj", "key"):
            return mod
    return None


def _query_proj(block: nn.Module) -> nn.Linear | None:
    for name, mod in block.named_modules():
        if isinstance(mod, nn.Linear) and name.rsplit(".", 1)[-1] in ("q_proj", "query"):
            return mod
    return None


def _heads(model: nn.Module) -> int:
    cfg = getattr(model, "config", None)
    cfg = getattr(cfg, "vision_config", cfg)
    h = getattr(cfg, "num_attention_heads", None)
    if not isinstance(h, int):
        raise InputError(f"{type(model).__name__}'s config gives no num_attention_heads")
    return h


class TokenMerging:
    """Hooks that merge tokens inside an encoder while it runs; ``remove()`` undoes them.

    ``schedule[i]`` tokens are merged after block ``i`` (ToMe); with ``thresholds`` a block
    merges every pair more similar than ``thresholds[i]`` and at least ``schedule[i]``
    (DyMU; the count depends on the image). ``calibrate=True`` instead merges
    ``schedule[i] x batch`` pairs over the whole batch and records the similarity at the
    cut in :attr:`observed` (DyMU's threshold finding). Blocks past the schedule's length
    do not merge. ``prop_attn`` turns proportional attention on (ToMe's default for
    off-the-shelf models).
    """

    def __init__(
        self,
        model: nn.Module,
        schedule: Sequence[int],
        thresholds: Sequence[float] | None = None,
        *,
        calibrate: bool = False,
        prop_attn: bool = True,
        protect: int | None = None,
    ) -> None:
        self.blocks = encoder_blocks(model)
        if len(schedule) > len(self.blocks):
            raise InputError(
                f"merge schedule has {len(schedule)} entries for {len(self.blocks)} blocks"
            )
        if thresholds is not None and len(thresholds) != len(schedule):
            raise InputError("give one threshold per scheduled block")
        self.schedule = [int(r) for r in schedule]
        self.thresholds = [float(t) for t in thresholds] if thresholds is not None else None
        self.calibrate = calibrate
        self.prop_attn = prop_attn
        self.protect = protected_tokens(model) if protect is None else protect
        self.heads = _heads(model)
        self.state: MergeState | None = None
        self.history: list[MergeState] = []
        self.observed: list[float] = []
        self._metric: torch.Tensor | None = None
        self._handles: list[Any] = []
        for i, block in enumerate(self.blocks):
            kp = _key_proj(block)
            assert kp is not None
            self._handles.append(block.register_forward_pre_hook(self._pre(i), with_kwargs=True))
            self._handles.append(kp.register_forward_hook(self._keys))
            self._handles.append(block.register_forward_hook(self._post(i), prepend=True))

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> TokenMerging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # -- hooks ------------------------------------------------------------------------

    def _pre(self, i: int) -> Any:
        def hook(
            module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
            x = args[0] if args else kwargs["hidden_states"]
            if i == 0:
                self.state = MergeState.start(x.shape[0], x.shape[1], self.protect, x.device)
                self.history = [self.state]
                self.observed = []
            st = self.state
            if st is None or not self.prop_attn or not st.merged:
                return None
            bias = size_bias(st.size, x.dtype)
            if len(args) > 1:
                args = (args[0], _add_mask(args[1], bias), *args[2:])
            else:
                kwargs = {**kwargs, "attention_mask": _add_mask(kwargs.get("attention_mask"), bias)}
            return args, kwargs

        return hook

    def _keys(self, module: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
        b, t, _ = out.shape
        self._metric = out.detach().view(b, t, self.heads, -1).mean(dim=2)

    def _post(self, i: int) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
            st = self.state
            if st is None or i >= len(self.schedule) or self._metric is None:
                if st is not None:
                    self.history.append(st)
                return None
            x = out[0] if isinstance(out, tuple) else out
            m = match(self._metric, st)
            r = torch.full((x.shape[0],), self.schedule[i], dtype=torch.long)
            if m is None:
                n = torch.zeros_like(r)
                if self.calibrate:
                    self.observed.append(1.0)
            elif self.calibrate:
                n, thr = batch_threshold(m, self.schedule[i] * x.shape[0])
                self.observed.append(thr)
            else:
                n = counts(m, r, self.thresholds[i] if self.thresholds is not None else None)
            if m is None or not bool((n > 0).any()):
                self.history.append(st)
                return None
            x_new, self.state = merge(x, m, n, st)
            self.history.append(self.state)
            return (x_new, *out[1:]) if isinstance(out, tuple) else x_new

        return hook


def _add_mask(mask: Any, bias: torch.Tensor) -> torch.Tensor:
    if mask is None:
        return bias
    if isinstance(mask, torch.Tensor) and mask.shape[-1] == bias.shape[-1]:
        if mask.dtype == torch.bool:
            return bias.masked_fill(~mask, -torch.inf)
        return mask + bias
    raise InputError("token merging cannot combine with a caller's attention mask in the encoder")


@contextlib.contextmanager
def cls_attention(model: nn.Module, layers: Sequence[int]) -> Iterator[list[torch.Tensor]]:
    """Record the [CLS] token's attention over all tokens (mean over heads, ``(B, T)``)
    in each of ``layers`` (block indices) while the model runs inside the block."""
    blocks = encoder_blocks(model)
    if protected_tokens(model) < 1:
        raise InputError(
            f"{type(model).__name__} has no [CLS] token: [CLS] attention (VTC-CLS) needs one"
        )
    with first_token_attention([blocks[i] for i in layers], _heads(model)) as rows:
        yield rows


@contextlib.contextmanager
def first_token_attention(blocks: Sequence[nn.Module], heads: int) -> Iterator[list[torch.Tensor]]:
    """Record, for each block run, the first token's attention over all tokens (softmax
    of its query against every key, mean over ``heads``): one ``(B, T)`` row per block."""
    rows: list[torch.Tensor] = []
    handles: list[Any] = []
    for li, block in enumerate(blocks):
        qp, kp = _query_proj(block), _key_proj(block)
        if qp is None or kp is None:
            raise InputError(f"block {li} has no query/key projections to read attention from")
        box: dict[str, torch.Tensor] = {}

        def read(box: dict[str, torch.Tensor] = box) -> None:
            if "q" not in box or "k" not in box:
                return
            q, k = box.pop("q"), box.pop("k")
            b, t, d = k.shape
            qh = q.view(b, 1, heads, -1).float()
            kh = k.view(b, t, heads, -1).float()
            logits = torch.einsum("bqhd,bthd->bht", qh, kh) * (d // heads) ** -0.5
            rows.append(logits.softmax(dim=-1).mean(dim=1))

        def q_hook(
            mod: nn.Module, args: tuple[Any, ...], out: torch.Tensor, box: Any = box
        ) -> None:
            box["q"] = out.detach()[:, :1]
            read(box)

        def k_hook(
            mod: nn.Module, args: tuple[Any, ...], out: torch.Tensor, box: Any = box
        ) -> None:
            box["k"] = out.detach()
            read(box)

        handles.append(qp.register_forward_hook(q_hook))
        handles.append(kp.register_forward_hook(k_hook))
    try:
        yield rows
    finally:
        for h in handles:
            h.remove()
