"""The page in a real headless Chromium (Playwright): load, click an example, Generate, see the outputs.

Uses the system's Chromium (Debian's `chromium` package, or $OPEN4M_CHROMIUM) through Playwright's
`executable_path`; Playwright never downloads a browser. Every request that leaves the server is
blocked and recorded, so the test also proves the page works offline. The screenshot goes to the
test's tmp dir, and to $OPEN4M_SERVE_SCREENSHOT when set (that is how docs/img/serve.png is made:
`OPEN4M_SERVE_SCREENSHOT=docs/img/serve.png python -m pytest tests/serve/test_browser.py`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the serve page needs the demo extra: pip install 'open4m[demo]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright: pip install playwright")
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

CHROMIUM = os.environ.get("OPEN4M_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    pytest.skip("no Chromium installed (apt-get install chromium, or set OPEN4M_CHROMIUM)", allow_module_level=True)

LAPTOP = {"width": 1366, "height": 768}


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def test_example_generate_in_the_browser(server, browser, tmp_path):
    url, _ = server
    page = browser.new_page(viewport=LAPTOP)
    errors, outside = [], []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda err: errors.append(str(err)))

    def only_the_server(route):
        if route.request.url.startswith(url.rstrip("/")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_server)
    page.goto(url, wait_until="load")
    expect = sync_api.expect
    expect(page.locator("#generate")).to_be_visible(timeout=30_000)
    expect(page).to_have_title("open4m · any-to-any generation")

    page.locator("#examples button img").nth(2).click()  # the third example scene
    expect(page.locator("#status")).to_contain_text("example scene 2", timeout=30_000)
    picture = page.locator("#rgb-input img")  # two clicks on the image draw a box
    box = picture.bounding_box()
    picture.click(position={"x": box["width"] * 0.25, "y": box["height"] * 0.4})
    expect(page.locator("#status")).to_contain_text("click the opposite corner", timeout=30_000)
    picture.click(position={"x": box["width"] * 0.75, "y": box["height"] * 0.6})
    expect(page.locator("#status")).to_contain_text("added", timeout=30_000)
    expect(page.locator("#boxes")).to_contain_text("object", timeout=30_000)  # the new row (scene 2 has no "object")

    page.locator("#generate").click()
    expect(page.locator("#status")).to_contain_text("Generated", timeout=120_000)
    shown = page.locator("#outputs img")
    expect(shown).to_have_count(5, timeout=30_000)  # depth, normals, segmentation, edges, boxes (+ caption as text)
    for i in range(5):
        assert shown.nth(i).evaluate("img => img.complete && img.naturalWidth") == 256
    assert "caption:" in page.locator("#texts textarea").input_value()

    shot = tmp_path / "serve.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("OPEN4M_SERVE_SCREENSHOT"):
        target = Path(os.environ["OPEN4M_SERVE_SCREENSHOT"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
    assert not outside, f"the page fetched from outside the server: {outside}"
    assert not errors, f"errors in the browser console: {errors}"
    page.close()
