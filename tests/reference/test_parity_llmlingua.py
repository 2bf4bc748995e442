"""Parity of the per-chunk mode with the ``llmlingua`` package's LLMLingua-2 path.

Same checkpoint (the MiniLM encoder with a seeded random head, ``minilm_classifier_dir``),
same text (whole Paul Graham essays), same rate: ``TokenClassifierCompressor(...,
mode="per_chunk")`` must keep the same words as ``PromptCompressor(...,
use_llmlingua2=True).compress_prompt(...)``. Words are compared through the reference's
``fn_labeled_original_prompt`` (word / 0-1 label pairs) against our ``result.scores``.

Settings used for the word-for-word comparison, each one a documented difference:

* ``force_tokens=(".", "?", "!")`` on both sides and ``drop_consecutive=False``: the
  reference turns a force token that is not a single encoder token ("\\n" for BERT) into
  an added ``[NEWi]`` token *fed to the encoder*, which changes the probabilities of the
  whole chunk (see ``test_newline_force_token_bounded``).
* ``chunk_end_tokens=(".",)`` on our side: the reference looks for chunk ends among the
  encoder's tokens, and BERT (like XLM-R) has no newline token, so "\\n" only ends a
  reference chunk when "\\n" is a force token (then as ``[NEW0]``). Ours also cuts at
  newlines by default.
* ``Protection`` off on our side: our markdown/code/URL protection forces units (e.g. the
  "2." of a numbered list) that the reference scores like any word.

With these, on every chunk that both sides cut identically the labels agree on 100 % of
the words (no float ties occurred; one would be excused only if the word's probability is
within 1e-5 of the chunk threshold). The remaining words differ because of one reference
quirk, asserted where it happens: ``__chunk_context`` searches for a chunk end up to the
511th token, so a "." at that position yields a 511-token chunk; ``TokenClfDataset``
then truncates [CLS] + 511 + [SEP] to 512 and the chunk is scored *without* its [SEP].
Ours never exceeds 510 + 2, cuts at the previous ".", and from there on the two sides
feed the encoder different windows (overall agreement 91-93 % on such essays).

Two causes found here were fixed or pinned down: the per-word weights in the percentile
are the cl100k tokens of the word *as the encoder normalises it* (the reference weighs its
lowercased words; weighing the original case flipped ~0.1-0.3 % of the words), and
ratio budgets round the percentile differently for some ratios
(``test_target_tokens_path_is_exact_and_ratio_rounding_differs``).
"""

from __future__ import annotations

import difflib
import math
import re

import numpy as np
import pytest

pytestmark = pytest.mark.reference

# whole essays of 1.9k-2.9k cl100k tokens (4-6 encoder windows each); "apple" has a
# 511-token reference chunk. Rate 0.5 on two of them only, to keep the module quick.
CASES = [
    ("aord", 0.33),
    ("vb", 0.33),
    ("gba", 0.33),
    ("apple", 0.33),
    ("aord", 0.5),
    ("apple", 0.5),
]
FORCE = (".", "?", "!")
FORCE_NL = ("\n", ".", "?", "!")
WORD_SEP, LABEL_SEP = "\t\t|\t\t", " "
TIE = 1e-5  # the two sides' probabilities differ by ~1e-6 (padding to 512 vs none)


# -- fixtures: each model loads once per module -----------------------------------------


@pytest.fixture(scope="module")
def ref(minilm_classifier_dir):
    pytest.importorskip("llmlingua")
    import ctxcomp

    ctxcomp.get_tokenizer("cl100k_base")  # seeds tiktoken's cache: llmlingua loads it offline
    from llmlingua import PromptCompressor

    return PromptCompressor(
        model_name=str(minilm_classifier_dir), use_llmlingua2=True, device_map="cpu"
    )


def _ours(model_dir, **kw):
    import ctxcomp

    no_protection = ctxcomp.Protection(
        code=False, urls=False, json=False, markdown=False, keep_marker=None
    )
    return ctxcomp.TokenClassifierCompressor(
        str(model_dir), device="cpu", protection=no_protection, drop_consecutive=False, **kw
    )


