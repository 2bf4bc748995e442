"""The config builder without models: keys, options, deprecated spellings, cache objects,
methods and rankers by name."""

from __future__ import annotations

import json
import warnings
from typing import ClassVar

import pytest

import ctxcomp
from ctxcomp.cache import MemoryStore, SegmentCache
from ctxcomp.config import PipelineConfig, create_method
from ctxcomp.core import compressors


class Recorder:
    """A method factory that records what the builder passes it."""

    kind = "latent"
    seen: ClassVar[dict[str, object]] = {}

    def __init__(self, *, cache: object = None, reader: str = "x", depth: int = 1) -> None:
        Recorder.seen = {"cache": cache, "reader": reader, "depth": depth}


compressors.register("recorder-test", Recorder, replace=True)


def test_options_are_the_one_way_and_old_keys_fold_into_them() -> None:
    c = PipelineConfig(options={"mode": "per_chunk", "keep_digits": True})
    assert c.options == {"mode": "per_chunk", "keep_digits": True}
    with pytest.warns(DeprecationWarning, match=r"mode.*options=\{\.\.\.\}"):
        old = PipelineConfig(mode="per_chunk", extra={"keep_digits": True})
    assert old.options == c.options and old == c
    with pytest.warns(DeprecationWarning), pytest.raises(ctxcomp.InputError, match="twice"):
        PipelineConfig(mode="global", options={"mode": "per_chunk"})
    d = c.to_dict()
    assert "mode" not in d and d["options"] == {"mode": "per_chunk", "keep_digits": True}
    assert PipelineConfig.from_mapping(json.loads(json.dumps(d))) == c
    merged = c.merged({"reader": "o200k_base", "options": {"keep_digits": False}})
    assert merged.reader == "o200k_base"
    assert merged.options == {"mode": "per_chunk", "keep_digits": False}


def test_toml_options_table(tmp_path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[ctxcomp]\nreader = "o200k_base"\n[ctxcomp.options]\nmode = "per_chunk"\n')
    c = PipelineConfig.from_file(p)
    assert c.reader == "o200k_base" and c.options == {"mode": "per_chunk"}


def test_bad_keys_named() -> None:
    with pytest.raises(ctxcomp.InputError, match=r"unknown pipeline config key\(s\) \['modle'\]"):
        PipelineConfig.from_mapping({"modle": "x"})
    with pytest.raises(ctxcomp.InputError, match="ranker must be one of"):
        PipelineConfig(ranker="bm25")
    with pytest.raises(ctxcomp.InputError, match="method must be one of"):
        PipelineConfig(method="nope")
    with pytest.raises(ctxcomp.InputError, match="'options' must be a mapping"):
        PipelineConfig(options=["mode"])  # type: ignore[arg-type]
    with pytest.raises(ctxcomp.InputError, match="force_tokens must be a list of strings"):
        PipelineConfig(options={"force_tokens": "."})
    with pytest.raises(
        ctxcomp.InputError,
        match="'cache' must be a string or a SegmentCache or a cache Store or null, got 5",
    ):
        PipelineConfig(cache=5)  # type: ignore[arg-type]


def test_method_gets_the_settings_it_takes() -> None:
    store = MemoryStore()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = create_method(PipelineConfig(method="recorder-test", options={"depth": 3}))
    assert isinstance(m, Recorder)
    assert Recorder.seen == {"cache": None, "reader": "cl100k_base", "depth": 3}
    create_method(PipelineConfig(method="recorder-test", cache=store))  # a cache object
    cache = Recorder.seen["cache"]
    assert isinstance(cache, SegmentCache) and cache.store is store
    with pytest.raises(ctxcomp.InputError, match="takes no 'device'"):
        create_method(PipelineConfig(method="recorder-test", device="cpu"))
    with pytest.raises(ctxcomp.InputError, match="cache_key goes with a cache path"):
        create_method(PipelineConfig(method="recorder-test", cache=store, cache_key="k"))
    with pytest.raises(ctxcomp.InputError, match=r"no option\(s\) \['width'\]; known: .*'depth'"):
        create_method(PipelineConfig(method="recorder-test", options={"width": 3}))
    # not a text method: no coarse stage unless asked for, and then an error
    assert isinstance(ctxcomp.build_pipeline(method="recorder-test"), Recorder)
    with pytest.raises(ctxcomp.InputError, match="in front of a text method"):
        ctxcomp.build_pipeline(method="recorder-test", coarse=True)


def test_registries_list_the_builtins() -> None:
    from ctxcomp.core import rankers

    assert "token-classifier" in compressors
    assert {"bi-encoder", "cross-encoder", "lm"} <= set(rankers.names())


def test_backends_by_name_in_the_config_and_the_cli() -> None:
    """Backend names are checked through the registry before any model loads: the config
    builder and the CLI give one error naming the registered backends."""
    from typer.testing import CliRunner

    from ctxcomp.cli import app
    from ctxcomp.core import backends

    builtin = {"torch", "torch-bf16", "torch-int8", "onnx", "onnx-int8", "auto"}
    assert builtin <= set(backends.names())
    assert PipelineConfig(backend="onnx").backend == "onnx"
    assert PipelineConfig().backend is None  # the model's own
    known = r"known: auto, .*onnx, onnx-int8, .*torch, torch-bf16, torch-int8"
    with pytest.raises(ctxcomp.InputError, match=r"unknown backend 'nope'; " + known):
        PipelineConfig(backend="nope")
    res = CliRunner().invoke(
        app, ["compress", "-", "--ratio", "0.5", "--backend", "nope"], input="some text"
    )
    assert res.exit_code == 2
    assert "unknown backend 'nope'; known: auto" in " ".join(res.output.split())
