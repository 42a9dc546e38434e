"""A report of one judged clip: one self-contained HTML file (or a PDF of it) to pass the verdict on.

It holds what a fact-checker needs to cite and a reader without unmask needs to understand:
the file itself (name, size, SHA-256, container, codec, resolution, frame rate, duration and the
metadata tags PyAV reads), the verdict with its p_fake, threshold and the costs behind it (and
the reason when inconclusive), each person with a thumbnail, the timeline, the most suspicious
faces with their heatmaps and faithfulness, where on the face the evidence lies
(:mod:`unmask.explain.regions`), the model's card in brief, unmask's version and the time of
judgement. Images are embedded as ``data:`` URIs; the PDF is the HTML printed by headless
Chromium (``chromium --print-to-pdf``), the browser the set-up installs.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from unmask import __version__
from unmask.errors import UnmaskError
from unmask.explain.regions import ALL_REGIONS, REGIONS, main_region

logger = logging.getLogger(__name__)

REPORT_SUFFIXES = (".html", ".htm", ".pdf")
REPORT_METHODS = ("gradcam",)  # fast on a CPU; --methods chooses others
EVALUATION_JSON = "evaluation.json"  # a test evaluation's brief, beside a pushed model
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
COLORS = ("#3b5bdb", "#e8590c", "#0ca678", "#ae3ec9", "#f08c00", "#1098ad")  # one per person, as the web page


def write_report(
    detector,
    prediction,
    out: str | Path,
    *,
    heatmaps=None,
    methods=None,
    max_faces: int = 4,
    evaluation: str | Path | None = None,
    input_name: str | None = None,
) -> Path:
    """Write the report of ``prediction`` (a result of ``detector.predict``) to ``out``.

    Args:
        detector: the :class:`unmask.Detector` that judged.
        prediction: its result; made with ``keep_faces=True`` for thumbnails and heatmaps (else the
            input is judged again, keeping them).
        out: ``.html`` (one self-contained file) or ``.pdf`` (printed by headless Chromium).
        heatmaps: the faces' :class:`unmask.Heatmap` s, if already made (else ``methods``, default
            Grad-CAM, on the ``max_faces`` most suspicious faces).
        evaluation: an ``unmask evaluate`` folder (or its ``metrics.json``) with the model's test
            results; default the newest test evaluation inside the model's folder, if any.
        input_name: the name to show for the input (default its file name).

    Raises:
        UnmaskError: an unsupported suffix, a folder that cannot be written, no Chromium for a PDF.
    """
    out = check_report_path(out)
    html = report_html(
        detector,
        prediction,
        heatmaps=heatmaps,
        methods=methods,
        max_faces=max_faces,
        evaluation=evaluation,
        input_name=input_name,
    )
    if out.suffix.lower() == ".pdf":
        return html_to_pdf(html, out)
    from unmask.utils.atomic import atomic_path

    with atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return out


def check_report_path(out: str | Path, *, n_inputs: int = 1) -> Path:
    """Refuse, before any work, a report path that cannot be written (or several inputs for one report)."""
    out = Path(out)
    if n_inputs != 1:
        raise UnmaskError(f"--report takes one input, not {n_inputs}")
    if out.suffix.lower() not in REPORT_SUFFIXES:
        raise UnmaskError(f"A report is .html or .pdf, not {out.name!r}; name it e.g. clip-report.html")
    if not out.parent.is_dir():
        raise UnmaskError(f"No folder {out.parent} to write the report {out.name} into; create it first")
    return out


def report_html(
    detector,
    prediction,
    *,
    heatmaps=None,
    methods=None,
    max_faces: int = 4,
    evaluation=None,
    input_name: str | None = None,
    path: str | Path | None = None,
    public: bool = False,
) -> str:
    """The report as one HTML document (see :func:`write_report`).

    Args:
        path: the judged file, if not ``prediction.input`` (the server's stored upload).
        public: leave out the server's own paths (the model's folder).
    """
    if prediction.timeline and prediction.faces is None and heatmaps is None:
        prediction = detector.predict(prediction.input, keep_faces=True)
    if heatmaps is None and prediction.timeline:
        heatmaps = detector.explain(prediction, methods=list(methods or REPORT_METHODS), max_faces=max_faces)
    heatmaps = list(heatmaps or [])
    if prediction.regions is None and heatmaps:
        prediction = prediction.with_regions(heatmaps)
    model_dir = _model_dir(detector.source)
    context = {
        "file": describe_file(path or prediction.input, name=input_name),
        "verdict": _verdict(prediction),
        "persons": _persons(prediction),
        "timeline": _timeline_svg(prediction),
        "faces": _faces(prediction, heatmaps),
        "regions": ALL_REGIONS,
        "face_regions": REGIONS,
        "model": model_brief(
            detector.record, source=detector.source, model_dir=model_dir, evaluation=evaluation, public=public
        ),
        "unmask_version": __version__,
        "judged_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "timings": prediction.timings,
        "result_json": json.dumps(prediction.to_dict(), indent=1),
    }
    if public:
        context["result_json"] = json.dumps(
            {
                **prediction.to_dict(),
                "input": context["file"]["name"],
                "model": {**prediction.model, "run": context["model"]["source"]},
            },
            indent=1,
        )
    return _template().render(**context)


# ---- the file ----------------------------------------------------------------------------------
def describe_file(path: str | Path, *, name: str | None = None) -> dict:
    """What the judged file is: name, size, SHA-256, and what PyAV reads of its container and video.

    Returns:
        ``{"name", "size_bytes", "size", "sha256", "container", "container_name", "codec", "width",
        "height", "fps", "duration_s", "num_frames", "tags": {name: value}}``; the media fields are
        None and ``"unreadable"`` says why when PyAV cannot open it.
    """
    path = Path(path)
    facts = {
        "name": name or path.name,
        "size_bytes": None,
        "size": None,
        "sha256": None,
        "container": None,
        "container_name": None,
        "codec": None,
        "width": None,
        "height": None,
        "fps": None,
        "duration_s": None,
        "num_frames": None,
        "tags": {},
        "unreadable": None,
    }
    try:
        facts["size_bytes"] = path.stat().st_size
        facts["size"] = _size(facts["size_bytes"])
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        facts["sha256"] = digest.hexdigest()
    except OSError as exc:
        facts["unreadable"] = f"{facts['name']} could not be read ({exc.strerror or exc})"
        return facts
    try:
        import av

        from unmask.video.probe import probe_video

        info = probe_video(path, decode_first=False)
        facts.update(
            container=info.container,
            codec=info.codec,
            width=info.width,
            height=info.height,
            fps=round(info.fps, 3) if info.fps else None,
            duration_s=round(info.duration_s, 3),
            num_frames=info.num_frames,
        )
        with av.open(str(path)) as container:
            facts["container_name"] = container.format.long_name
            tags = {str(k): str(v) for k, v in (container.metadata or {}).items()}
            stream = container.streams[info.stream_index]
            tags.update({f"video stream: {k}": str(v) for k, v in (stream.metadata or {}).items()})
            codec = stream.codec_context
            if getattr(codec, "codec", None) is not None and codec.codec.long_name:
                facts["codec"] = f"{info.codec} ({codec.codec.long_name})"
        facts["tags"] = dict(sorted(tags.items()))
    except Exception as exc:  # the report of an unreadable file still says what it is
        facts["unreadable"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return facts


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# ---- the verdict, the people, the timeline, the faces -------------------------------------------
def _verdict(p) -> dict:
    costs = p.costs or {}
    return {
        "verdict": p.verdict,
        "p_fake": p.p_fake,
        "threshold": p.threshold,
        "reason": p.reason,
        "reason_code": p.reason_code,
        "missed_fake": costs.get("missed_fake"),
        "false_alarm": costs.get("false_alarm"),
        "frames_sampled": p.frames_sampled,
        "frames_with_face": p.frames_with_face,
        "kind": p.kind,
        "n_persons": len(p.tracks),
        "aggregation": (p.model or {}).get("aggregation"),
        "prior_fake": (p.model or {}).get("prior_fake"),
    }


def _persons(p) -> list[dict]:
    regions = {r["track_id"]: r for r in (p.regions or {}).get("persons", [])}
    persons = []
    for number, track in enumerate(p.tracks, start=1):
        mine = [i for i, s in enumerate(p.timeline) if s.track_id == track.track_id]
        best = max(mine, key=lambda i: p.timeline[i].p_fake) if mine else None
        thumb = _png_src(p.faces[best]) if best is not None and p.faces is not None else None
        shares = (regions.get(track.track_id) or {}).get("shares")
        persons.append(
            {
                "number": number,
                "track_id": track.track_id,
                "verdict": track.verdict,
                "p_fake": track.p_fake,
                "n_faces": track.n_faces,
                "first_s": track.first_s,
                "last_s": track.last_s,
                "thumb": thumb,
                "thumb_time_s": p.timeline[best].time_s if best is not None else None,
                "color": COLORS[(number - 1) % len(COLORS)],
                "regions": shares,
                "main_region": main_region(shares),
                "n_explained": (regions.get(track.track_id) or {}).get("n_faces", 0),
            }
        )
    return persons


def _timeline_svg(p) -> dict | None:
    """Coordinates of the timeline chart (drawn as inline SVG by the template)."""
    if not p.timeline:
        return None
    width, height, left, right, top, bottom = 720, 240, 48, 12, 12, 36
    times = [s.time_s for s in p.timeline]
    t0, t1 = min(times), max(times)
    span = t1 - t0

    def x(t):
        return round(left + (width - left - right) * (0.5 if span <= 0 else (t - t0) / span), 1)

    def y(v):
        return round(top + (height - top - bottom) * (1 - v), 1)

    series = []
    numbers = {t.track_id: k for k, t in enumerate(p.tracks, start=1)}
    for track_id in sorted({s.track_id for s in p.timeline}):
        points = sorted((s for s in p.timeline if s.track_id == track_id), key=lambda s: s.time_s)
        number = numbers.get(track_id, track_id + 1)
        series.append(
            {
                "number": number,
                "color": COLORS[(number - 1) % len(COLORS)],
                "points": [
                    (
                        x(s.time_s),
                        y(s.p_fake),
                        f"{s.time_s:.2f} s, frame {s.frame_index}: p(fake) {100 * s.p_fake:.1f}%",
                    )
                    for s in points
                ],
                "line": " ".join(f"{x(s.time_s)},{y(s.p_fake)}" for s in points),
            }
        )
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "top": top,
        "bottom": height - bottom,
        "threshold_y": y(p.threshold),
        "threshold": p.threshold,
        "y_ticks": [(y(v), f"{int(100 * v)}%") for v in (0, 0.25, 0.5, 0.75, 1)],
        "x_ticks": [(x(t0 + span * k / 4), f"{t0 + span * k / 4:.1f} s") for k in range(5)]
        if span > 0
        else [(x(t0), f"{t0:.1f} s")],
        "series": series,
    }


def _faces(p, heatmaps) -> list[dict]:
    numbers = {t.track_id: k for k, t in enumerate(p.tracks, start=1)}
    faces: dict[tuple, dict] = {}
    for h in heatmaps:
        key = (h.frame_index, h.track_id)
        if key not in faces:
            faces[key] = {
                "frame_index": h.frame_index,
                "time_s": h.time_s,
                "person": numbers.get(h.track_id),
                "p_fake": h.p_fake,
                "face": _png_src(h.face),
                "maps": [],
            }
        faithful = h.faithfulness if h.faithfulness is not None and np.isfinite(h.faithfulness) else None
        faces[key]["maps"].append(
            {
                "method": h.method,
                "overlay": _png_src(h.overlay),
                "faithfulness": faithful,
                "regions": h.regions,
                "main_region": main_region(h.regions),
            }
        )
    return list(faces.values())


def _png_src(rgb: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ---- the model --------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _model_dir(source: str) -> Path | None:
    """The local folder the model was loaded from (a hub name: its cached snapshot, looked up once)."""
    if not source:
        return None
    from unmask.decision.hub import resolve_model

    try:
        path = resolve_model(source)
    except UnmaskError:
        return None
    return path if path.is_dir() else path.parent


def find_test_evaluation(model_dir: str | Path | None) -> dict | None:
    """The brief of the model's test evaluation: ``evaluation.json`` (a pushed model's), else the newest
    ``*/metrics.json`` in ``model_dir`` of its own dataset's test split (``unmask evaluate RUN DATA
    --out RUN/eval``); None when there is none."""
    if model_dir is None or not Path(model_dir).is_dir():
        return None
    model_dir = Path(model_dir)
    pushed = model_dir / EVALUATION_JSON
    if pushed.is_file():
        try:
            return json.loads(pushed.read_text())
        except (OSError, ValueError):
            logger.warning("%s is not readable JSON; the report shows no test result", pushed)
    candidates = []
    for path in model_dir.glob("*/metrics.json"):
        try:
            m = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if m.get("split") == "test" and m.get("data") == m.get("trained_data") and "video" in m:
            candidates.append((path.stat().st_mtime, path, m))
    if not candidates:
        return None
    _, path, m = max(candidates, key=lambda c: c[0])
    return evaluation_brief(m, where=str(path.parent.relative_to(model_dir)))


def evaluation_brief(metrics: dict, *, where: str = "") -> dict:
    """The figures of an ``unmask evaluate`` ``metrics.json`` that a report shows."""
    video, frame = metrics.get("video") or {}, metrics.get("frame") or {}
    ci = (video.get("ci95") or {}).get("auc")
    support = video.get("calibrated_cost") or {}
    return {
        "where": where,
        "dataset": metrics.get("dataset"),
        "split": metrics.get("split"),
        "protocol": metrics.get("protocol"),
        "videos": video.get("n"),
        "video_auc": (video.get("scores") or {}).get("auc"),
        "video_auc_ci95": ci,
        "video_accuracy": support.get("accuracy"),
        "frame_auc": (frame.get("scores") or {}).get("auc"),
        "aggregation": metrics.get("aggregation"),
    }


def model_brief(
    record, *, source: str = "", model_dir: Path | None = None, evaluation=None, public: bool = False
) -> dict:
    """The model card in brief: what it learnt from, how well it did on test videos, how trustworthy
    its probabilities are, and what it cannot do."""
    from unmask.evaluation.model_card import model_card

    card = model_card(record)
    if evaluation is not None:
        path = Path(evaluation)
        path = path / "metrics.json" if path.is_dir() else path
        try:
            test = evaluation_brief(json.loads(path.read_text()), where=str(path.parent))
        except (OSError, ValueError) as exc:
            raise UnmaskError(f"Cannot read the evaluation {path} ({exc}); give an `unmask evaluate` folder") from None
    else:
        test = find_test_evaluation(model_dir)
    data = card["data"]
    splits = data.get("splits") or {}
    methods = sorted({m for s in splits.values() for m in (s.get("methods") or {}) if m and m != "real"})
    health = card["calibration"].get("frame_health") or {}
    limits = list(card["warnings"])
    dataset = data.get("dataset") or "its training data"
    limits.append(
        f"It learnt from {dataset}"
        + (f" ({', '.join(methods)})" if methods else "")
        + ": manipulations, compression and footage unlike those may go unnoticed or raise false alarms."
    )
    limits.append(
        "It looks at faces only: a cloned voice, a faked body or background, or an edit without a face is not judged."
    )
    prior = card["calibration"].get("prior_fake")
    if prior is not None:
        limits.append(
            f"Its probabilities are calibrated on validation videos of which {100 * prior:.0f}% were fake; "
            "where fakes are rarer, the same p_fake overstates the chance that a clip is fake."
        )
    if test is None:
        limits.append(
            "No test evaluation was found with the model: how well it does on videos it never saw is not stated here."
        )
    display = _display_source(source)
    return {
        "name": card["model"]["name"],
        "timm_id": card["model"]["timm_id"],
        "input_size_px": card["model"]["input_size_px"],
        "source": Path(display).name if public and not display.startswith("hf://") else display,
        "dataset": data.get("dataset"),
        "protocol": data.get("protocol"),
        "face_step": data.get("face_step"),
        "label_level": data.get("label_level"),
        "methods": methods,
        "splits": {
            k: f"{v['videos']} videos ({v['videos_fake']} fake, {v['videos_real']} real)" for k, v in splits.items()
        },
        "test": test,
        "threshold": card["decision"]["threshold"],
        "costs": card["decision"]["costs"],
        "calibration": {
            "note": health.get("note"),
            "trusted": health.get("trusted"),
            "ece_frame": card["calibration"].get("ece_frame"),
            "ece_video": card["calibration"].get("ece_video"),
            "prior_fake": prior,
        },
        "val_auc": ((card["validation"].get("best_epoch") or {}).get("val_auc")),
        "limits": limits,
        "trained": (card.get("provenance") or {}).get("time_utc"),
        "trained_with": card.get("unmask_version"),
    }


def _display_source(source: str) -> str:
    from unmask.decision.hub import is_hub_name, parse_hub_name

    if source and is_hub_name(source):
        try:
            repo, revision = parse_hub_name(source)
        except UnmaskError:
            return source
        return f"hf://{repo}" + (f"@{revision}" if revision else "")
    return source


# ---- HTML and PDF -----------------------------------------------------------------------------
def _template():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("unmask.predict", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v, digits=1: "n/a" if v is None else f"{100 * v:.{digits}f}%"
    env.filters["num"] = lambda v, digits=3: "n/a" if v is None else f"{v:.{digits}f}"
    return env.get_template("report.html.j2")


def find_chromium() -> str | None:
    """The Chromium to print PDFs with: ``$UNMASK_CHROMIUM``, else the first of :data:`CHROMIUM_NAMES` found."""
    named = os.environ.get("UNMASK_CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    return next((found for found in map(shutil.which, CHROMIUM_NAMES) if found), None)


def html_to_pdf(html: str, out: str | Path, *, timeout_s: float = 120.0) -> Path:
    """Print ``html`` to the PDF ``out`` with headless Chromium (A4; the page's own print styles).

    Raises:
        UnmaskError: no Chromium, or it failed.
    """
    out = Path(out)
    chromium = find_chromium()
    if chromium is None:
        raise UnmaskError(
            "A PDF report needs Chromium (apt install chromium, or set UNMASK_CHROMIUM); "
            f"or write {out.with_suffix('.html').name} instead"
        )
    with tempfile.TemporaryDirectory(prefix="unmask-report-") as folder:
        page, pdf = Path(folder) / "report.html", Path(folder) / "report.pdf"
        page.write_text(html, encoding="utf-8")
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--no-first-run",
            "--no-pdf-header-footer",
            f"--user-data-dir={Path(folder) / 'profile'}",
            f"--print-to-pdf={pdf}",
            page.as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UnmaskError(
                f"Chromium could not print {out.name} ({type(exc).__name__}); "
                f"write {out.with_suffix('.html').name} instead"
            ) from None
        if not pdf.is_file() or pdf.read_bytes()[:4] != b"%PDF":
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise UnmaskError(f"Chromium did not print {out.name} (exit {done.returncode}: {last[:200]})")
        from unmask.utils.atomic import atomic_path

        with atomic_path(out) as tmp:
            shutil.copyfile(pdf, tmp)
    return out
