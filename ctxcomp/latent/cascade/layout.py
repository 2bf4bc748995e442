"""C3's checkpoint layout, read and written with plain transformers classes.

The released C3 checkpoint (``liufanfanlff/C3-Context-Cascade-Compression``) is::

    config.json          Qwen2 config of the decoder, model_type "C3", plus
                         latent_token_len (N), contexts_compression_llm_hidden_size (d_enc),
                         im_start_token / im_end_token / im_patch_token (<img> </img> <imgpad>)
    model*.safetensors   the decoder (model.*, lm_head.*) and the C3 parts:
                         model.Q.weight [N, d_enc], model.mm_projector.{weight,bias}
    qwen.tiktoken ...    the tokenizer (one for both models)
    llm1/                the encoder: a plain Qwen2ForCausalLM checkpoint

Upstream loads it with ``trust_remote_code``. Here the decoder is built from the config
under its base ``model_type`` (``qwen2`` for C3's own weights; checkpoints written by
:func:`save_c3` record theirs, e.g. ``llama``), the encoder from ``llm1/`` with
``AutoModelForCausalLM``, and the query table and projector are read by key from the
safetensors files. ctxcomp's own additions (template, chunk size, marker ids) live under
one config key, ``ctxcomp_cascade``, that C3's code ignores.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..._deps import require
from ...backends.tracing import quiet_transformers
from ...errors import InputError, ModelLoadError
from .model import CascadeEncoder
from .template import C3, CascadeTemplate
from .tokenizer import load_tokenizer

QUERY_KEY = "model.Q.weight"
PROJ_W = "model.mm_projector.weight"
PROJ_B = "model.mm_projector.bias"
C3_PARTS = (QUERY_KEY, PROJ_W, PROJ_B)
C3_CONFIG_KEYS = (
    "latent_token_len",
    "contexts_compression_llm_hidden_size",
    "im_start_token",
    "im_end_token",
    "im_patch_token",
    "use_im_start_end",
)
EXT = "ctxcomp_cascade"
ENCODER_DIR = "llm1"
EXTRA_SHARD = "model-c3-parts.safetensors"


@dataclass
class CascadeModel:
    """Everything C3 needs: the encoder side, the decoder LM, tokenizers and the template.

    ``chunk_tokens`` is the longest context chunk one latent block stands for (the
    encoder's window as trained)."""

    encoder: CascadeEncoder
    decoder: Any
    encoder_tokenizer: Any
    decoder_tokenizer: Any
    template: CascadeTemplate
    chunk_tokens: int
    source: str | None = None

    def __post_init__(self) -> None:
        check_decoder(self.encoder, self.decoder)
        if not isinstance(self.chunk_tokens, int) or self.chunk_tokens < 1:
            raise InputError(f"chunk_tokens must be a positive integer, got {self.chunk_tokens!r}")

    @property
    def num_latents(self) -> int:
        return self.encoder.num_latents

    def to(self, device: str | None = None, dtype: Any = None) -> CascadeModel:
        self.encoder.to(device=device, dtype=dtype)
        self.decoder.to(device=device, dtype=dtype)
        return self


def check_decoder(encoder: CascadeEncoder, decoder: Any) -> None:
    """Refuse a decoder whose input embeddings are not the projector's output size."""
    emb = decoder.get_input_embeddings() if hasattr(decoder, "get_input_embeddings") else None
    if emb is None:
        raise InputError(f"the decoder ({type(decoder).__name__}) has no input embeddings")
    d = int(emb.weight.shape[1])
    if d != encoder.out_dim:
        raise InputError(
            f"the projector writes {encoder.out_dim}-d rows but the decoder "
            f"{type(decoder).__name__} embeds tokens in {d} dimensions: this encoder was "
            "trained for another decoder"
        )


def marker_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a block marker (no BOS/EOS)."""
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]] if text else []


def build(
    encoder_lm: Any,
    decoder_lm: Any,
    encoder_tokenizer: Any,
    decoder_tokenizer: Any | None = None,
    *,
    num_latents: int = 32,
    template: CascadeTemplate = C3,
    chunk_tokens: int = 128,
) -> CascadeModel:
    """A fresh (untrained query and projector) C3 model over two causal LMs."""
    dec_tok = decoder_tokenizer if decoder_tokenizer is not None else encoder_tokenizer
    enc = CascadeEncoder(
        encoder_lm,
        num_latents=num_latents,
        out_dim=int(decoder_lm.get_input_embeddings().weight.shape[1]),
        start_ids=marker_ids(encoder_tokenizer, template.block_start),
        end_ids=marker_ids(encoder_tokenizer, template.block_end),
    )
    return CascadeModel(enc, decoder_lm, encoder_tokenizer, dec_tok, template, chunk_tokens)


# -- saving ---------------------------------------------------------------------------------


def save_c3(
    model: CascadeModel, path: str | os.PathLike[str], *, max_shard_size: str | None = None
) -> Path:
    """Write ``model`` in C3's layout (loadable by :func:`load_c3`, and by C3's own code when
    the decoder is a Qwen2). ``max_shard_size`` (e.g. ``"2GB"``) shards the decoder."""
    require("safetensors")
    from safetensors.torch import load_file, save_file

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    enc = model.encoder
    shard_kw = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.decoder.save_pretrained(out, **shard_kw)
    model.decoder_tokenizer.save_pretrained(out)
    enc.encoder.save_pretrained(out / ENCODER_DIR)
    model.encoder_tokenizer.save_pretrained(out / ENCODER_DIR)
    parts = {
        QUERY_KEY: enc.query.weight,
        PROJ_W: enc.projector.weight,
        PROJ_B: enc.projector.bias,
    }
    parts = {k: v.detach().to("cpu").contiguous() for k, v in parts.items()}
    index = out / "model.safetensors.index.json"
    if index.is_file():  # sharded decoder: the C3 parts become one more shard
        save_file(parts, str(out / EXTRA_SHARD), metadata={"format": "pt"})
        idx = json.loads(index.read_text(encoding="utf-8"))
        idx["weight_map"].update({k: EXTRA_SHARD for k in parts})
        index.write_text(json.dumps(idx, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    else:
        single = out / "model.safetensors"
        tensors = load_file(str(single))
        tensors.update(parts)
        save_file(tensors, str(single), metadata={"format": "pt"})
    cfg = model.decoder.config.to_dict()
    base_type = cfg.get("model_type")
    tok = model.decoder_tokenizer
    ids = {
        "im_start_token": _single_id(tok, model.template.block_start),
        "im_end_token": _single_id(tok, model.template.block_end),
        "im_patch_token": _single_id(tok, model.template.block_pad),
    }
    cfg.update({k: v for k, v in ids.items() if v is not None})
    cfg.update(
        {
            "model_type": "C3",
            "architectures": ["C3QwenForCausalLM"],
            "latent_token_len": enc.num_latents,
            "contexts_compression_llm_hidden_size": enc.in_dim,
            "use_im_start_end": True,
            EXT: {
                "decoder_model_type": base_type,
                "template": model.template.to_dict(),
                "chunk_tokens": model.chunk_tokens,
                "encoder_start_ids": enc.start_ids.tolist(),
                "encoder_end_ids": enc.end_ids.tolist(),
            },
        }
    )
    (out / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", "utf-8")
    return out


def _single_id(tok: Any, text: str) -> int | None:
    ids = marker_ids(tok, text)
    return ids[0] if len(ids) == 1 else None


# -- loading --------------------------------------------------------------------------------


def resolve_device_dtype(device: str = "auto", dtype: Any = "auto") -> tuple[str, Any]:
    """("cuda" when present, else "mps", else "cpu"; bf16 on CUDA GPUs that have it, fp16 on
    other GPUs, fp32 on the CPU) unless given."""
    torch = require("torch")
    from ...backends import pick_device

    dev = pick_device(device)
    if dtype != "auto":
        if isinstance(dtype, str):
            dt = getattr(torch, dtype, None)
            if not isinstance(dt, torch.dtype):
                raise InputError(f"unknown dtype {dtype!r} (e.g. float32, bfloat16, float16)")
            return dev, dt
        return dev, dtype
    if dev.startswith("cuda"):
        return dev, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return dev, torch.float32


def _shards(root: Path) -> list[Path]:
    index = root / "model.safetensors.index.json"
    if index.is_file():
        wm = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        return [root / f for f in sorted(set(wm.values()))]
    single = root / "model.safetensors"
    if single.is_file():
        return [single]
    raise ModelLoadError(
        f"{root} has no model.safetensors or model.safetensors.index.json (C3 weights)"
    )


def _read_parts(root: Path) -> dict[str, Any]:
    from safetensors import safe_open

    found: dict[str, Any] = {}
    for shard in _shards(root):
        with safe_open(str(shard), framework="pt") as f:
            for k in C3_PARTS:
                if k in f.keys():  # noqa: SIM118 (safe_open has no __contains__)
                    found[k] = f.get_tensor(k)
    missing = [k for k in C3_PARTS if k not in found]
    if missing:
        raise ModelLoadError(f"{root} is missing the C3 weights {missing}")
    return found


def read_config(root: Path) -> dict[str, Any]:
    cf = root / "config.json"
    if not cf.is_file():
        raise ModelLoadError(f"{root} has no config.json: not a C3 checkpoint directory")
    try:
        cfg = json.loads(cf.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelLoadError(f"{cf} is not valid JSON: {exc}") from exc
    if cfg.get("model_type") != "C3":
        raise ModelLoadError(
            f"{cf} has model_type {cfg.get('model_type')!r}, not 'C3': not a C3 checkpoint"
        )
    for k in ("latent_token_len", "contexts_compression_llm_hidden_size"):
        if not isinstance(cfg.get(k), int):
            raise ModelLoadError(f"{cf} lacks the integer C3 field {k!r}")
    return dict(cfg)


def load_c3(
    path: str | os.PathLike[str],
    *,
    device: str = "auto",
    dtype: Any = "auto",
    chunk_tokens: int | None = None,
) -> CascadeModel:
    """Load a checkpoint in C3's layout (no remote code) onto ``device`` in ``dtype``."""
    require("torch")
    require("transformers")
    from transformers import AutoConfig, AutoModelForCausalLM

    root = Path(path).expanduser()
    if not root.is_dir():
        raise ModelLoadError(f"C3 checkpoint directory {root} does not exist")
    cfg = read_config(root)
    ext = cfg.get(EXT) or {}
    dev, dt = resolve_device_dtype(device, dtype)
    base_type = ext.get("decoder_model_type", "qwen2")
    dec_kw = {
        k: v
        for k, v in cfg.items()
        if k not in (*C3_CONFIG_KEYS, EXT, "model_type", "architectures", "auto_map")
    }
    try:
        dec_cfg = AutoConfig.for_model(base_type, **dec_kw)
    except (KeyError, ValueError) as exc:
        raise ModelLoadError(f"unknown decoder model_type {base_type!r} in {root}: {exc}") from exc
    enc_dir = root / ENCODER_DIR
    if not (enc_dir / "config.json").is_file():
        raise ModelLoadError(f"{root} has no encoder checkpoint in {ENCODER_DIR}/")
    load_kw: dict[str, Any] = {"dtype": dt}
    if dev != "cpu":
        load_kw["device_map"] = {"": dev}
    try:
        with quiet_transformers():
            loaded: Any = AutoModelForCausalLM.from_pretrained(
                str(root), config=dec_cfg, output_loading_info=True, **load_kw
            )
            encoder_lm = AutoModelForCausalLM.from_pretrained(str(enc_dir), **load_kw)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load the C3 checkpoint in {root}: {exc}") from exc
    decoder, info = loaded
    unexpected = set(info.get("unexpected_keys", ())) - set(C3_PARTS)
    missing = set(info.get("missing_keys", ()))
    if unexpected or missing:
        raise ModelLoadError(
            f"{root}: decoder weights do not match its config (missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]})"
        )
    parts = _read_parts(root)
    n, d_enc = int(cfg["latent_token_len"]), int(cfg["contexts_compression_llm_hidden_size"])
    if tuple(parts[QUERY_KEY].shape) != (n, d_enc):
        raise ModelLoadError(
            f"{root}: {QUERY_KEY} is {tuple(parts[QUERY_KEY].shape)}, config says ({n}, {d_enc})"
        )
    enc_tok = load_tokenizer(enc_dir) if _has_tokenizer(enc_dir) else load_tokenizer(root)
    dec_tok = load_tokenizer(root)
    template = CascadeTemplate.from_dict(ext["template"]) if "template" in ext else C3
    start = ext.get("encoder_start_ids", [cfg["im_start_token"]] if "im_start_token" in cfg else [])
    end = ext.get("encoder_end_ids", [cfg["im_end_token"]] if "im_end_token" in cfg else [])
    d_out = int(parts[PROJ_W].shape[0])
    enc = CascadeEncoder(encoder_lm, num_latents=n, out_dim=d_out, start_ids=start, end_ids=end)
    if enc.in_dim != d_enc:
        raise ModelLoadError(
            f"{root}: the encoder in {ENCODER_DIR}/ is {enc.in_dim}-d, config says {d_enc}"
        )
    try:
        enc.query.weight.data.copy_(parts[QUERY_KEY])
        enc.projector.weight.data.copy_(parts[PROJ_W])
        enc.projector.bias.data.copy_(parts[PROJ_B])
    except RuntimeError as exc:
        raise ModelLoadError(f"{root}: C3 query/projector shapes do not fit: {exc}") from exc
    enc.to(device=dev)
    enc.eval()
    decoder.eval()
    if chunk_tokens is None:
        window = int(getattr(encoder_lm.config, "max_position_embeddings", 0) or 0)
        chunk_tokens = int(ext.get("chunk_tokens") or max(1, window - enc.block_tokens))
    return CascadeModel(enc, decoder, enc_tok, dec_tok, template, chunk_tokens, str(root))


def _has_tokenizer(d: Path) -> bool:
    return (d / "tokenizer.json").is_file() or (d / "qwen.tiktoken").is_file()
