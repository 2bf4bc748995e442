"""Labelled token windows: word labels -> encoder token windows, batches, a data digest."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from ..core.fingerprint import digest
from ..errors import InputError
from .data import WordExample

IGNORE = -100  # label of special tokens (no loss)

Window = tuple[np.ndarray, np.ndarray]  # (token ids with specials, labels)


def encode(examples: Sequence[WordExample], tokenizer: Any, max_len: int) -> list[Window]:
    """Token windows (ids with special tokens, labels with -100 on specials) of <= max_len."""
    with_sp = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    i = with_sp.index(without[0])
    pre, suf = list(with_sp[:i]), list(with_sp[i + len(without) :])
    room = max_len - len(pre) - len(suf)
    if room < 8:
        raise InputError(f"max_len {max_len} is too short")
    out = []
    for ex in examples:
        enc = tokenizer(ex.words, is_split_into_words=True, add_special_tokens=False, verbose=False)
        ids = enc["input_ids"]
        wids = enc.word_ids()
        labs = [IGNORE if w is None else ex.labels[w] for w in wids]
        s = 0
        while s < len(ids):
            e = min(len(ids), s + room)
            if e < len(ids):  # end on a word boundary when possible
                b = e
                while b > s + room // 2 and wids[b] == wids[b - 1]:
                    b -= 1
                e = b
            out.append(
                (
                    np.array(pre + ids[s:e] + suf, np.int64),
                    np.array([IGNORE] * len(pre) + labs[s:e] + [IGNORE] * len(suf), np.int64),
                )
            )
            s = e
    return out


def collate(batch: list[Window], pad_id: int) -> tuple[Any, Any, Any]:
    """(input ids, attention mask, labels) torch tensors of a batch, right-padded."""
    import torch

    n = max(len(x) for x, _ in batch)
    ids = np.full((len(batch), n), pad_id, np.int64)
    lab = np.full((len(batch), n), IGNORE, np.int64)
    mask = np.zeros((len(batch), n), np.int64)
    for r, (x, y) in enumerate(batch):
        ids[r, : len(x)] = x
        lab[r, : len(y)] = y
        mask[r, : len(x)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(lab)


def windows_digest(windows: list[Window], extra: str) -> str:
    """Digest of labelled windows and ``extra`` (what else their features depend on)."""
    parts = (b for x, y in windows for b in (x.tobytes(), y.tobytes()))
    return digest(chain([extra.encode()], parts))
