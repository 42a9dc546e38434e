"""The report of one judged clip: read in real headless Chromium (Debian's, driven by playwright),
printed to PDF, and written by ``unmask predict --report``; evidence by face region in the result."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest

from unmask.errors import UnmaskError
from unmask.explain.regions import ALL_REGIONS

from tests.evaluation.test_evaluate import CHROMIUM_ARGS


@pytest.fixture(scope="module")
def judge(small_run):
    from unmask import Detector

    return Detector.load(small_run[0].run_dir, device="cpu")


@pytest.fixture(scope="module")
def clip(demo_clips):
    return demo_clips / "fake" / "fake_astronaut_00.mp4"


@pytest.fixture(scope="module")
def judged(judge, clip):
    prediction = judge.predict(clip, keep_faces=True)
    heatmaps = judge.explain(prediction, methods=["gradcam"], max_faces=2)
    return prediction.with_regions(heatmaps), heatmaps


@pytest.fixture(scope="module")
def test_metrics(tmp_path_factory):
    """An ``unmask evaluate`` result (the figures a report quotes), as metrics.json."""
    folder = tmp_path_factory.mktemp("eval")
    (folder / "metrics.json").write_text(
        json.dumps(
            {
                "dataset": "ffpp",
                "split": "test",
                "protocol": "video",
                "aggregation": "mean",
                "video": {
                    "n": 140,
                    "scores": {"auc": 0.912},
                    "ci95": {"auc": [0.861, 0.955]},
                    "calibrated_cost": {"accuracy": 0.85},
                },
                "frame": {"n": 4480, "scores": {"auc": 0.874}},
            }
        )
    )
    return folder


def test_the_report_opens_in_chromium_with_every_part(judge, judged, clip, test_metrics, tmp_path):
    from playwright import sync_api as playwright  # with Debian's chromium; never `playwright install`

    from unmask.predict.report import write_report

    prediction, heatmaps = judged
    out = write_report(judge, prediction, tmp_path / "clip-report.html", heatmaps=heatmaps, evaluation=test_metrics)
    html = out.read_text()
    # one self-contained file: nothing fetched from anywhere
    assert not re.search(r"<(script|link)\b|src=\"(?!data:)|url\(", html)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(out.resolve().as_uri())
        sha = page.text_content("#sha256")
        label = page.text_content("#verdict-label").strip()
        file_text = page.text_content("#file")
        images = page.evaluate("Array.from(document.images).map(i => [i.className, i.complete, i.naturalWidth])")
        rows = page.evaluate(
            "Array.from(document.querySelectorAll('#regions-table tr')).slice(1)"
            ".map(r => [r.className, r.querySelector('.share').textContent])"
        )
        card = page.text_content("#model-card")
        points = page.locator("#timeline circle.point").count()
        page.emulate_media(media="print")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()

    assert sha == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert label == prediction.verdict
    from unmask.video.probe import probe_video

    codec = probe_video(clip).codec
    for part in ("fake_astronaut_00.mp4", "320 × 240 pixels", "8.0 frames per second", "1.00 s", "tag: encoder", codec):
        assert part in file_text, part
    heatmap_images = [i for i in images if i[0] == "heatmap"]
    assert len(heatmap_images) == len(heatmaps) == 2 and all(done and width > 0 for _, done, width in images)
    assert len(images) == 1 + 2 * len(heatmaps)  # the person's thumbnail, each face and its heatmap
    assert [name for name, _ in rows] == list(ALL_REGIONS)
    person = prediction.regions["persons"][0]["shares"]
    assert [share for _, share in rows] == [f"{100 * person[name]:.0f}%" for name in ALL_REGIONS]
    assert "video AUC 0.912 (95% interval 0.861–0.955)" in card and "140 ffpp test videos" in card
    assert "Known limits" in card and "calibrat" in card
    assert points == len(prediction.timeline)


def test_the_pdf_is_printed_by_chromium(judge, judged, tmp_path):
    from unmask.predict.report import write_report

    prediction, heatmaps = judged
    pdf = write_report(judge, prediction, tmp_path / "clip-report.pdf", heatmaps=heatmaps).read_bytes()
    assert pdf.startswith(b"%PDF-")
    pages = int(re.search(rb"/Count (\d+)", pdf).group(1))
    assert pages >= 2 and len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == pages


def test_what_the_file_and_its_tags_say_is_text_never_markup(judge, judged, clip):
    from unmask.predict.report import report_html

    prediction, heatmaps = judged
    html = report_html(judge, prediction, heatmaps=heatmaps, input_name='<img src=x onerror="alert(1)">.mp4')
    assert "<img src=x" not in html and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;.mp4" in html


def test_an_unreadable_file_gets_a_report_that_says_why(judge, tmp_path):
    from unmask.predict.report import write_report

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video" * 50)
    prediction = judge.predict(bad)
    html = write_report(judge, prediction, tmp_path / "broken-report.html").read_text()
    assert prediction.verdict == "inconclusive" and prediction.reason
    assert f'<p class="reason" id="reason">Why inconclusive: {prediction.reason}</p>' in html
    assert hashlib.sha256(bad.read_bytes()).hexdigest() in html and "could not be read" in html
    assert "No face was found, so no person was judged." in html


def test_bad_report_paths_are_refused_before_any_work(tmp_path, monkeypatch):
    from unmask.predict.report import check_report_path, html_to_pdf

    with pytest.raises(UnmaskError, match=r"^A report is .html or .pdf, not 'r.docx'"):
        check_report_path(tmp_path / "r.docx")
    with pytest.raises(UnmaskError, match=r"^No folder .*absent to write the report r.html into"):
        check_report_path(tmp_path / "absent" / "r.html")
    with pytest.raises(UnmaskError, match=r"^--report takes one input, not 2"):
        check_report_path(tmp_path / "r.html", n_inputs=2)
    monkeypatch.setenv("UNMASK_CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(UnmaskError, match=r"^A PDF report needs Chromium .* or write r.html instead"):
        html_to_pdf("<p>x</p>", tmp_path / "r.pdf")


def test_region_evidence_follows_the_landmarks_into_each_heatmap(judge, judged, monkeypatch):
    """The explainer's map put on each face's mouth (then eyes) must be found there: the landmarks
    travel from the frame into each crop and onto the map at the map's own size."""
    import unmask.explain.explainer as explainer

    prediction, _ = judged
    assert all(points is not None for points in prediction.landmarks)

    def fake_explain(where):
        def explain_crops(model, meta, crops, methods, **kwargs):
            maps = []
            for crop in crops:
                k = next(i for i, face in enumerate(prediction.faces) if face is crop)
                points = prediction.landmarks[k] * (32 / crop.shape[0])  # a 32 px map of a larger crop
                ys, xs = np.mgrid[0:32, 0:32]
                heat = np.zeros((32, 32), np.float32)
                for group in where:  # a blob on the middle of each group of landmarks
                    x, y = points[group].mean(axis=0)
                    heat += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 2.0).astype(np.float32)
                maps.append(heat)
            return None, {m: (np.stack(maps), np.zeros(len(crops), np.float32)) for m in methods}

        return explain_crops

    for where, region in (([[3, 4]], "mouth"), ([[0], [1]], "eyes")):
        monkeypatch.setattr(explainer, "explain_crops", fake_explain(where))
        heatmaps = judge.explain(prediction, methods=["gradcam"], max_faces=3)
        assert [max(h.regions, key=h.regions.get) for h in heatmaps] == [region] * 3
        regions = prediction.with_regions(heatmaps).to_dict()["regions"]
        assert max(regions["persons"][0]["shares"], key=regions["persons"][0]["shares"].get) == region


