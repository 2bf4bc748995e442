"""The global budget search: the best units that fit the target, counted exactly.

``select_global`` ranks a table's selectable units and keeps the longest prefix of that
ranking whose rendered text holds at most the target in reader tokens (exact counts of
rendered probes, guided by a calibrated estimate). Two refinements:

* **Fill.** A unit too long for what is left of the budget (a 3,000-character DNA line, a
  long URL, a protected block) does not stop the search: it is skipped and the next-ranked
  units that fit are kept instead, round after round, until less than
  ``FILL_MIN_SLACK`` tokens are left or nothing that is left fits.
* **Overflow.** When what must be kept (force tokens, protected spans) alone exceeds the
  budget, ``on_overflow="error"`` raises :class:`~ctxcomp.errors.BudgetError`, and the
  default ``"degrade"`` turns each protected span into one droppable unit (kept whole or
  dropped whole, ranked by its mean selection score, which includes any question relevance
  a coarse stage added) and, if the force tokens alone still do not fit, lets each force
  token follow its preceding word (kept only after a kept word, as the budget allows). Every
  such decision is reported in the returned notes.

Units are ranked individually or as groups (a protected span in overflow); a group's units
sit next to each other in the ranking and the search only cuts between groups.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import BudgetError
from .selection import Rendered, UnitTable, render, unit_costs, with_spans
from .tokens import ReaderTokenizer

OVERFLOW_POLICIES = ("degrade", "error")
# the budget counts as filled when fewer tokens than this are left (a word or two): below it,
# skipping the next-ranked unit for a lower-ranked one buys nothing a reader would notice
FILL_MIN_SLACK = 8
MAX_FILL_ROUNDS = 8
_LISTED = 5  # dropped protected spans named in a note


@dataclass
class Selection:
    rendered: Rendered
    count: int  # exact reader tokens of the rendered text
    notes: tuple[str, ...] = ()


def select_global(
    table: UnitTable,
    target: int,
    reader: ReaderTokenizer,
    joined: str,
    token_starts: np.ndarray | None = None,
    *,
    on_overflow: str = "degrade",
) -> Selection:
    """Keep forced units plus the best others so the text has <= target reader tokens."""
    if on_overflow not in OVERFLOW_POLICIES:
        raise ValueError(f"on_overflow must be one of {OVERFLOW_POLICIES}, got {on_overflow!r}")
    make_counter = getattr(reader, "counter", None)
    count = make_counter() if make_counter is not None else reader.count
    search = _Search(table, target, unit_costs(table, reader, joined, token_starts), count)
    base = table.forced & ~table.excluded
    order = ranking(table, table.probs, base)
    got = search.run(base, order, np.arange(order.size + 1))
    if got is not None:
        return Selection(with_spans(table, got[0]), got[1])
    must = search.count_of(base)
    if on_overflow == "error":
        raise BudgetError(
            f"the budget of {target} tokens is smaller than what must be kept: force tokens "
            f"and protected spans alone take {must} tokens; raise the budget, or pass fewer "
            "force_tokens / a narrower Protection (or on_overflow='degrade')"
        )
    return _degrade(table, search, must)


def ranking(table: UnitTable, score: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Selectable units outside ``base``, best first (score, then position: deterministic)."""
    cand = np.flatnonzero(~base & ~table.excluded)
    return cand[np.lexsort((cand, -score[cand]))]


