"""The frames player and the pictures in a real browser: Debian's chromium driven by Playwright.

Needs `pip install playwright` (in the dev extra) and a Chromium at /usr/bin/chromium (Debian:
`apt-get install chromium`; Playwright's own browser download is not used). Skipped, with the
reason, when either is missing.
"""
from __future__ import annotations

import os
import shutil

import pytest

from tinygrad_scalar import Value
from tinygrad_scalar.teach import backprop_frames
from tinygrad_scalar.viz import draw_dot, show, show_backward

CHROMIUM = os.environ.get("TGS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (pip install playwright)")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)",
                allow_module_level=True)
if shutil.which("dot") is None:
    pytest.skip("Graphviz's dot is not installed (make test installs it)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def lecture_e():
    a, b = Value(2.0, "a"), Value(1.0, "b")
    c = a + b
    d = b + 1
    e = c * d
    c.label, d.label, e.label = "c", "d", "e"
    return e


def open_page(browser, tmp_path, body: str, javascript: bool = True, width: int = 1200):
    path = tmp_path / "page.html"
    path.write_text(f"<!doctype html><html><body style='margin:8px'>{body}</body></html>")
    ctx = browser.new_context(java_script_enabled=javascript,
                              viewport={"width": width, "height": 900})
    page = ctx.new_page()
    errors: list = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    return page, errors


def grads_shown(page) -> dict:
    """{DOT node name: its 'grad ...' text} as the browser shows it now."""
    return page.evaluate("""() => {
      const out = {};
      document.querySelectorAll(".tgs-stage g.node").forEach(g => {
        const t = g.querySelector("title").textContent;
        g.querySelectorAll("text").forEach(x => {
          if (x.textContent.startsWith("grad ")) out[t] = x.textContent; });
      });
      return out; }""")


def red_nodes(page) -> list:
    return page.evaluate("""() => Array.from(document.querySelectorAll(".tgs-stage g.node"))
      .filter(g => Array.from(g.querySelectorAll("polygon,path"))
                     .some(s => s.getAttribute("stroke") === "#dc2626"))
      .map(g => g.querySelector("title").textContent)""")


def expected(frames, k: int) -> dict:
    return {name: text for name, (text, _) in frames[k].parts.nodes.items() if text}


def test_player_steps_plays_and_slides(browser, tmp_path):
    frames = backprop_frames(lecture_e(), interval_ms=50)
    caps = frames.captions()
    page, errors = open_page(browser, tmp_path, frames.to_html())
    assert page.is_visible(".tgs-next") and not page.query_selector(".tgs-fallback")
    assert page.inner_text(".tgs-cap") == caps[0]
    assert page.inner_text(".tgs-label") == "step 1 / 3"
    assert grads_shown(page) == expected(frames, 0)
    assert red_nodes(page) == ["n5"]                      # e is being processed
    page.click(".tgs-next")
    assert page.inner_text(".tgs-cap") == caps[1] and page.inner_text(".tgs-label") == "step 2 / 3"
    assert grads_shown(page) == expected(frames, 1)
    assert grads_shown(page)["n1"] == "grad 3"            # b got 3 from d
    assert red_nodes(page) == ["n4"]                      # only d now: e is back to normal
    page.click(".tgs-next")
    page.click(".tgs-next")                               # stops at the last frame
    assert page.inner_text(".tgs-label") == "step 3 / 3"
    assert grads_shown(page) == expected(frames, 2)
    page.click(".tgs-prev")
    assert page.inner_text(".tgs-cap") == caps[1]
    assert grads_shown(page) == expected(frames, 1)       # going back undoes b's second +=
    page.fill(".tgs-slider", "1")                         # the slider jumps
    assert page.inner_text(".tgs-cap") == caps[0] and grads_shown(page) == expected(frames, 0)
    page.click(".tgs-play")
    assert page.inner_text(".tgs-play") == "pause"
    page.wait_for_function("document.querySelector('.tgs-play').textContent === 'play'",
                           timeout=10_000)               # played to the end and stopped
    assert page.inner_text(".tgs-label") == "step 3 / 3" and page.inner_text(".tgs-cap") == caps[2]
    assert errors == []


def test_player_without_javascript_is_readable(browser, tmp_path):
    frames = backprop_frames(lecture_e())
    page, _ = open_page(browser, tmp_path, frames.to_html(), javascript=False)
    assert not page.is_visible(".tgs-next")               # no dead buttons
    text = page.inner_text("body")
    assert "needs JavaScript" in text
    for cap in frames.captions():
        assert cap in text
    assert page.locator("svg").count() == 2               # the first and the last frame


def test_pictures_fit_the_column(browser, tmp_path):
    x = Value(0.5, "x")
    y = x
    for k in range(12):                                   # a long chain: wide at full size
        y = (y * 1.5).tanh() + x
    pic = show(y, max_nodes=None)
    pair = show_backward(y)
    body = (f"<div style='width:600px' id='one'>{pic._repr_svg_()}</div>"
            f"<div style='width:900px' id='two'>{pair._repr_html_()}</div>"
            f"<div style='width:600px' id='full'>{pic.full_size()._repr_svg_()}</div>")
    # as Jupyter and nbconvert show a draw_dot result: its HTML (inline SVG) comes first
    bundle = draw_dot(y, max_nodes=None)._repr_mimebundle_()
    body += f"<div style='width:600px' id='bundle'>{bundle['text/html']}</div>"
    page, _ = open_page(browser, tmp_path, body)
    (bw, _bh), = page.evaluate("""() => Array.from(document.querySelectorAll('#bundle svg'))
        .map(s => { const r = s.getBoundingClientRect(); return [r.width, r.height]; })""")
    assert bw <= 600.5
    box = page.evaluate("""() => ['one', 'two', 'full'].map(id =>
        Array.from(document.querySelectorAll('#' + id + ' svg')).map(s => {
          const r = s.getBoundingClientRect(); return [r.width, r.height]; }))""")
    (w, h), = box[0]
    assert w <= 600.5 and h > 0
    natural = pic.svg.split('width="', 1)[1].split("pt", 1)[0]
    assert float(natural) * 4 / 3 > 600                   # it really had to shrink
    natural_h = pic.svg.split('height="', 1)[1].split("pt")[0]
    assert abs(w / h - float(natural) / float(natural_h)) < 0.02   # proportions kept
    (w1, h1), (w2, h2) = box[1]
    assert w1 + w2 <= 900 and abs(w1 - w2) < 1 and abs(h1 - h2) < 1   # side by side, one scale
    assert box[2][0][0] > 600                             # fit=False: full size on request
