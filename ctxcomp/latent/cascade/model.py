"""The C3 encoder side: an encoder LM, a learned latent query table and a projector.

C3 (Context Cascade Compression, arXiv 2511.15244) appends a block of ``N`` latent slots to
the context and runs it through a small causal LM (the *encoder*). The slots' input
embeddings are a learned table ``query = nn.Embedding(N, d_enc)``; the encoder's last-layer
(normed) hidden states at those slots pass through ``projector = nn.Linear(d_enc, d_dec)``
and become ``N`` rows in the decoder LM's input-embedding space. The encoder's input is::

    context tokens | block_start tokens | query rows (N) | block_end tokens

(C3: ``<img>`` and ``</img>``; the encoder is causal, so ``block_end`` does not change the
latents, it is kept for fidelity with C3's released weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..._deps import require
from ...errors import InputError

require("torch")
import torch  # noqa: E402
from torch import nn  # noqa: E402


def backbone(lm: Any) -> Any:
    """The transformer body of a ``*ForCausalLM`` (through a peft wrapper if there is one):
    its ``last_hidden_state`` without the LM head's logits over the vocabulary."""
    inner = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return inner.base_model


def truncate_layers(lm: Any, keep: int) -> Any:
    """Keep the first ``keep`` transformer layers of a causal LM (a cheaper encoder); the
    config says so, so the truncated model saves and loads as a normal checkpoint."""
    body = backbone(lm)
    n = len(body.layers)
    if not 1 <= keep <= n:
        raise InputError(f"keep_layers must be in [1, {n}] for this model, got {keep}")
    body.layers = body.layers[:keep]
    lm.config.num_hidden_layers = keep
    if isinstance(getattr(lm.config, "layer_types", None), list):
        lm.config.layer_types = lm.config.layer_types[:keep]
    return lm


class CascadeEncoder(nn.Module):
    """``encoder`` (a Hugging Face ``*ForCausalLM``) + ``query`` + ``projector``.

    ``forward(input_ids, attention_mask)`` takes right-padded context token ids
    ``[B, T]`` and returns latents ``[B, num_latents, out_dim]`` in the decoder's
    input-embedding space.
    """

    start_ids: torch.Tensor
    end_ids: torch.Tensor

    def __init__(
        self,
        encoder: Any,
        *,
        num_latents: int,
        out_dim: int,
        start_ids: Sequence[int] = (),
        end_ids: Sequence[int] = (),
    ) -> None:
        super().__init__()
        if not isinstance(num_latents, int) or num_latents < 1:
            raise InputError(f"num_latents must be a positive integer, got {num_latents!r}")
        if not isinstance(out_dim, int) or out_dim < 1:
            raise InputError(f"out_dim must be a positive integer, got {out_dim!r}")
        emb = encoder.get_input_embeddings()
        vocab, d_enc = int(emb.weight.shape[0]), int(emb.weight.shape[1])
        for name, ids in (("start_ids", start_ids), ("end_ids", end_ids)):
            bad = [i for i in ids if not 0 <= int(i) < vocab]
            if bad:
                raise InputError(f"{name} {bad} are outside the encoder's vocabulary ({vocab})")
        self.encoder = encoder
        self.num_latents = num_latents
        self.query = nn.Embedding(num_latents, d_enc)
        self.projector = nn.Linear(d_enc, out_dim)
        with torch.no_grad():  # query rows at the scale of the encoder's token embeddings
            self.query.weight.normal_(0.0, float(emb.weight.float().std()))
            self.projector.bias.zero_()
        dev, dt = emb.weight.device, emb.weight.dtype
        self.query.to(dev, dt)
        self.projector.to(dev, dt)
        self.register_buffer("start_ids", torch.tensor(list(start_ids), dtype=torch.long))
        self.register_buffer("end_ids", torch.tensor(list(end_ids), dtype=torch.long))

    @property
    def in_dim(self) -> int:
        return int(self.query.weight.shape[1])

    @property
    def out_dim(self) -> int:
        return int(self.projector.weight.shape[0])

    @property
    def block_tokens(self) -> int:
        """Encoder positions the latent block adds after the context."""
        return int(self.start_ids.numel() + self.num_latents + self.end_ids.numel())

    def encoder_inputs(self, input_ids: Any, attention_mask: Any) -> tuple[Any, Any, Any]:
        """(inputs_embeds, attention_mask, query-slot mask) of the encoder for a batch."""
        if input_ids.dim() != 2 or input_ids.shape != attention_mask.shape:
            raise InputError(
                "input_ids and attention_mask must both be [batch, tokens], got "
                f"{tuple(input_ids.shape)} and {tuple(attention_mask.shape)}"
            )
        mask = attention_mask.bool()
        lengths = mask.sum(1)
        b, t = input_ids.shape
        if not bool((mask == (torch.arange(t, device=mask.device)[None] < lengths[:, None])).all()):
            raise InputError("the context batch must be right-padded (attention mask 1s first)")
        if int(lengths.min()) < 1:
            raise InputError("every context in the batch needs at least one token")
        s, n = int(self.start_ids.numel()), self.num_latents
        total = t + self.block_tokens
        pos = torch.arange(total, device=input_ids.device)[None].expand(b, total)
        rel = pos - lengths[:, None]
        ids = torch.zeros(b, total, dtype=torch.long, device=input_ids.device)
        ids[:, :t] = torch.where(mask, input_ids, torch.zeros_like(input_ids))
        marker = torch.cat(
            [self.start_ids, torch.zeros(n, dtype=torch.long, device=ids.device), self.end_ids]
        )
        in_block = (rel >= 0) & (rel < self.block_tokens)
        ids = torch.where(in_block, marker[rel.clamp(0, self.block_tokens - 1)], ids)
        is_query = (rel >= s) & (rel < s + n)
        x = self.encoder.get_input_embeddings()(ids)
        q = self.query.weight.to(x.dtype)[(rel - s).clamp(0, n - 1)]
        x = torch.where(is_query[..., None], q, x)
        attn = (rel < self.block_tokens).long()
        return x, attn, is_query

    def forward(self, input_ids: Any, attention_mask: Any) -> Any:
        x, attn, is_query = self.encoder_inputs(input_ids, attention_mask)
        h = backbone(self.encoder)(inputs_embeds=x, attention_mask=attn).last_hidden_state
        lat = h[is_query].view(input_ids.shape[0], self.num_latents, h.shape[-1])
        return self.projector(lat.to(self.projector.weight.dtype))