@pytest.fixture(scope="module")
def ours(ref, minilm_classifier_dir):
    return _ours(
        minilm_classifier_dir, mode="per_chunk", force_tokens=FORCE, chunk_end_tokens=(".",)
    )


@pytest.fixture(scope="module")
def ours_nl(ref, minilm_classifier_dir):
    return _ours(minilm_classifier_dir, mode="per_chunk", force_tokens=FORCE_NL)


# -- helpers ----------------------------------------------------------------------------


def ref_run(ref, text: str, force_tokens, **budget):
    """(words, labels, result) of the reference's LLMLingua-2 path."""
    r = ref.compress_prompt(
        [text],
        force_tokens=list(force_tokens),
        drop_consecutive=False,
        return_word_label=True,
        **budget,
    )
    pairs = [p.rsplit(LABEL_SEP, 1) for p in r["fn_labeled_original_prompt"].split(WORD_SEP)]
    return [w for w, _ in pairs], np.array([int(lab) for _, lab in pairs]), r


def our_words(text: str, res) -> tuple[list[str], np.ndarray, np.ndarray]:
    sc = res.scores[0]
    words = [text[a:b] for a, b in zip(sc.starts, sc.ends)]
    probs = np.where(sc.forced, 1.0, sc.probs.astype(np.float64))
    return words, sc.kept.astype(int), probs


