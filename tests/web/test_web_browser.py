"""libertem-server in a real browser: Debian's Chromium driven by Playwright.

Skipped, saying why, where Playwright for Python or ``/usr/bin/chromium`` is
missing (``python3 dev.py test`` installs Chromium with apt where it can). Set
``LIBERTEM_GUI_SCREENSHOT=docs/gui.png`` to refresh the screenshot in the docs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from web_testing import NAV, SIG, ring_image, write_sample

CHROMIUM = os.environ.get("LIBERTEM_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CANVAS = 360  # the canvas size in CSS pixels (static/style.css)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install playwright)")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium package")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from libertem.api import Context
    from libertem.web.server import WebServer
    from libertem.web.state import ContextCode

    root = tmp_path_factory.mktemp("gui_root")
    _, data = write_sample(root / "scans")
    ctx = Context.make_with("threads", cpus=2)
    code = ContextCode('Context.make_with("threads", cpus=2)', (), "thread pool")
    srv = WebServer(ctx, root=root, context_code=code).start_in_thread()
    srv.data = data
    yield srv
    srv.stop()
    ctx.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1560, "height": 860}, accept_downloads=True)
    p = context.new_page()
    errors = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.goto(server.url)
    yield p
    context.close()
    assert errors == []


def pane(page, name):
    return page.locator(f"section.dataset:not([hidden]) .pane[data-pane={name}]")


def pixel(page, name, px, py, size):
    """Page coordinates of the centre of image pixel (px, py) in a pane's canvas."""
    box = pane(page, name).locator("canvas").bounding_box()
    scale = min(CANVAS / size[1], CANVAS / size[0])
    ratio = box["width"] / CANVAS
    return box["x"] + (px + 0.5) * scale * ratio, box["y"] + (py + 0.5) * scale * ratio


def after_new_run(page, name, action, timeout=60_000):
    """Do ``action`` and wait until the pane shows a new run that is done."""
    old = pane(page, name).get_attribute("data-run") or ""
    action()
    page.wait_for_function(
        """([sel, old]) => {
            const p = document.querySelector(sel);
            return p && p.dataset.run && p.dataset.run !== old && p.dataset.state === "done";
        }""",
        arg=[f"section.dataset:not([hidden]) .pane[data-pane={name}]", old],
        timeout=timeout,
    )


def drag(page, start, end, steps=6):
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=steps)
    page.mouse.up()


def readout(page, name, px, py, size) -> float:
    page.mouse.move(*pixel(page, name, px, py, size))
    text = pane(page, name).locator(".readout").inner_text()
    m = re.fullmatch(rf"x={px} y={py} value=(\S+)", text.strip())
    assert m, text
    return float(m.group(1))


def download(page, name, kind, folder: Path) -> Path:
    with page.expect_download() as info:
        pane(page, name).locator(f"a[data-download={kind}]").click()
    target = folder / info.value.suggested_filename
    info.value.save_as(target)
    return target


def detector(page) -> dict:
    values = {}
    for field in pane(page, "frame").locator(".detector-params input").all():
        values[field.get_attribute("name")[4:]] = float(field.input_value())
    return values


def open_sample(page):
    page.click("li[data-name=scans]")
    page.click("li[data-name='sample.hdr']")
    form = page.locator("#open-form")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#open-form[data-state=opened]", state="attached")
    for name in ("nav", "frame", "result"):
        page.wait_for_selector(
            f"section.dataset:not([hidden]) .pane[data-pane={name}][data-state=done]",
            timeout=60_000,
        )


def test_form_shows_errors_where_they_belong(page):
    page.click("li[data-name=scans]")
    page.click("li[data-name='sample.hdr']")
    form = page.locator("#open-form")
    form.locator("select[name=filetype]").select_option("mib")
    form.locator("input[name=nav_shape]").fill("sixteen")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#open-form[data-state=error]", state="attached")
    assert "is not of type 'array'" in form.locator(".error[data-for=nav_shape]").inner_text()
    assert form.locator(".error[data-for=general]").inner_text() == ""
    form.locator("input[name=nav_shape]").fill("")
    form.locator("input[name=sync_offset]").fill("1000000")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#open-form[data-state=error]", state="attached")
    assert "sync_offset should be in" in form.locator(".error[data-for=sync_offset]").inner_text()


