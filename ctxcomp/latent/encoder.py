"""CompLLM's concept-embedding encoder: the reader LM + a LoRA + one linear layer.

A segment of S tokens followed by k extra positions (the EOS token, k = ⌈S/C⌉ at rate C)
goes through the LM with a LoRA adapter (``peft``); the last-layer hidden states at the k
extra positions, through one ``Linear(d, d)``, are the segment's concept embeddings (CEs):
k rows in the space of the LM's input embeddings.

The adapter sits on a *shared-weight copy* of the LM (same parameter tensors, new module
objects), so the caller's model is never modified: it reads CEs with its plain weights and
keeps its :func:`~ctxcomp.core.model_fingerprint`.

Saved as ``encoder.safetensors`` (LoRA + head tensors) + ``encoder.json`` (config, the
LM's fingerprint, training notes): no pickle.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._deps import require
from ..core.fingerprint import digest, model_fingerprint
from ..errors import InputError, ModelLoadError

WEIGHTS = "encoder.safetensors"
CONFIG = "encoder.json"


@dataclass(frozen=True)
class EncoderConfig:
    """What the encoder is: segment length S, the rates it was trained for, the LoRA."""

    segment_tokens: int = 20
    min_rate: float = 2.0
    max_rate: float = 4.0
    lora_r: int = 8
    lora_alpha: int = 16
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    extra_token_id: int | None = None  # default: the tokenizer's EOS
    encoder_layers: int | None = None  # first N decoder layers only (None: all, as the paper)

    def __post_init__(self) -> None:
        if not 2 <= self.segment_tokens <= 4096:
            raise InputError(f"segment_tokens must be in [2, 4096], got {self.segment_tokens}")
        if not 1.0 <= self.min_rate <= self.max_rate <= self.segment_tokens:
            raise InputError(
                f"rates must satisfy 1 <= min_rate <= max_rate <= segment_tokens "
                f"({self.segment_tokens}), got min_rate={self.min_rate}, max_rate={self.max_rate}"
            )
        if self.encoder_layers is not None and self.encoder_layers < 1:
            raise InputError(f"encoder_layers must be at least 1, got {self.encoder_layers}")
        if self.lora_r < 1:
            raise InputError(f"lora_r must be at least 1, got {self.lora_r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d


def shared_copy(model: Any, layers: int | None = None) -> Any:
    """New module objects over the same parameter and buffer tensors (no weight copy),
    keeping only the first ``layers`` decoder layers when given."""
    memo: dict[int, Any] = {id(t): t for t in model.parameters()}
    memo.update({id(t): t for t in model.buffers()})
    out = copy.deepcopy(model, memo)
    if layers is not None:
        dec = out.get_decoder()
        if not hasattr(dec, "layers") or layers > len(dec.layers):
            raise InputError(f"cannot keep {layers} layers of this {type(model).__name__}")
        dec.layers = dec.layers[:layers]
        cfg = out.config
        cfg.num_hidden_layers = layers
        if isinstance(getattr(cfg, "layer_types", None), list):
            cfg.layer_types = cfg.layer_types[:layers]
    return out


@dataclass
class EncoderInfo:
    """Provenance saved beside the weights."""

    lm_fingerprint: str
    lm_spec: str = ""
    notes: dict[str, Any] = field(default_factory=dict)


class ConceptEncoder:
    """Turns segments (token ids) into concept-embedding rows for one LM."""

    def __init__(
        self, lm: Any, tokenizer: Any, cfg: EncoderConfig | None = None, *, lm_spec: str = ""
    ) -> None:
        torch = require("torch")
        peft = require("peft", "latent")
        self.cfg = cfg or EncoderConfig()
        self.target = model_fingerprint(lm)
        self.info = EncoderInfo(self.target, lm_spec)
        eos = self.cfg.extra_token_id
        if eos is None:
            eos = getattr(tokenizer, "eos_token_id", None)
        if eos is None:
            raise InputError("the tokenizer has no EOS token: set EncoderConfig.extra_token_id")
        self.extra_id = int(eos)
        emb = lm.get_input_embeddings()
        self.hidden_size = int(emb.weight.shape[1])
        self.device = emb.weight.device
        self.dtype = emb.weight.dtype
        names = {n.rsplit(".", 1)[-1] for n, _ in lm.named_modules()}
        missing = [m for m in self.cfg.target_modules if m not in names]
        if missing:
            raise InputError(f"LoRA target modules {missing} are not in this {type(lm).__name__}")
        lora = peft.LoraConfig(
            r=self.cfg.lora_r,
            lora_alpha=self.cfg.lora_alpha,
            lora_dropout=0.0,
            target_modules=list(self.cfg.target_modules),
            bias="none",
        )
        state = torch.random.get_rng_state()
        torch.manual_seed(0)  # the same fresh adapter every time
        try:
            with warnings.catch_warnings():  # peft asks a deprecated transformers property
                warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
                self.lm = peft.get_peft_model(shared_copy(lm, self.cfg.encoder_layers), lora)
            self.head = torch.nn.Linear(self.hidden_size, self.hidden_size).to(
                self.device, self.dtype
            )
        finally:
            torch.random.set_rng_state(state)
        self.lm.eval()
        self._init_head(emb)

    # -- weights ----------------------------------------------------------------------

    def _init_head(self, emb: Any) -> None:
        """Identity scaled so the CEs start at the token embeddings' typical norm."""
        torch = require("torch")
        with torch.no_grad():
            probe = [list(range(min(16, emb.weight.shape[0])))]
            h = self._hidden(probe, [4])[0]
            scale = emb.weight.float().pow(2).mean().sqrt() / h.float().pow(2).mean().sqrt()
            self.head.weight.copy_(torch.eye(self.hidden_size) * scale)
            self.head.bias.zero_()

    def trainable(self) -> list[Any]:
        """The parameters training updates: the LoRA and the head."""
        return [p for p in self.lm.parameters() if p.requires_grad] + list(self.head.parameters())

    def state_dict(self) -> dict[str, Any]:
        peft = require("peft", "latent")
        out = {f"lora.{k}": v for k, v in peft.get_peft_model_state_dict(self.lm).items()}
        out.update({f"head.{k}": v for k, v in self.head.state_dict().items()})
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        peft = require("peft", "latent")
        lora = {k[5:]: v for k, v in state.items() if k.startswith("lora.")}
        head = {k[5:]: v for k, v in state.items() if k.startswith("head.")}
        if not lora or set(head) != {"weight", "bias"}:
            raise ModelLoadError("encoder weights need lora.* and head.weight/head.bias tensors")
        res = peft.set_peft_model_state_dict(self.lm, lora)
        unexpected = getattr(res, "unexpected_keys", None) or []
        if unexpected:
            raise ModelLoadError(f"encoder weights do not fit this LoRA: {unexpected[:3]}")
        self.head.load_state_dict({k: v.to(self.dtype) for k, v in head.items()})

    @property
    def fingerprint(self) -> str:
        """Digest of the config and the trained tensors (changes when training moves them)."""
        import hashlib

        h = hashlib.sha256(json.dumps(self.cfg.to_dict(), sort_keys=True).encode())
        for k, v in sorted(self.state_dict().items()):
            t = v.detach().float().reshape(-1)
            h.update(k.encode())
            h.update(t[:: max(1, t.numel() // 4096)].cpu().numpy().tobytes())
        return digest(h.hexdigest())

    def save(self, path: str | os.PathLike[str], *, half: bool = True) -> None:
        """Write ``encoder.safetensors`` (fp16 unless ``half=False``) and ``encoder.json``."""
        from safetensors.torch import save_file

        torch = require("torch")
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        dt = torch.float16 if half else torch.float32
        tensors = {k: v.detach().to("cpu", dt).contiguous() for k, v in self.state_dict().items()}
        tmp = out / f".{WEIGHTS}.{os.getpid()}.tmp"
        save_file(tensors, str(tmp))
        os.replace(tmp, out / WEIGHTS)
        meta = {"config": self.cfg.to_dict(), **asdict(self.info)}
        (out / CONFIG).write_text(json.dumps(meta, indent=2, sort_keys=True))

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], lm: Any, tokenizer: Any, *, strict_lm: bool = True
    ) -> ConceptEncoder:
        """An encoder saved by :meth:`save`, on ``lm``; refused (``ModelLoadError``) when it
        was trained for another LM, unless ``strict_lm=False``."""
        from safetensors.torch import load_file

        p = Path(path)
        try:
            meta = json.loads((p / CONFIG).read_text())
            tensors = load_file(str(p / WEIGHTS))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read a CompLLM encoder from {str(p)!r}: {exc}") from exc
        c = dict(meta["config"])
        c["target_modules"] = tuple(c["target_modules"])
        enc = cls(lm, tokenizer, EncoderConfig(**c), lm_spec=str(meta.get("lm_spec", "")))
        if strict_lm and meta.get("lm_fingerprint") != enc.target:
            raise ModelLoadError(
                f"the CompLLM encoder in {str(p)!r} was trained for LM {meta.get('lm_fingerprint')} "
                f"({meta.get('lm_spec') or 'unnamed'}), not for this one ({enc.target}): its "
                "concept embeddings would be meaningless here; train one with ctxcomp train-latent"
            )
        enc.load_state_dict(tensors)
        enc.info.notes = dict(meta.get("notes") or {})
        return enc

    # -- compute ----------------------------------------------------------------------

    def _hidden(self, segments: Sequence[Sequence[int]], rows: Sequence[int]) -> list[Any]:
        torch = require("torch")
        lens = [len(s) + k for s, k in zip(segments, rows)]
        n = max(lens)
        ids = torch.full((len(segments), n), self.extra_id, dtype=torch.long)
        mask = torch.zeros(len(segments), n, dtype=torch.long)
        for i, s in enumerate(segments):
            ids[i, : len(s)] = torch.tensor(list(s), dtype=torch.long)
            mask[i, : lens[i]] = 1
        decoder = self.lm.get_base_model().get_decoder()
        h = decoder(
            input_ids=ids.to(self.device), attention_mask=mask.to(self.device), use_cache=False
        ).last_hidden_state
        return [h[i, len(s) : len(s) + k] for i, (s, k) in enumerate(zip(segments, rows))]

    def encode(
        self,
        segments: Sequence[Sequence[int]],
        rows: Sequence[int],
        *,
        batch_size: int = 64,
        progress: Any = None,
    ) -> list[Any]:
        """CE rows ``[k_i, d]`` for each segment (``rows[i]`` = k_i). Batched by length;
        gradients flow when called outside ``torch.no_grad`` (training)."""
        if len(segments) != len(rows):
            raise InputError("give one row count per segment")
        for i, (s, k) in enumerate(zip(segments, rows)):
            if not s:
                raise InputError(f"segment {i} is empty: every segment needs tokens")
            if k < 1:
                raise InputError(f"segment {i}: row count must be at least 1, got {k}")
        order = sorted(range(len(segments)), key=lambda i: (len(segments[i]) + rows[i], i))
        out: list[Any] = [None] * len(segments)
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            hs = self._hidden([segments[i] for i in idx], [rows[i] for i in idx])
            for i, h in zip(idx, hs):
                out[i] = self.head(h)
            if progress is not None:
                progress(min(b + batch_size, len(order)), len(order))
        return out