def align(ours_lower: list[str], ref_words: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs of words that correspond (identity when the lists are one-to-one)."""
    if ours_lower == ref_words:
        idx = np.arange(len(ref_words))
        return idx, idx
    sm = difflib.SequenceMatcher(a=ours_lower, b=ref_words, autojunk=False)
    ia, ib = [], []
    for tag, a0, a1, b0, b1 in sm.get_opcodes():
        if tag == "equal":
            ia.extend(range(a0, a1))
            ib.extend(range(b0, b1))
    print(f"  words not one-to-one: {len(ours_lower)} ours vs {len(ref_words)} reference")
    return np.array(ia, dtype=np.int64), np.array(ib, dtype=np.int64)


def percentile_q(rate: float) -> int:
    return int(100 * max(0.0, 1.0 - rate) + 1)


def chunk_bounds(ref, ours, text: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Encoder-token bounds of the reference's chunks and of ours, and the tokens."""
    chunks = ref._PromptCompressor__chunk_context(text, chunk_end_tokens={".", "\n"})
    ref_b = np.concatenate(([0], np.cumsum([len(ref.tokenizer.tokenize(c)) for c in chunks])))
    our_b = np.asarray(ours.analyzer.build_doc_tokens(text, ours.options).chunk_bounds)
    tokens = ref.tokenizer.tokenize(text)
    assert ref_b[-1] == our_b[-1] == len(tokens)
    return ref_b, our_b, tokens


def compare(ref, ours, text: str, rate: float, force_tokens) -> dict:
    """Label agreement, overall and on the chunks both sides cut identically."""
    res = ours.compress(text, ratio=rate)
    rw, rl, r = ref_run(ref, text, force_tokens, rate=rate)
    ow, ol, op = our_words(text, res)
    # same percentile on both sides: ours gets target/n, the reference the rate itself
    assert percentile_q(res.target_tokens / res.original_tokens) == percentile_q(rate)
    ia, _ = align([w.lower() for w in ow], rw)  # prints a report if not one-to-one
    assert ia.size == len(ow) == len(rw), "MiniLM words and our units should be one-to-one"
    # chunk of every word, on both sides (a BERT word starts at each non-"##" token)
    ref_b, our_b, tokens = chunk_bounds(ref, ours, text)
    word_start = np.flatnonzero([not t.startswith("##") for t in tokens])
    assert word_start.size == len(ow)
    our_chunk = np.searchsorted(our_b, word_start, side="right") - 1
    ref_chunk = np.searchsorted(ref_b, word_start, side="right") - 1
    same = np.isin(our_b[:-1], ref_b) & np.isin(our_b[1:], ref_b)  # per chunk of ours
    aligned = same[our_chunk]
    first_diff = None
    n = min(ref_b.size, our_b.size)
    diff_at = np.flatnonzero(ref_b[:n] != our_b[:n])
    if diff_at.size:
        first_diff = int(diff_at[0]) - 1  # the chunk whose end differs
    # mismatches on identically cut chunks: only float ties are excused
    mism = np.flatnonzero((ol != rl) & aligned)
    ties = []
    for i in mism:
        sel = np.flatnonzero(ref_chunk == ref_chunk[i])
        weights = [len(ours._reader.encode(rw[j])) for j in sel]
        thr = float(np.percentile(np.repeat(op[sel], weights), percentile_q(rate)))
        ties.append(abs(op[i] - thr) <= TIE)
        print(f"  mismatch {ow[i]!r}: ours {ol[i]} ref {rl[i]} p={op[i]:.8f} thr={thr:.8f}")
    return {
        "res": res,
        "ref": r,
        "n": len(ow),
        "agree": float((ol == rl).mean()),
        "aligned_words": int(aligned.sum()),
        "aligned_agree": float((ol == rl)[aligned].mean()) if aligned.any() else 1.0,
        "unexplained": int(len(ties) - sum(ties)),
        "ties": int(sum(ties)),
        "ref_lens": np.diff(ref_b),
        "our_lens": np.diff(our_b),
        "first_diff": first_diff,
        "tokens": tokens,
        "ref_b": ref_b,
    }


# -- parity -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "rate"), CASES)
def test_per_chunk_keeps_the_same_words(ref, ours, essays, name, rate):
    """Identically cut chunks: 100 % label agreement (float ties excused, none seen).

    Where the chunkings differ, the cause is asserted: the first differing reference
    chunk has 511 tokens ending in "." (scored without [SEP]). Observed agreement over all
    words: aord (0.33, 0.5), vb, gba: 100 %; apple 93.5 % (0.33) and 92.9 % (0.5), with
    100 % on the 965 words before its 511-token chunk. Earlier runs also gave 100 % on
    copy, founders and avg, and 92.6 / 91.6 % on love (two 511-token chunks).
    """
    c = compare(ref, ours, essays[name], rate, FORCE)
    print(
        f"{name} rate={rate}: {c['n']} words, agreement {c['agree']:.4%}, on identically "
        f"cut chunks {c['aligned_agree']:.4%} ({c['aligned_words']} words), ties {c['ties']}; "
        f"reference chunks {c['ref_lens'].tolist()}, ours {c['our_lens'].tolist()}"
    )
    assert c["unexplained"] == 0
    assert c["ties"] <= max(1, c["n"] // 1000)
    if c["first_diff"] is None:
        assert c["agree"] == 1.0 - c["ties"] / c["n"]
    else:
        k = c["first_diff"]
        assert c["ref_lens"][k] == 511, "chunkings diverge only after a 511-token chunk"
        assert c["tokens"][c["ref_b"][k + 1] - 1] == "."
        assert c["our_lens"][k] < 511
        assert c["agree"] >= 0.9


def test_ratio_and_target_paths_match_the_reference(ref, ours, essays):
    """A ratio budget hands the ratio itself to the per-chunk threshold, as the reference's
    ``rate=`` path does; a token target hands target / n, as its ``target_token=`` path does.
    0.34 is a ratio where those two rates give percentiles one apart
    (int(100 * (1 - r) + 1) with float rounding), so the test tells the paths apart, and
    each of ours matches its reference counterpart word for word."""
    text, rate = essays["founders"], 0.34
    res = ours.compress(text, ratio=rate)
    ow, ol, _ = our_words(text, res)
    rw_r, rl_r, _ = ref_run(ref, text, FORCE, rate=rate)
    assert [w.lower() for w in ow] == rw_r
    assert (ol == rl_r).all()
    res_t = ours.compress(text, target_tokens=res.target_tokens)
    _, ol_t, _ = our_words(text, res_t)
    rw_t, rl_t, _ = ref_run(ref, text, FORCE, target_token=res.target_tokens)
    assert rw_t == rw_r
    assert (ol_t == rl_t).all()
    assert percentile_q(rate) != percentile_q(res.target_tokens / res.original_tokens)
    assert not (ol == ol_t).all()  # the two budgets really select differently here


def test_newline_force_token_bounded(ref, ours_nl, essays):
    """With "\\n" as a force token (llmlingua's default set), agreement is bounded, not
    exact: the reference replaces every newline with an added [NEW0] token that the
    encoder sees (a freshly initialised embedding), so every chunk with a newline gets
    other probabilities, and the extra tokens move the chunk boundaries. Ours never
    feeds whitespace to the encoder. Both keep every newline (the reference as a forced
    word of weight 1). Observed agreement 86.7 % on "founders" at 0.33 (79.7-86.7 % on
    copy/founders at 0.33/0.5 while developing). On the same essay with newlines
    flattened to spaces the two sides agree exactly, isolating [NEW0] as the cause."""
    for name in ("founders",):
        text = essays[name]
        n_nl = text.count("\n")
        assert len(ref.tokenizer.tokenize(text.replace("\n", "[NEW0]"))) == (
            len(ref.tokenizer.tokenize(text)) + n_nl
        )
        for rate in (0.33,):
            res = ours_nl.compress(text, ratio=rate)
            rw, rl, _ = ref_run(ref, text, FORCE_NL, rate=rate)
            nl = np.array([w == "\n" for w in rw])
            assert nl.sum() == n_nl and rl[nl].all()
            ow, ol, _ = our_words(text, res)
            assert [w.lower() for w in ow] == [w for w, x in zip(rw, nl) if not x]
            agree = float((ol == rl[~nl]).mean())
            print(f"{name} rate={rate} with '\\n' forced: agreement {agree:.4%}")
            assert agree >= 0.75
        flat = re.sub(r"\s*\n\s*", " ", text)
        c = compare(ref, ours_nl, flat, 0.33, FORCE_NL)
        assert c["first_diff"] is None and c["unexplained"] == 0
        assert c["agree"] == 1.0 - c["ties"] / c["n"]


# -- differences by design --------------------------------------------------------------


@pytest.fixture(scope="module")
def ours_global(ref, minilm_classifier_dir):
    import ctxcomp

    return ctxcomp.TokenClassifierCompressor(str(minilm_classifier_dir), device="cpu")


def test_by_design_differences(ref, ours_global, essays):
    """What ours does differently on purpose (global mode, default options):

    * budget: ours holds the target exactly (<= target, and within one word of it); the
      reference's per-chunk percentiles miss ``target_token`` (founders: 358 -> 295,
      -17.6 %; copy -12.8 %, apple -8.9 % while developing);
    * no fused words: the reference rebuilds each chunk with convert_tokens_to_string
      and joins chunks with "", so the last word of one chunk and the first of the next
      fuse ("ideas.the" in "founders", "it.the" in "copy"); ours copies kept runs verbatim, separated by the
      whitespace that stood between them, so every output word occurs in the input;
    * case and newlines: ours keeps both; the reference outputs encoder tokens, so an
      uncased encoder lowercases the text, and newlines vanish unless "\\n" is forced.
    """
    name = "founders"
    text = essays[name]
    res = ours_global.compress(text, ratio=0.33)
    target = res.target_tokens
    assert target == math.floor(0.33 * res.original_tokens)
    assert res.compressed_tokens <= target
    sc = res.scores[0]
    reader = ours_global._reader
    dropped = [text[a:b] for a, b, k in zip(sc.starts, sc.ends, sc.kept) if not k]
    one_word = max(len(reader.encode(" " + w)) for w in dropped) + 1
    assert target - res.compressed_tokens <= one_word
    _, _, r = ref_run(ref, text, FORCE, target_token=target)
    miss = abs(r["compressed_tokens"] - target)
    print(
        f"{name}: target {target}, ours {res.compressed_tokens}, "
        f"reference {r['compressed_tokens']} (misses by {miss / target:.1%})"
    )
    assert miss > max(one_word, 0.05 * target)
    # fusion
    out = r["compressed_prompt"]
    fused = [p for p in out.split() if re.fullmatch(r"[a-z]+\.[a-z]+", p) and p not in text.lower()]
    assert all(p in text for p in res.text.split()), "ours never fuses words"
    print(f"{name}: reference fuses {fused[:5]}")
    assert fused, "the reference fuses words across its chunk joins"
    # case and newlines
    assert "\n" in res.text and "\n" not in out
    assert any(ch.isupper() for ch in res.text) and out == out.lower()