def test_explore_a_dataset(page, server, tmp_path, inline_ctx):
    from libertem.udf.com import CoMUDF

    data = server.data.astype(np.float64)
    open_sample(page)

    # draw a ring on the frame view; the virtual image follows
    pane(page, "frame").locator("button[data-tool=ring]").click()
    centre = pixel(page, "frame", 32, 31, SIG)
    edge = pixel(page, "frame", 46, 31, SIG)
    after_new_run(page, "result", lambda: drag(page, centre, edge))
    ring = detector(page)
    assert set(ring) == {"cx", "cy", "ri", "ro"} and 13 < ring["ro"] < 15
    expected = ring_image(data, ring["cx"], ring["cy"], ring["ri"], ring["ro"])
    got = np.load(download(page, "result", "npy", tmp_path))
    assert np.allclose(got, expected, rtol=1e-6)
    assert np.isclose(readout(page, "result", 3, 5, NAV), expected[5, 3], rtol=1e-5)

    # move it by dragging its centre, then set the outer radius by number
    start = pixel(page, "frame", ring["cx"], ring["cy"], SIG)
    after_new_run(page, "result", lambda: drag(page, start, pixel(page, "frame", 30, 29, SIG)))
    moved = detector(page)
    assert abs(moved["cx"] - ring["cx"] + 2) < 0.5 and abs(moved["cy"] - ring["cy"] + 2) < 0.5
    ro = pane(page, "frame").locator("input[name=det-ro]")
    after_new_run(page, "result", lambda: (ro.fill("20"), ro.press("Enter")))
    ring = detector(page)
    assert ring["ro"] == 20
    expected = ring_image(data, ring["cx"], ring["cy"], ring["ri"], ring["ro"])
    assert np.allclose(np.load(download(page, "result", "npy", tmp_path)), expected, rtol=1e-6)

    # pick a frame on the navigation image
    after_new_run(page, "frame", lambda: page.mouse.click(*pixel(page, "nav", 5, 7, NAV)))
    assert "x=5, y=7" in pane(page, "frame").locator("h3").inner_text()
    assert readout(page, "frame", 30, 33, SIG) == data[7, 5, 33, 30]
    assert np.array_equal(np.load(download(page, "frame", "npy", tmp_path)), data[7, 5])
    assert np.allclose(readout(page, "nav", 5, 7, NAV), data[7, 5].sum(), rtol=1e-6)

    # an ROI on the navigation image; the frame view shows the sum over it
    pane(page, "nav").locator("button[data-tool=rect]").click()
    drag(page, pixel(page, "nav", 2, 3, NAV), pixel(page, "nav", 9, 8, NAV))
    mode = pane(page, "frame").locator("select[name=frame-mode]")
    after_new_run(page, "frame", lambda: mode.select_option("roisum"))
    roi_sum = data[3:8, 2:9].sum(axis=(0, 1))
    assert np.allclose(np.load(download(page, "frame", "npy", tmp_path)), roi_sum, rtol=1e-6)

    # centre of mass within the ring, compared with the Python API
    analysis = pane(page, "result").locator("select[name=analysis]")
    after_new_run(page, "result", lambda: analysis.select_option("com"))
    field = np.load(download(page, "result", "npy", tmp_path))
    ds = inline_ctx.load("auto", path=str(server.state.root / "scans" / "sample.hdr"))
    udf = CoMUDF.with_params(cx=ring["cx"], cy=ring["cy"], r=ring["ro"], ri=ring["ri"])
    ref = inline_ctx.run_udf(dataset=ds, udf=udf)["field"].data
    assert field.shape == (*NAV, 2) and np.allclose(field, ref, rtol=1e-6, equal_nan=True)
    shot = os.environ.get("LIBERTEM_GUI_SCREENSHOT")
    page.screenshot(path=shot or str(tmp_path / "gui.png"))

    # the script reproduces the result as downloaded
    script = download(page, "result", "script", tmp_path)
    work = tmp_path / "run"
    work.mkdir()
    done = subprocess.run(
        [sys.executable, str(script)], cwd=work, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.load(work / "sample_com_field.npy"), field)
    magnitude = np.load(work / "sample_com_magnitude.npy")
    assert np.allclose(magnitude, np.hypot(ref[..., 0], ref[..., 1]), equal_nan=True)
