"""One training forward: encoder -> latents -> decoder prompt -> loss on the answer only.

The decoder's input per sample is ``prompt-before | N latent rows | prompt-after | target``
(:meth:`~.template.CascadeTemplate.parts` with one block), right-padded across the batch;
the loss is next-token cross-entropy on the target tokens only (logits are computed at
those positions only, not over the whole sequence).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..._deps import require
from .layout import CascadeModel
from .model import backbone
from .train_data import Sample

require("torch")
import torch  # noqa: E402


class Batcher:
    """Token ids of the decoder prompt pieces (memoised per instruction) and batches."""

    def __init__(self, model: CascadeModel) -> None:
        self.model = model
        self._prompts: dict[str, tuple[list[int], list[int]]] = {}

    def prompt_ids(self, instruction: str) -> tuple[list[int], list[int]]:
        hit = self._prompts.get(instruction)
        if hit is None:
            before, _, after = self.model.template.parts(1, instruction)
            assert isinstance(before, str) and isinstance(after, str)
            tok = self.model.decoder_tokenizer
            hit = (
                tok(before, add_special_tokens=False)["input_ids"],
                tok(after, add_special_tokens=False)["input_ids"],
            )
            self._prompts[instruction] = hit
        return hit

    def target_ids(self, text: str) -> list[int]:
        tok = self.model.decoder_tokenizer
        ids: list[int] = tok(self.model.template.target(text), add_special_tokens=False)[
            "input_ids"
        ]
        return ids

    def encoder_batch(self, samples: Sequence[Sample]) -> tuple[Any, Any]:
        dev = self.model.encoder.query.weight.device
        n = max(len(s.context_ids) for s in samples)
        ids = torch.zeros(len(samples), n, dtype=torch.long)
        mask = torch.zeros(len(samples), n, dtype=torch.long)
        for i, s in enumerate(samples):
            ids[i, : len(s.context_ids)] = torch.tensor(s.context_ids)
            mask[i, : len(s.context_ids)] = 1
        return ids.to(dev), mask.to(dev)


def batch_loss(batcher: Batcher, samples: Sequence[Sample]) -> tuple[Any, tuple[int, int]]:
    """(mean next-token loss on the targets, (correct argmax predictions, target tokens))."""
    model = batcher.model
    lat = model.encoder(*batcher.encoder_batch(samples))
    dec = model.decoder
    emb = dec.get_input_embeddings()
    dev = emb.weight.device
    rows, pos, labels = [], [], []
    for i, s in enumerate(samples):
        pre, post = batcher.prompt_ids(s.instruction)
        tgt = batcher.target_ids(s.target)
        x = torch.cat(
            [
                emb(torch.tensor(pre, device=dev)),
                lat[i].to(device=dev, dtype=emb.weight.dtype),
                emb(torch.tensor(post + tgt, device=dev)),
            ]
        )
        first = len(pre) + lat.shape[1] + len(post)  # index of the first target token
        rows.append(x)
        pos += [(i, first - 1 + j) for j in range(len(tgt))]
        labels += tgt
    x = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
    attn = torch.zeros(x.shape[:2], dtype=torch.long, device=dev)
    for i, r in enumerate(rows):
        attn[i, : r.shape[0]] = 1
    h = backbone(dec)(inputs_embeds=x, attention_mask=attn).last_hidden_state
    at = torch.tensor(pos, device=dev)
    logits = dec.get_output_embeddings()(h[at[:, 0], at[:, 1]]).float()
    y = torch.tensor(labels, device=dev)
    loss = torch.nn.functional.cross_entropy(logits, y)
    correct = int((logits.detach().argmax(-1) == y).sum())
    return loss, (correct, len(labels))
