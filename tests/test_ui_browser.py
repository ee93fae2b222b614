"""protect ui in a real browser: Playwright driving Debian's Chromium.

Starts ``python -m protect ui`` as the artist would, drops two pictures on the
page, protects them, checks the outputs, switches to Japanese and checks that
a request without the token is refused.  Skipped when Playwright or Chromium
is missing, unless ``PROTECT_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which
installs both), where that is a failure.  ``PROTECT_UI_SCREENSHOTS=DIR``
also saves the screenshots used in the README there.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from protect import io as pio

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
CHROMIUM = os.environ.get("PROTECT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _need(ok: bool, why: str) -> None:
    if not ok:
        if os.environ.get("PROTECT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required but {why}")
        pytest.skip(why)


@pytest.fixture
def page_server(tmp_path):
    _need(shutil.which(CHROMIUM) is not None or Path(CHROMIUM).is_file(), f"no Chromium at {CHROMIUM}")
    try:
        import playwright.sync_api  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as exc:
        _need(False, f"{exc.name} is not installed")
    out = tmp_path / "out"
    cfg = Path(os.environ["PROTECT_CONFIG_DIR"])  # the shared settings file pre-fills the page
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "config.toml").write_text('author = "Ann"\n', encoding="utf-8")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "protect", "ui", "--no-browser", "--port", "0", "--out", str(out),
                             "-j", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url, lines = None, []
    try:
        while time.perf_counter() - t0 < 60:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("protect ui: open "):
                url = line.split("open ", 1)[1].strip()
                break
        assert url is not None, "".join(lines)
        print(f"protect ui start-up: {time.perf_counter() - t0:.2f} s to the printed address")
        yield url, out, "".join(lines)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _drop(page, selector: str, paths: list[Path]) -> None:
    """Drop files on an element the way a browser does (a drop event carrying a DataTransfer)."""
    files = [{"name": p.name, "b64": base64.b64encode(p.read_bytes()).decode()} for p in paths]
    dt = page.evaluate_handle("""(files) => {
        const dt = new DataTransfer();
        for (const f of files) {
            const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
            dt.items.add(new File([bytes], f.name, {type: "image/png"}));
        }
        return dt;
    }""", files)
    page.dispatch_event(selector, "dragover", {"dataTransfer": dt})
    page.dispatch_event(selector, "drop", {"dataTransfer": dt})


def test_page_protects_dropped_files_in_english_and_japanese(page_server, tmp_path):
    from playwright.sync_api import sync_playwright

    url, out, log = page_server
    base = url.split("/?", 1)[0]
    shots = Path(os.environ.get("PROTECT_UI_SCREENSHOTS") or tmp_path)
    inputs = [SAMPLES / "comic_text.png", SAMPLES / "cel_flat_fills.png"]
    before = {p: p.read_bytes() for p in inputs}

    # without the token: refused, whatever the client
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(base + "/")
    assert refused.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(base + "/api/info?token=not-the-token")
    assert refused.value.code == 403

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            ctx = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
            page = ctx.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']")
            assert page.url == base + "/"  # the token was traded for the session cookie
            assert page.inner_text("#step-files h2") == "1. Choose your pictures"
            assert page.input_value("#author") == "Ann"

            _drop(page, "#dropzone", inputs)
            page.wait_for_selector("#file-count:has-text('2 picture(s) chosen')")
            page.click("#preview-button")
            page.wait_for_selector("#detail[src^='data:image/png']")
            page.click("button.zoom[data-zoom='2']")
            page.click("#protect-button")
            page.wait_for_selector("#run-status:has-text('Done: 2 protected')", timeout=120_000)
            assert page.locator("#results li.protected").count() == 2
            page.screenshot(path=str(shots / "ui_en.png"), full_page=True)

            written = sorted(out.rglob("*.png"))
            assert [w.name for w in written] == ["cel_flat_fills.png", "comic_text.png"]
            for src in inputs:
                assert src.read_bytes() == before[src]  # originals untouched
                prot = pio.read_image(out / src.name).frames[0].pixels
                orig = pio.read_image(src).frames[0].pixels
                assert prot.shape == orig.shape and not np.array_equal(prot, orig)

            page.select_option("#lang", "ja")
            assert page.get_attribute("html", "lang") == "ja"
            assert page.inner_text("#step-files h2") == "1. 画像を選ぶ"
            assert "保護しました" in page.inner_text("#results")
            page.click("button.view[data-view='diff10']")
            page.screenshot(path=str(shots / "ui_ja.png"), full_page=True)

            # a Japanese browser gets the Japanese page by itself; a fresh browser without the token is refused
            ja = browser.new_context(locale="ja-JP")
            jpage = ja.new_page()
            jpage.goto(url)
            jpage.wait_for_selector("body[data-ready='1']")
            assert jpage.inner_text("#step-run h2") == "5. 保護する"
            stranger = browser.new_context().new_page()
            assert stranger.goto(base + "/").status == 403
            assert stranger.goto(base + "/api/info").status == 403
            assert not errors, errors
            # the Stop button ends the server (the app's users have no terminal to press Ctrl+C in)
            page.click("#stop")
            page.wait_for_selector("#stopped:has-text('protect を終了しました')")
            for _ in range(100):
                try:
                    urllib.request.urlopen(base + "/", timeout=1)
                except urllib.error.HTTPError:
                    time.sleep(0.1)  # still answering (403): not gone yet
                except (urllib.error.URLError, ConnectionError, OSError):
                    break
            else:
                raise AssertionError("the server did not stop")
        finally:
            browser.close()
