"""C3's decoder prompt: chat turns around one ``<img> latents </img>`` block per chunk.

C3's released model reads (its "mpt" conversation, ChatML with no newline after
``<|im_end|>``)::

    <|im_start|>system\\n{system}<|im_end|><|im_start|>user\\n<img>{N latent rows}</img>\\n
    {instruction}<|im_end|><|im_start|>assistant\\n

and answers until ``<|im_end|>``; "Repeat the text: " asks for the context back. This
module lays that out as ordered parts — strings and latent-block indices — that the splice
primitive (:mod:`ctxcomp.latent.generate`) turns into ``inputs_embeds``. Several chunks get
one ``<img>...</img>`` block each, in order. Importing it is light (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from ...errors import InputError

C3_SYSTEM = "You should follow the instructions carefully and explain your answers in detail."
RECONSTRUCT = "Repeat the text: "


@dataclass(frozen=True)
class CascadeTemplate:
    """Where latent blocks and the instruction go in the decoder's prompt.

    ``system`` None leaves the system turn out (shorter prompts for small decoders).
    ``block_start``/``block_end`` surround each chunk's latent rows in the decoder prompt
    (and end the encoder's context, see :class:`~.model.CascadeEncoder`); ``block_pad`` is
    the placeholder token C3's own code writes once per latent row (kept for the layout;
    the splice does not need it)."""

    system: str | None = C3_SYSTEM
    system_turn: str = "<|im_start|>system\n"
    user_turn: str = "<|im_start|>user\n"
    assistant_turn: str = "<|im_start|>assistant\n"
    turn_end: str = "<|im_end|>"
    block_start: str = "<img>"
    block_end: str = "</img>"
    block_pad: str = "<imgpad>"
    reconstruct: str = RECONSTRUCT

    def __call__(
        self, tokenizer: Any, parts: Sequence[Any], question: str, system: str | None = None
    ) -> list[Any]:
        """The decoder prompt as text pieces and latent parts, in order (the
        :data:`ctxcomp.latent.generate.Template` protocol): each latent part in its own
        ``block_start ... block_end``, text parts verbatim, then the question."""
        from ..prompt import LatentPart

        if not isinstance(question, str) or not question.strip():
            raise InputError("the decoder instruction (question or 'repeat' prompt) is empty")
        sys_text = system if system is not None else self.system
        head = f"{self.system_turn}{sys_text}{self.turn_end}" if sys_text is not None else ""
        out: list[Any] = [head + self.user_turn]
        for p in parts:
            if isinstance(p, LatentPart):
                out[-1] += self.block_start
                out += [p, self.block_end]
            else:
                out[-1] += p.text
        out[-1] += f"\n{question}{self.turn_end}{self.assistant_turn}"
        return out

    def target(self, text: str) -> str:
        """What the decoder is trained to write: the answer and the end of its turn."""
        return text + self.turn_end

    @property
    def stop(self) -> str:
        return self.turn_end

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CascadeTemplate:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown C3 template fields {unknown}; known: {sorted(known)}")
        return cls(**d)


C3 = CascadeTemplate()
COMPACT = CascadeTemplate(system=None)
