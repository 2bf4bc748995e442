"""How a context is cut into chunks, each encoded into one block of ``N`` latent rows.

The budget (in latent rows) decides the chunk length: the shortest chunk length on a grid
(multiples of ``grid`` tokens, and the encoder's window) whose chunks need no more rows
than the budget — more rows per token where the budget allows it. The grid makes repeated
requests at one budget cut the same chunks (so the per-chunk cache hits). Each document
is cut separately into equal chunks (no chunk spans two documents). Light: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ...errors import BudgetError, InputError


def rows_needed(lengths: Sequence[int], chunk: int, num_latents: int) -> int:
    """Latent rows for documents of ``lengths`` tokens cut into chunks of <= ``chunk``."""
    return num_latents * sum(math.ceil(n / chunk) for n in lengths if n > 0)


def chunk_length(
    lengths: Sequence[int],
    budget_rows: int,
    *,
    num_latents: int,
    max_chunk: int,
    min_chunk: int | None = None,
    grid: int = 16,
) -> int:
    """The chunk length for a budget of ``budget_rows`` latent rows.

    Raises :class:`~ctxcomp.BudgetError` when even chunks of the encoder's window
    (``max_chunk``) need more rows than the budget: C3 cannot drop content to fit."""
    if num_latents < 1 or max_chunk < 1 or grid < 1:
        raise InputError("num_latents, max_chunk and grid must be positive")
    if any(n < 0 for n in lengths):
        raise InputError("document lengths cannot be negative")
    lo = max(1, min(min_chunk if min_chunk is not None else num_latents, max_chunk))
    need = rows_needed(lengths, max_chunk, num_latents)
    if need > budget_rows:
        total = sum(lengths)
        raise BudgetError(
            f"C3 writes {num_latents} latent rows per chunk of at most {max_chunk} tokens: "
            f"these {total} tokens need at least {need} rows, the budget allows {budget_rows} "
            f"(the highest ratio this model reaches is {num_latents}/{max_chunk})"
        )
    cands = sorted({c for c in range(grid, max_chunk, grid) if c >= lo} | {max_chunk})
    a, b = 0, len(cands) - 1  # rows_needed falls as the chunk grows: bisect the first fit
    while a < b:
        m = (a + b) // 2
        if rows_needed(lengths, cands[m], num_latents) <= budget_rows:
            b = m
        else:
            a = m + 1
    return cands[a]


def split(n_tokens: int, chunk: int) -> list[tuple[int, int]]:
    """Token spans [a, b) cutting ``n_tokens`` into ``ceil(n/chunk)`` near-equal chunks."""
    if n_tokens <= 0:
        return []
    k = math.ceil(n_tokens / chunk)
    bounds = [round(i * n_tokens / k) for i in range(k + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(k)]