def _cuts(order: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Prefix lengths of ``order`` that do not cut a group (-1: a unit of its own)."""
    g = group[order]
    ok = np.ones(order.size + 1, dtype=bool)
    ok[1:-1] = (g[1:] < 0) | (g[1:] != g[:-1])
    return np.flatnonzero(ok)


class _Search:
    """Exact-count searches over prefixes of rankings, for one table and target."""

    def __init__(
        self, table: UnitTable, target: int, cost: np.ndarray, count: Callable[[str], int]
    ) -> None:
        self.table = table
        self.target = target
        self.cost = cost
        self.count = count
        self.per_run = 0.2  # drift per kept run; ~0.2 tokens for cl100k on prose, calibrated

    def count_of(self, mask: np.ndarray) -> int:
        return self.count(render(self.table, mask, spans_too=False).text)

    def run(
        self, base: np.ndarray, order: np.ndarray, cuts: np.ndarray
    ) -> tuple[Rendered, int] | None:
        """The longest fitting prefix of ``order`` (cut only at ``cuts``) over ``base``, then
        filled past units too long for what is left; None when ``base`` alone does not fit."""
        found = self._fit(base, order, cuts, -1, cuts.size, None)
        if found is None:
            return None
        j, r, c = found
        for _ in range(MAX_FILL_ROUNDS):
            slack = self.target - c
            if slack < FILL_MIN_SLACK or j == cuts.size - 1:
                break
            # items after the blocker (the item at j, which did not fit), by estimate
            cum = np.concatenate(([0], np.cumsum(self.cost[order])))
            est = np.diff(cum[cuts[j:]]) + max(self.per_run, 0.0)
            take = _greedy(est[1:], slack) + 1
            if take.size == 0:
                break
            k = int(cuts[j])
            size = np.diff(cuts[j:])
            first = cuts[j:-1] - k  # item starts, relative to k
            moved = np.zeros(order.size - k, dtype=bool)
            moved[np.repeat(first[take], size[take]) + _ramp(size[take])] = True
            rest = order[k:]
            order = np.concatenate((order[:k], rest[moved], rest[~moved]))
            kept_sizes = size[take]
            other_sizes = np.delete(size, take)
            cuts = np.concatenate(
                (
                    cuts[: j + 1],
                    k + np.cumsum(kept_sizes),
                    k + kept_sizes.sum() + np.cumsum(other_sizes),
                )
            )
            found = self._fit(base, order, cuts, j, j + take.size + 1, (r, c))
            assert found is not None  # j fits
            j, r, c = found
        return r, c

    def _fit(
        self,
        base: np.ndarray,
        order: np.ndarray,
        cuts: np.ndarray,
        lo: int,
        hi: int,
        at_lo: tuple[Rendered, int] | None,
    ) -> tuple[int, Rendered, int] | None:
        """Largest j in [lo, hi) whose prefix ``order[:cuts[j]]`` fits (``lo`` is known to fit
        with rendering ``at_lo``; -1: nothing known), with its rendering and count."""
        table, target = self.table, self.target
        cost = self.cost
        cum = np.concatenate(([0], np.cumsum(cost[order])))  # cum[k]: cost of the top k
        base_cost = int(cost[base].sum())
        memo: dict[int, tuple[Rendered, int]] = {}
        if at_lo is not None:
            memo[lo] = at_lo

        def at(j: int) -> tuple[Rendered, int]:
            if j not in memo:
                m = base.copy()
                m[order[: cuts[j]]] = True
                r = render(table, m, spans_too=False)
                memo[j] = (r, self.count(r.text))
            return memo[j]

        # Kept runs at each k (each run boundary costs the reader extra tokens: a separator
        # that does not merge with its neighbours as it did in the original text). Adding the
        # k-th ranked unit starts a run (+1), extends one (0) or joins two (-1), depending on
        # whether its neighbours were kept before it: base ones always, ranked ones if ranked
        # higher. So every k's count is one cumulative sum.
        kmax = order.size
        rank = np.full(table.n + 2, kmax + 1, dtype=np.int64)  # padded: rank[u + 1] is unit u's
        rank[1:-1][base] = -1
        rank[order + 1] = np.arange(kmax)
        pos = np.arange(kmax)
        delta = 1 - (rank[order] < pos).astype(np.int64) - (rank[order + 2] < pos)
        run_count = np.concatenate(
            ([int(np.count_nonzero(base[1:] & ~base[:-1])) + int(base[:1].sum())], delta)
        ).cumsum()

        def est(j: int, per_run: float) -> float:
            k = int(cuts[j])
            return base_cost + float(cum[k]) + per_run * float(run_count[k])

        def guess(per_run: float, a: int, b: int) -> int:
            """Largest j in (a, b) whose estimate fits (a + 1 when none does)."""
            a, b = a + 1, b - 1
            while a < b:
                mid = (a + b + 1) // 2
                # estimates are fractional, counts whole: an estimate below target + 1 may fit
                if est(mid, per_run) < target + 0.95:
                    a = mid
                else:
                    b = mid - 1
            return a

        # lo: largest j known to fit; hi: smallest j known not to (or the bound). The estimate
        # is corrected by each exact count; a few probes, then bisection of what is left.
        per_run = self.per_run
        top = cuts.size - 1
        if hi - lo > 1:
            j = guess(per_run, lo, hi)
            for _ in range(12):
                _, c = at(j)
                if c <= target:
                    lo = j
                else:
                    hi = j
                if hi == lo + 1 or lo == top or hi == 0:
                    break
                n_runs = int(run_count[cuts[j]])
                if n_runs:
                    per_run = (c - base_cost - float(cum[cuts[j]])) / n_runs
                nj = guess(per_run, lo, hi)
                if nj == j:
                    nj = j + 1 if c <= target else j - 1
                j = min(max(nj, lo + 1), hi - 1)
            while hi - lo > 1 and lo < top:  # bisect whatever the estimates left open
                mid = (lo + hi) // 2
                if at(mid)[1] <= target:
                    lo = mid
                else:
                    hi = mid
        self.per_run = per_run
        if lo < 0:
            return None
        r, c = at(lo)
        return lo, r, c


def _ramp(sizes: np.ndarray) -> np.ndarray:
    """0..size-1 for each size, concatenated."""
    total = int(sizes.sum())
    return np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def _greedy(est: np.ndarray, budget: float, max_steps: int = 64) -> np.ndarray:
    """Indices a greedy fill keeps: in order, each item whose estimate fits what is left."""
    taken: list[np.ndarray] = []
    pos, left = 0, float(budget)
    for _ in range(max_steps):
        ok = np.flatnonzero(est[pos:] <= left) + pos
        if ok.size == 0:
            break
        cs = np.cumsum(est[ok])
        m = int(np.searchsorted(cs, left, side="right"))  # >= 1: ok[0] fits
        taken.append(ok[:m])
        left -= float(cs[m - 1])
        if m == ok.size:
            break
        pos = int(ok[m]) + 1  # ok[m] fit before, not after the ones just taken: skipped
    return np.concatenate(taken) if taken else np.zeros(0, dtype=np.int64)


# -- overflow ---------------------------------------------------------------------------


def _degrade(table: UnitTable, search: _Search, must: int) -> Selection:
    """Fit a budget smaller than the forced and protected content (see the module doc)."""
    target = search.target
    group = table.span if table.span is not None else _runs(table.protected)
    group = np.where(table.protected & ~table.excluded, group, -1)
    score = table.probs.astype(np.float64)
    g = group >= 0
    if g.any():  # a span's units share its mean score, so they sit together in the ranking
        ids, inv = np.unique(group[g], return_inverse=True)
        mean = np.bincount(inv, weights=score[g]) / np.bincount(inv)
        score[g] = mean[inv]
    else:
        ids = np.zeros(0, dtype=np.int64)
    base = table.forced & ~table.protected & ~table.excluded
    punct = table.force_code >= 0
    notes = []
    prot_note = ids.size > 0
    got = None
    if prot_note:  # without protected spans this is the search that just failed
        order = ranking(table, score, base)
        got = search.run(base, order, _cuts(order, group))
    if got is None:  # force tokens alone overflow: each follows its preceding word
        force_only = search.count_of(base)
        base = np.zeros(table.n, dtype=bool)
        score = _after_previous_word(table, score, punct & ~table.protected)
        order = ranking(table, score, base)
        got = search.run(base, order, _cuts(order, group))
        assert got is not None  # an empty selection always fits
        kept = got[0].kept
        fp = punct & ~table.protected & ~table.excluded
        notes.append(
            f"force tokens alone take {force_only} tokens, more than the budget of {target}: "
            f"each force token was kept only after its kept preceding word, as the budget "
            f"allowed ({int((kept & fp).sum())} of {int(fp.sum())} kept)"
        )
    r, c = got
    head = (
        f"budget overflow: force tokens and protected spans alone take {must} tokens, more "
        f"than the budget of {target} (on_overflow='degrade')"
    )
    if prot_note:
        notes.insert(0, _span_note(table, group, ids, r.kept))
    return Selection(with_spans(table, r), c, (head, *notes))


def _span_note(table: UnitTable, group: np.ndarray, ids: np.ndarray, kept: np.ndarray) -> str:
    units = np.flatnonzero(group >= 0)
    inv = np.searchsorted(ids, group[units])
    any_kept = np.bincount(inv, weights=kept[units], minlength=ids.size) > 0
    first = np.full(ids.size, table.n)
    np.minimum.at(first, inv, units)
    last = np.zeros(ids.size, dtype=np.int64)
    np.maximum.at(last, inv, units)
    dropped = np.flatnonzero(~any_kept)
    listed = ", ".join(
        f"document {d} [{a}:{b}] {_preview(table.texts[d][a:b])}"
        for d, a, b in zip(
            table.doc[first[dropped[:_LISTED]]].tolist(),
            table.starts[first[dropped[:_LISTED]]].tolist(),
            table.ends[last[dropped[:_LISTED]]].tolist(),
        )
    )
    more = f" and {dropped.size - _LISTED} more" if dropped.size > _LISTED else ""
    what = f": {listed}{more}" if dropped.size else ""
    return (
        "protected spans became droppable units, each kept or dropped whole by its mean "
        "selection score (keep probability plus any question relevance): "
        f"kept {ids.size - dropped.size} of {ids.size}, dropped {dropped.size}{what}"
    )


def _preview(s: str, n: int = 32) -> str:
    s = " ".join(s.split())
    return repr(s if len(s) <= n else s[: n - 1] + "…")


def _runs(mask: np.ndarray) -> np.ndarray:
    """An id per run of consecutive True entries (-1 elsewhere)."""
    start = mask & ~np.concatenate(([False], mask[:-1]))
    return np.where(mask, np.cumsum(start) - 1, -1)


def _after_previous_word(table: UnitTable, score: np.ndarray, follower: np.ndarray) -> np.ndarray:
    """``score`` with each ``follower`` unit given the score of the nearest preceding
    non-follower unit of its document (its own score when there is none), so it ranks right
    after that unit."""
    idx = np.arange(table.n)
    prev = np.maximum.accumulate(np.where(follower, -1, idx))
    ok = follower & (prev >= 0)
    ok[ok] = table.doc[prev[ok]] == table.doc[ok]
    out = score.copy()
    out[ok] = score[prev[ok]]
    return out
