"""One training forward: encoder -> latents -> decoder prompt -> loss on the answer only.

The decoder's input per sample is built by the splice primitive
(:func:`ctxcomp.latent.build_inputs`) with C3's template: prompt text, the chunk's latent
block, the instruction, then the target tokens, which alone carry labels. Gradients flow
through the spliced latent rows into the projector, the query table and the encoder. Logits
are computed for the labelled positions only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..._deps import require
from ..generate import build_inputs
from ..prompt import LatentPart
from .layout import CascadeModel
from .train_data import Sample

require("torch")
import torch  # noqa: E402


def encoder_batch(model: CascadeModel, samples: Sequence[Sample]) -> tuple[Any, Any]:
    """Right-padded context ids and mask on the encoder's device."""
    dev = model.encoder.query.weight.device
    n = max(len(s.context_ids) for s in samples)
    ids = torch.zeros(len(samples), n, dtype=torch.long)
    mask = torch.zeros(len(samples), n, dtype=torch.long)
    for i, s in enumerate(samples):
        ids[i, : len(s.context_ids)] = torch.tensor(s.context_ids)
        mask[i, : len(s.context_ids)] = 1
    return ids.to(dev), mask.to(dev)


def batch_loss(model: CascadeModel, samples: Sequence[Sample]) -> tuple[Any, tuple[int, int]]:
    """(mean next-token loss on the targets, (correct argmax predictions, target tokens))."""
    lat = model.encoder(*encoder_batch(model, samples))
    dec = model.decoder
    sp = build_inputs(
        dec,
        model.decoder_tokenizer,
        [s.instruction for s in samples],
        [[LatentPart(lat[i])] for i in range(len(samples))],
        answers=[model.template.target(s.target) for s in samples],
        template=model.template,
        check=False,
    )
    labelled = (sp.labels >= 0).any(dim=0).nonzero()
    keep = int(sp.labels.shape[1]) - int(labelled[0])
    out = dec(
        inputs_embeds=sp.inputs_embeds,
        attention_mask=sp.attention_mask,
        position_ids=sp.position_ids,
        use_cache=False,
        logits_to_keep=keep,
    )
    logits = out.logits.float().reshape(-1, out.logits.shape[-1])
    y = sp.labels[:, -keep:].reshape(-1)
    loss = torch.nn.functional.cross_entropy(logits, y, ignore_index=-100)
    m = y >= 0
    correct = int((logits.detach()[m].argmax(-1) == y[m]).sum())
    return loss, (correct, int(m.sum()))
