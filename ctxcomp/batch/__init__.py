"""Corpus-scale batch compression on Ray Data (``ctxcomp batch``; ``pip install 'ctxcomp[batch]'``).

>>> from ctxcomp.batch import Fields, RunOptions, run_batch
>>> summary = run_batch("chunks.jsonl", "compressed.parquet", ratio=0.33)  # doctest: +SKIP
>>> summary.compressed, summary.rejected, summary.rows_per_second  # doctest: +SKIP

Rows are read from JSONL or Parquet (id, text and optional question fields; every other
field is carried through), compressed by a pool of Ray actors (each loads the model once),
committed exactly once, and merged into the output; bad rows go to a rejects file. A re-run
skips ids already done. See docs/batch.md.

Importing this package is light: pyarrow and ray load when a run starts.
"""

from .engine import run_batch
from .options import RunOptions
from .report import BatchSummary
from .schema import RESULT_COLUMNS, Fields, Limits, Reject

__all__ = [
    "RESULT_COLUMNS",
    "BatchSummary",
    "Fields",
    "Limits",
    "Reject",
    "RunOptions",
    "run_batch",
]
