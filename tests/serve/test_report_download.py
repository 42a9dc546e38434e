"""The page's 'Download report' button, in real headless Chromium against a live server."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request

from unmask.serve import ServeSettings, create_app

from tests.evaluation.test_evaluate import CHROMIUM_ARGS
from tests.serve.conftest import live_server


def test_the_page_downloads_the_report_of_the_judged_clip(judge, good_clip, tmp_path):
    from playwright import sync_api as playwright  # with Debian's chromium; never `playwright install`

    app = create_app(judge, ServeSettings(upload_root=tmp_path / "uploads", heatmaps=1))
    (tmp_path / "uploads").mkdir()
    with live_server(app) as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900}, bypass_csp=True, accept_downloads=True)
        page.goto(url)
        assert page.is_hidden("#report")
        page.set_input_files("#file", str(good_clip))
        page.wait_for_selector("#report", state="visible", timeout=120_000)
        job_id = page.evaluate("location.hash.slice(1)")
        regions_line = page.text_content("#tracks .regions")
        with page.expect_download() as info:
            page.click("#report")
        download = info.value
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        browser.close()
        job = json.load(urllib.request.urlopen(f"{url}/api/v1/jobs/{job_id}"))
        try:
            urllib.request.urlopen(f"{url}/api/v1/jobs/{'0' * 32}/report.html")
            missing = 200
        except urllib.error.HTTPError as exc:
            missing = exc.code

    assert download.suggested_filename == f"{good_clip.stem}-report.html"
    html = saved.read_text()
    assert hashlib.sha256(good_clip.read_bytes()).hexdigest() in html
    assert f"Deepfake check: {good_clip.name}" in html and str(tmp_path) not in html  # no server path in it
    assert 'id="regions-table"' in html and "data:image/png;base64," in html
    person = job["result"]["regions"]["persons"][0]["shares"]
    top = max((k for k in person if k != "outside"), key=person.get)
    assert regions_line.startswith(f"evidence: {top} {round(100 * person[top])}%")
    assert set(job["heatmaps"][0]["regions"]) == set(person)
    assert missing == 404
