"""C3 reconstruction on held-out text vs giving the decoder the same positions as plain text.

For each rate r (default 4 and 8) and each of ``--n`` held-out records, the first chunk of
``N * r`` encoder tokens (N = the model's latents per chunk) is given to the decoder in
``N`` positions four ways, and the decoder is asked to "Repeat the text":

* ``c3``       — the chunk's N latent rows (CascadeCompressor, one block);
* ``head``     — the chunk's first N tokens as text (head truncation);
* ``ctxcomp``  — ``ctxcomp.compress(chunk, target_tokens=N, reader="hf:<decoder dir>")``;
* ``c3-other`` — control: another record's latents (how much overlap generic text gets).

All four use the same decoder, template and greedy decoding. Metrics against the chunk's
text, in decoder tokens: multiset token precision / recall / F1 and the exact-match rate.
``*-oracle`` rows score the given text itself (a decoder that copies perfectly).

    python benchmarks/bench_cascade.py --model runs/c3-frozen/model \
        --data runs/c3-data/test.jsonl --n 24 --out benchmarks/results/cascade
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any


def overlap(ref: list[int], out: list[int]) -> tuple[float, float, float]:
    common = sum((Counter(ref) & Counter(out)).values())
    p = common / len(out) if out else 0.0
    r = common / len(ref) if ref else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def norm(s: str) -> str:
    return " ".join(s.split())


def decode_texts(model: Any, texts: list[str], max_new: int) -> list[str]:
    """The decoder's reconstruction from plain-text context (same template as C3's)."""
    import torch

    from ctxcomp.latent import TextPart
    from ctxcomp.latent.cascade.decode import stop_kwargs
    from ctxcomp.latent.generate import build_inputs

    outs = []
    for t in texts:
        batch = build_inputs(model.decoder, model.decoder_tokenizer, model.template.reconstruct,
                             [TextPart(t, "context")], template=model.template)  # fmt: skip
        with torch.inference_mode():
            o = model.decoder.generate(
                inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                max_new_tokens=max_new, do_sample=False, no_repeat_ngram_size=20,
                **stop_kwargs(model),
            )  # fmt: skip
        s = model.decoder_tokenizer.decode(o[0], skip_special_tokens=False)
        outs.append(
            s.split(model.template.stop)[0].replace(model.decoder_tokenizer.eos_token or "\0", "")
        )
    return outs


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", required=True, help="C3-layout checkpoint directory")
    ap.add_argument("--data", default="runs/c3-data/test.jsonl")
    ap.add_argument("--n", type=int, default=24, help="held-out records per rate")
    ap.add_argument("--rates", default="4,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/cascade")
    args = ap.parse_args()

    import torch

    import ctxcomp
    from ctxcomp.latent.cascade import CascadeCompressor, load_c3, reconstruct
    from ctxcomp.latent.cascade.train_data import read_records

    torch.set_num_threads(args.threads)
    model = load_c3(args.model, device="cpu", dtype="float32")
    comp = CascadeCompressor(model)
    tok, dtok = model.encoder_tokenizer, model.decoder_tokenizer
    n_lat = model.num_latents
    recs, _ = read_records([args.data])
    reader = f"hf:{args.model}"
    rows: list[dict[str, Any]] = []
    summary: dict[str, dict[str, dict[str, float]]] = {}
    t0 = time.perf_counter()
    for rate in [int(x) for x in args.rates.split(",")]:
        length = n_lat * rate
        chunks = []
        for r in recs:
            ids = tok(r.text, add_special_tokens=False)["input_ids"]
            if len(ids) >= length:
                chunks.append(tok.decode(ids[:length]))
            if len(chunks) == args.n:
                break
        head = [tok.decode(tok(c, add_special_tokens=False)["input_ids"][:n_lat]) for c in chunks]
        cc = [ctxcomp.compress(c, target_tokens=n_lat, reader=reader).text for c in chunks]
        lps = [comp.compress(c, target_tokens=n_lat) for c in chunks]
        assert all(lp.compressed_tokens == n_lat for lp in lps)
        max_new = int(1.25 * length) + 8
        outs = {
            "c3": [reconstruct(model, lp, max_new_tokens=max_new) for lp in lps],
            "c3-other": [
                reconstruct(model, lps[(i + 1) % len(lps)], max_new_tokens=max_new)
                for i in range(len(lps))
            ],
            "head": decode_texts(model, head, max_new),
            "ctxcomp": decode_texts(model, cc, max_new),
            "head-oracle": head,
            "ctxcomp-oracle": cc,
        }
        summary[str(rate)] = {}
        for name, texts in outs.items():
            ps, rs, fs, em = [], [], [], 0
            for ref, out in zip(chunks, texts):
                p, r, f = overlap(dtok(ref, add_special_tokens=False)["input_ids"],
                                  dtok(out, add_special_tokens=False)["input_ids"])  # fmt: skip
                ps.append(p)
                rs.append(r)
                fs.append(f)
                em += norm(ref) == norm(out)
                rows.append({"rate": rate, "method": name, "precision": p, "recall": r, "f1": f,
                             "reference": ref, "output": out})  # fmt: skip
            k = max(1, len(texts))
            summary[str(rate)][name] = {"precision": sum(ps) / k, "recall": sum(rs) / k,
                                        "f1": sum(fs) / k, "exact_match": em / k, "n": len(texts)}  # fmt: skip
            print(f"{rate}x ({length} -> {n_lat}) {name:15s} P {sum(ps) / k:.3f}  R {sum(rs) / k:.3f}"
                  f"  F1 {sum(fs) / k:.3f}  EM {em / k:.3f}  (n={len(texts)})", flush=True)  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"model": args.model, "data": args.data, "n": args.n, "latents": n_lat,
            "seconds": round(time.perf_counter() - t0, 1), "summary": summary}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(meta, indent=1) + "\n")
    (out / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plot(summary, out / "reconstruction.png", n_lat)
    print(f"wrote {out}/summary.json, rows.jsonl, reconstruction.png ({meta['seconds']} s)")


def plot(summary: dict[str, dict[str, dict[str, float]]], path: Path, n_lat: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = sorted(summary, key=int)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, metric in zip(axes, ("precision", "recall", "f1")):
        for name, style in (("c3", "o-"), ("head", "s--"), ("ctxcomp", "^--"),
                            ("c3-other", "x:"), ("head-oracle", "s:")):  # fmt: skip
            ax.plot([int(r) for r in rates], [summary[r][name][metric] for r in rates], style,
                    label=name)  # fmt: skip
        ax.set_title(f"token {metric}")
        ax.set_xlabel(f"compression (context tokens per latent; N={n_lat})")
        ax.set_xticks([int(r) for r in rates])
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=8)
    fig.suptitle("C3 reconstruction vs the same positions as plain text (held-out text)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
