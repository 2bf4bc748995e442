"""LatentPrompt: a prompt made of latent rows (in a target LM's input-embedding space) and text.

A latent compressor (CompLLM segment compression, C3 cascades...) turns context into rows of
vectors that a causal LM reads through ``inputs_embeds`` instead of token embeddings. A
:class:`LatentPrompt` holds them as ordered parts:

* :class:`LatentPart` — a float tensor ``[k, d]`` in the space ``get_input_embeddings()``
  outputs, plus the :class:`Slot` s saying which source segment each run of rows came from;
* :class:`TextPart` — text the LM reads verbatim (``<ctxcomp:keep>`` spans, instructions).

It records the LM it was made for (``target`` = :func:`ctxcomp.core.model_fingerprint`), so a
prompt is never fed to another model (:func:`ctxcomp.latent.check_target`). It saves to one
``.safetensors`` file (tensors + a JSON header in the metadata): no pickle.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..budget import Budget
from ..core.result import Result
from ..errors import InputError

if TYPE_CHECKING:
    import torch

FORMAT = "ctxcomp.latent/1"
_META_KEY = "ctxcomp.latent"
TEXT_ROLES = ("keep", "instruction", "context")


@dataclass(frozen=True)
class Slot:
    """One source segment -> its rows: ``documents[document].text[start:end]`` became rows
    ``row .. row + rows - 1`` of :attr:`LatentPrompt.rows` (the prompt's latent rows stacked
    in part order)."""

    document: int
    start: int
    end: int
    row: int
    rows: int

    def to_dict(self) -> dict[str, int]:
        return {
            "document": self.document,
            "start": self.start,
            "end": self.end,
            "row": self.row,
            "rows": self.rows,
        }


@dataclass(frozen=True, eq=False)
class LatentPart:
    """Latent rows ``[k, d]`` (float, in the target's input-embedding space) and the slots of
    the segments they came from (row indices are prompt-wide, see :class:`Slot`)."""

    rows: torch.Tensor
    slots: tuple[Slot, ...] = ()

    def __post_init__(self) -> None:
        r = self.rows
        if getattr(r, "ndim", None) != 2 or not r.is_floating_point():
            raise InputError(
                f"latent rows must be a float tensor [k, d], got {getattr(r, 'shape', type(r))}"
            )
        if r.shape[0] == 0:
            raise InputError("a latent part needs at least one row")

    @property
    def n_rows(self) -> int:
        return int(self.rows.shape[0])


@dataclass(frozen=True)
class TextPart:
    """Text the LM reads verbatim. ``role``: ``"keep"`` (a ``<ctxcomp:keep>`` span of a
    document), ``"instruction"`` or ``"context"``; ``document``/``start``/``end`` locate a
    span taken from a document (``None`` for free text)."""

    text: str
    role: str = "keep"
    document: int | None = None
    start: int | None = None
    end: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text:
            raise InputError("a text part needs non-empty text")
        if self.role not in TEXT_ROLES:
            raise InputError(f"text part role must be one of {TEXT_ROLES}, got {self.role!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "text",
            "text": self.text,
            "role": self.role,
            "document": self.document,
            "start": self.start,
            "end": self.end,
        }


Part = LatentPart | TextPart


@dataclass(frozen=True, eq=False)
class LatentPrompt(Result):
    """A compressed context for one causal LM: ordered latent and text parts.

    ``target``: fingerprint of the LM whose input-embedding space the rows live in;
    ``hidden_size``: their width; ``original_tokens``: context tokens in the target's
    tokenizer; ``compressed_tokens``: positions the LM reads for the context (latent rows
    plus the tokens of the text parts).
    """

    parts: tuple[Part, ...]
    target: str
    hidden_size: int
    compressor: str
    config_hash: str
    budget: Budget
    original_tokens: int
    compressed_tokens: int
    notes: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.parts, tuple):
            object.__setattr__(self, "parts", tuple(self.parts))
        if not self.parts:
            raise InputError("a latent prompt needs at least one part")
        row = 0
        for p in self.parts:
            if isinstance(p, LatentPart):
                if int(p.rows.shape[1]) != self.hidden_size:
                    raise InputError(
                        f"latent rows have width {int(p.rows.shape[1])}, "
                        f"the prompt's hidden size is {self.hidden_size}"
                    )
                for s in p.slots:
                    if s.rows < 1 or not row <= s.row < s.row + s.rows <= row + p.n_rows:
                        raise InputError(
                            f"slot {s} points outside its part's rows [{row}, {row + p.n_rows})"
                        )
                row += p.n_rows
            elif not isinstance(p, TextPart):
                raise InputError(f"prompt parts are LatentPart or TextPart, got {type(p).__name__}")

    # -- views ------------------------------------------------------------------------

    @property
    def latent_parts(self) -> tuple[LatentPart, ...]:
        return tuple(p for p in self.parts if isinstance(p, LatentPart))

    @property
    def text_parts(self) -> tuple[TextPart, ...]:
        return tuple(p for p in self.parts if isinstance(p, TextPart))

    @property
    def n_rows(self) -> int:
        """Latent rows in the prompt (all latent parts)."""
        return sum(p.n_rows for p in self.latent_parts)

    @property
    def rows(self) -> torch.Tensor:
        """All latent rows stacked in part order ``[n_rows, hidden_size]``."""
        import torch

        parts = self.latent_parts
        if not parts:
            return torch.zeros(0, self.hidden_size)
        return torch.cat([p.rows for p in parts], dim=0)

    @property
    def slots(self) -> tuple[Slot, ...]:
        """The slot map: every source segment and its rows, in prompt order."""
        return tuple(s for p in self.latent_parts for s in p.slots)

    def to_dict(self) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        for p in self.parts:
            if isinstance(p, LatentPart):
                parts.append(
                    {
                        "type": "latent",
                        "rows": p.n_rows,
                        "dtype": str(p.rows.dtype).removeprefix("torch."),
                        "slots": [s.to_dict() for s in p.slots],
                    }
                )
            else:
                parts.append(p.to_dict())
        return {
            "format": FORMAT,
            "compressor": self.compressor,
            "config_hash": self.config_hash,
            "budget": _budget_dict(self.budget),
            "target": self.target,
            "hidden_size": self.hidden_size,
            "original_tokens": self.original_tokens,
            "compressed_tokens": self.compressed_tokens,
            "ratio": self.ratio,
            "latent_rows": self.n_rows,
            "notes": list(self.notes),
            "meta": self.meta,
            "parts": parts,
        }

    # -- files ------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The prompt as safetensors bytes (tensors ``part.<i>``; the rest as JSON metadata)."""
        from safetensors.torch import save

        tensors = {
            f"part.{i}": p.rows.detach().contiguous().cpu()
            for i, p in enumerate(self.parts)
            if isinstance(p, LatentPart)
        }
        return bytes(save(tensors, metadata={_META_KEY: json.dumps(self.to_dict())}))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the prompt to ``path`` (a ``.safetensors`` file), atomically."""
        p = os.fspath(path)
        tmp = f"{p}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(self.to_bytes())
        os.replace(tmp, p)

    @classmethod
    def from_bytes(cls, data: bytes) -> LatentPrompt:
        """Read what :meth:`to_bytes` wrote; malformed data raises :class:`InputError`."""
        from safetensors import SafetensorError
        from safetensors.torch import load

        try:
            tensors = load(data)
            meta = _read_meta(data)
        except (SafetensorError, ValueError) as exc:
            raise InputError(f"not a latent prompt file: {exc}") from exc
        return _from_dict(meta, tensors)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LatentPrompt:
        """Read a prompt saved by :meth:`save`."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise InputError(f"cannot read latent prompt {os.fspath(path)!r}: {exc}") from exc
        return cls.from_bytes(data)


def _budget_dict(b: Budget) -> dict[str, Any]:
    return {"ratio": b.ratio, "target_tokens": b.target_tokens}


def _read_meta(data: bytes) -> dict[str, Any]:
    import struct

    if len(data) < 8:
        raise ValueError("file too short")
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    raw = (header.get("__metadata__") or {}).get(_META_KEY)
    if raw is None:
        raise ValueError(f"no {_META_KEY!r} metadata: not written by LatentPrompt.save")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT:
        raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
    return dict(meta)


def _from_dict(meta: dict[str, Any], tensors: dict[str, Any]) -> LatentPrompt:
    parts: list[Part] = []
    try:
        for i, d in enumerate(meta["parts"]):
            if d["type"] == "latent":
                rows = tensors[f"part.{i}"]
                if int(rows.shape[0]) != int(d["rows"]):
                    raise ValueError(f"part {i}: {rows.shape[0]} rows stored, {d['rows']} listed")
                parts.append(LatentPart(rows, tuple(Slot(**s) for s in d["slots"])))
            else:
                parts.append(
                    TextPart(d["text"], d["role"], d.get("document"), d.get("start"), d.get("end"))
                )
        b = meta["budget"]
        return LatentPrompt(
            parts=tuple(parts),
            target=str(meta["target"]),
            hidden_size=int(meta["hidden_size"]),
            compressor=str(meta["compressor"]),
            config_hash=str(meta["config_hash"]),
            budget=Budget(ratio=b["ratio"], target_tokens=b["target_tokens"]),
            original_tokens=int(meta["original_tokens"]),
            compressed_tokens=int(meta["compressed_tokens"]),
            notes=tuple(meta.get("notes") or ()),
            meta=dict(meta.get("meta") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"malformed latent prompt: {exc}") from exc