def test_the_json_result_has_evidence_per_face_and_per_person(judge, clip, tmp_path):
    from unmask.predict.batch import predict_many

    [prediction] = predict_many(judge, [clip], explain_dir=tmp_path / "why", methods=["gradcam"], max_faces=2)
    d = json.loads(prediction.to_json())
    assert d["regions"]["regions"] == list(ALL_REGIONS)
    assert len(d["regions"]["faces"]) == 2 and {f["track_id"] for f in d["regions"]["faces"]} == {0}
    for face in d["regions"]["faces"]:
        assert sum(face["shares"].values()) == pytest.approx(1, abs=2e-3)
    [person] = d["regions"]["persons"]
    assert person["n_faces"] == 2
    mean = {k: np.mean([f["shares"][k] for f in d["regions"]["faces"]]) for k in ALL_REGIONS}
    assert person["shares"] == pytest.approx(mean, abs=1e-3)
    written = json.loads((tmp_path / "why" / "explanations.json").read_text())
    assert written["prediction"]["regions"] == d["regions"]
    assert all(set(e["regions"]) == set(ALL_REGIONS) for e in written["explanations"])


def test_predict_writes_the_report_from_the_command_line(small_run, clip, tmp_path):
    from typer.testing import CliRunner

    from unmask.cli import app

    out = tmp_path / "clip-report.html"
    result = CliRunner().invoke(app, ["predict", str(clip), "--model", str(small_run[0].run_dir), "--report", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert hashlib.sha256(clip.read_bytes()).hexdigest() in html and 'id="regions-table"' in html
