"""The head report's explorer, in a real browser: headless Chromium (Debian's package, which `make
test` installs) driven by Playwright. Scrubbing shows that step's maps, a method switch swaps them,
the boxes toggle, and a click on a timeline jumps to its step."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from agents.common.checkpoint import load_checkpoint
from analysis.report import build_report, collect, regions_for, write_report

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
STEPS = 24


@pytest.fixture(scope="module")
def page_and_maps(tmp_path_factory):
    """A Pong report of 30 steps, 24 of them in the explorer, by two methods; the page open in the
    browser, and the maps the page should show."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("the explorer's browser test needs Debian's chromium: `make test` installs it "
                    "(apt-get install chromium)")  # fmt: skip
    net, config = load_checkpoint(ROOT / "pretrained" / "pong")
    collected = collect(net, config, None, steps=30, methods=("jacobian", "smoothgrad"), clip=STEPS,
                        progress=False)  # fmt: skip
    report = build_report(net, collected, regions_for("pong"), probe=2)
    out = tmp_path_factory.mktemp("explorer")
    write_report(report, out, title="pong")
    with sync_playwright() as p:
        flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]  # fmt: skip
        browser = p.chromium.launch(executable_path=CHROMIUM, args=flags)
        page = browser.new_page(viewport={"width": 1300, "height": 1200})
        page.goto((out / "report.html").as_uri())
        yield page, collected
        browser.close()


def shown_levels(page, canvas: str) -> np.ndarray:
    """The map a canvas shows, as the levels its colours stand for (the page's inferno table)."""
    from analysis.explorer import colour_table

    script = f"""() => {{ const c = document.getElementById('{canvas}');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }}"""
    rgba = np.array(page.evaluate(script), np.uint8)
    colours = {tuple(c): i for i, c in enumerate(colour_table())}
    return np.array([colours[tuple(px[:3])] for px in rgba.reshape(-1, 4)]).reshape(84, 84)


def expected_levels(collected, method: str, head: str, step: int) -> np.ndarray:
    """By hand: the map summed over its stacked frames, over the 99.5th percentile of the
    explorer's steps' maps, its square root on 0-255."""
    maps = collected.maps[method][head][:STEPS].sum(1)
    scale = np.percentile(maps, 99.5)
    return (np.sqrt(np.clip(maps[step] / scale, 0, 1)) * 255).round()


def test_scrubbing_shows_that_steps_maps_and_a_method_switch_swaps_them(page_and_maps):
    page, collected = page_and_maps
    page.fill("#frame", "17")
    assert page.text_content("#frame-label") == f"step 18 of {STEPS}"
    for j, head in enumerate(collected.heads):
        expected = expected_levels(collected, "jacobian", head, 17)
        np.testing.assert_array_equal(shown_levels(page, f"map-{j}"), expected)
    jacobian = shown_levels(page, "map-0")
    page.select_option("#method", "smoothgrad")
    assert page.text_content("#frame-label") == f"step 18 of {STEPS}"  # the step stays
    smooth = shown_levels(page, "map-0")
    expected = expected_levels(collected, "smoothgrad", collected.heads[0], 17)
    np.testing.assert_array_equal(smooth, expected)
    assert (smooth != jacobian).mean() > 0.5
    action = collected.action_names[collected.actions[17]]
    value = float(collected.outputs[17]["value"])
    readout = page.text_content("#readout")
    assert readout.startswith(f"action {action}; value {value:.3f}; advantage of {action} ")


def test_the_boxes_are_the_steps_objects_and_toggle(page_and_maps):
    page, collected = page_and_maps
    page.fill("#frame", "9")
    rects = page.eval_on_selector_all("#overlay rect", "rs => rs.map(r => [r.dataset.class, "
                                      "+r.getAttribute('x'), +r.getAttribute('y'), "
                                      "+r.getAttribute('width'), +r.getAttribute('height')])")
    assert rects == [[b.cls, b.x, b.y, b.w, b.h] for b in collected.on_screen[9]] and rects
    assert page.is_visible("#overlay")
    page.uncheck("#boxes")
    assert not page.is_visible("#overlay")
    page.check("#boxes")
    assert page.is_visible("#overlay")


def test_a_click_on_a_timeline_goes_to_its_step(page_and_maps):
    page, _ = page_and_maps
    box = page.locator("#timeline-1").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 5 / (STEPS - 1), box["y"] + box["height"] / 2)
    assert page.text_content("#frame-label") == f"step 6 of {STEPS}"
    assert page.eval_on_selector("#cursor-1", "c => c.getAttribute('x1')") == "5"
    classes = page.eval_on_selector_all("#timeline-0 polyline", "ps => ps.map(p => p.dataset.class)")
    assert classes == ["ball", "player", "enemy", "score"]
