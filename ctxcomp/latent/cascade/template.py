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

    def parts(self, n_blocks: int, instruction: str) -> list[str | int]:
        """The decoder prompt as strings and block indices ``0..n_blocks-1`` (in order)."""
        if not isinstance(n_blocks, int) or n_blocks < 1:
            raise InputError(f"a decoder prompt needs at least one latent block, got {n_blocks!r}")
        if not isinstance(instruction, str) or not instruction.strip():
            raise InputError("the decoder instruction (question or 'repeat' prompt) is empty")
        head = f"{self.system_turn}{self.system}{self.turn_end}" if self.system is not None else ""
        out: list[str | int] = [head + self.user_turn + self.block_start]
        for i in range(n_blocks):
            if i:
                out.append(self.block_end + self.block_start)
            out.append(i)
        out.append(f"{self.block_end}\n{instruction}{self.turn_end}{self.assistant_turn}")
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
