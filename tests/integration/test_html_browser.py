"""The --html page rendered by a real headless Chromium: every word shown, kept or dropped."""

import os
import re
import shutil
import subprocess

import pytest

from ctxcomp.text.html_view import render_html

pytestmark = pytest.mark.browser


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def _flags(tmp_path):
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]


def test_html_view_in_headless_chromium(tmp_path, minilm_compressor, essays):
    exe = _chromium()
    if exe is None:
        if os.environ.get("CTXCOMP_REQUIRE_SYSTEM_TOOLS"):
            pytest.fail(
                "chromium is required here (CTXCOMP_REQUIRE_SYSTEM_TOOLS is set) but not installed"
            )
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    text = essays["avg"][:6000] + "\n\nA <b>tag</b> & an ampersand stay literal."
    r = minilm_compressor.compress(text, ratio=0.4)
    page = tmp_path / "view.html"
    page.write_text(render_html(r, [text], title="test <view>"), encoding="utf-8")
    dom = subprocess.run(
        [exe, *_flags(tmp_path), "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    sc = r.scores[0]
    kept, dropped = int(sc.kept.sum()), int((~sc.kept).sum())
    # the page's script ran in the browser and counted the rendered words
    m = re.search(r'<body[^>]*data-kept="(\d+)"[^>]*data-dropped="(\d+)"[^>]*data-ready="1"', dom)
    assert m, dom[:500]
    assert (int(m.group(1)), int(m.group(2))) == (kept, dropped)
    assert f"{kept} words kept, {dropped} dropped" in dom
    assert "<b>" not in dom  # the input's markup is escaped, never injected
    # the visible text of the page is the whole input, in order
    body_text = re.sub(
        r"<[^>]+>", "", re.search(r"<div class=\"doc\"[^>]*>(.*?)</div>", dom, re.S).group(1)
    )
    import html as _h

    assert _h.unescape(body_text) == text
    shot = tmp_path / "shot.png"
    subprocess.run(
        [exe, *_flags(tmp_path), f"--screenshot={shot}", "--window-size=1200,900", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 10_000
