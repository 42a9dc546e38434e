"""The web page in real headless Chromium (Debian's, driven by playwright), against a live server."""

from __future__ import annotations

from unmask.serve import ServeSettings, create_app

from tests.evaluation.test_evaluate import CHROMIUM_ARGS
from tests.serve.conftest import live_server

ALL_LOADED = "Array.from(document.querySelectorAll('#heatmaps img')).every(i => i.complete && i.naturalWidth > 0)"


def test_page_shows_verdict_chart_and_heatmaps_then_a_clear_error(small_run, good_clip, bad_files, tmp_path):
    from playwright import sync_api as playwright  # with Debian's chromium; never `playwright install`

    from unmask import Detector
    from unmask.decision.checkpoint import load_classifier

    # A missed fake costing 7 false alarms' worth against 3: threshold 0.3, so the chart's line is not at mid-height.
    from unmask.decision.calibration import Costs

    model, record = load_classifier(small_run[0].run_dir)
    judge = Detector(model, record.replace(threshold=0.3, costs=Costs(missed_fake=7.0, false_alarm=3.0)), device="cpu")
    expected = judge.predict(good_clip)
    app = create_app(judge, ServeSettings(upload_root=tmp_path, heatmaps=2))
    with live_server(app) as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        # bypass_csp: playwright's waits evaluate strings, which the page's own policy forbids
        page = browser.new_page(viewport={"width": 1200, "height": 900}, bypass_csp=True)
        page.goto(url)
        page.wait_for_function("document.getElementById('model').textContent.includes('mobilenetv3_small')")
        page.set_input_files("#file", str(good_clip))
        page.wait_for_selector("#result", state="visible", timeout=120_000)
        page.wait_for_function(ALL_LOADED, timeout=30_000)
        verdict = page.text_content("#verdict")
        verdict_class = page.get_attribute("#verdict", "class")
        points = page.locator("#chartBox circle.point").count()
        threshold_y = page.get_attribute("#chartBox line.threshold", "y1")
        tracks = page.locator("#tracks .track").count()
        captions = page.locator("#heatmaps figcaption").all_text_contents()
        prob = page.text_content("#prob")
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

        page.set_input_files("#file", str(bad_files / "notes.txt"))
        page.wait_for_selector("#error", state="visible", timeout=30_000)
        error_title, error_text = page.text_content("#errorTitle"), page.text_content("#errorText")
        result_hidden = page.is_hidden("#result")
        browser.close()

    assert verdict == expected.verdict and verdict_class == expected.verdict
    assert f"{100 * expected.p_fake:.1f}%" in prob and "called fake at 30.0% or more" in prob
    assert points == len(expected.timeline) > 0
    assert tracks == len(expected.tracks) > 0
    # the threshold line sits at the threshold's height on the 0-1 axis (plot area 14..260 px of 300)
    assert float(threshold_y) == __import__("pytest").approx(14 + 246 * (1 - expected.threshold))
    assert len(captions) == 2 and all("gradcam" in c and "p(fake)" in c for c in captions)
    assert (tmp_path / "page.png").stat().st_size > 20_000
    assert error_title == "That is not a video (415)" and "notes.txt is not a readable video" in error_text
    assert result_hidden
