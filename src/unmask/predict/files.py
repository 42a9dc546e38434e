"""Judge many inputs into a results file, on this machine or on a Ray cluster, resumably.

The local engine and the Ray engine share everything but where the judging happens: the listing
of the inputs, the file the verdicts go to (:class:`~unmask.predict.results_file.ResultsFile`),
skipping what an earlier run judged, and the progress reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from unmask.predict.batch import find_inputs, predict_many
from unmask.predict.detector import check_num_frames
from unmask.predict.results_file import ResultsFile
from unmask.utils.progress import ProgressCallback, ProgressMeter
from unmask.utils.ray_cluster import check_engine, import_ray


@dataclass(frozen=True)
class FilesSummary:
    """What :func:`predict_files` did: inputs found, judged now, judged by an earlier run, found
    unreadable now, and other files the folders held (neither videos nor images)."""

    out: Path
    inputs: int
    judged: int
    done_before: int
    unreadable: int
    others: list[Path]
    seconds: float


def predict_files(
    model: str | Path,
    paths,
    out: str | Path,
    *,
    fmt: str | None = None,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    num_frames: int | None = None,
    device: str | None = None,
    prior_fake: float | None = None,
    progress: ProgressCallback | None = None,
) -> FilesSummary:
    """Judge the videos and images of ``paths`` with the run at ``model``, into the file ``out``.

    Each verdict is in ``out`` as soon as it is made; inputs ``out`` already holds (a run that was
    stopped) are skipped, so running again goes on where it stopped. A bad file gets an
    inconclusive verdict with its reason, as everywhere.

    Args:
        paths: files, folders (searched recursively) and ``.csv`` lists (see :func:`find_inputs`).
        fmt: ``jsonl`` (whole predictions), ``csv`` or ``parquet`` (one row each); default from
            ``out``'s suffix.
        engine: ``local`` (this process) or ``ray`` (one Detector per worker of a Ray cluster;
            the inputs and the model must be at the same paths on every node).
        address: with ``ray``, the cluster to join (``auto``, ``ray://HOST:PORT``); None starts
            one on this machine for the call.
        workers: with ``ray``, how many Detectors (default: one per CPU of the cluster).
        progress: called after every input (``done`` counts files, those of an earlier run too).

    Raises:
        UnmaskError: no input, an unknown format or engine, Ray missing, or a model that cannot be
            loaded (nothing is judged then).
    """
    started = time.perf_counter()
    if check_engine(engine) == "ray":
        import_ray()
    check_num_frames(num_frames)
    results = ResultsFile(out, fmt)
    inputs, others = find_inputs(paths)
    earlier = results.judged()
    todo = [path for path in inputs if str(path) not in earlier]
    meter = ProgressMeter(progress, "predict", len(inputs), unit="file", done=len(inputs) - len(todo))
    counts = {"judged": 0, "unreadable": 0}

    def write(prediction) -> None:
        results.write(prediction)
        counts["judged"] += 1
        counts["unreadable"] += prediction.reason_code == "unreadable"
        meter.advance(stage="judging", unreadable=counts["unreadable"])

    options = dict(device=device, prior_fake=prior_fake, num_frames=num_frames)
    _judge(model, todo, write, results, engine=engine, address=address, workers=workers, options=options)
    skipped, seconds = len(inputs) - len(todo), time.perf_counter() - started
    return FilesSummary(results.path, len(inputs), counts["judged"], skipped, counts["unreadable"], others, seconds)


def _judge(model, todo, write, results, *, engine: str, address, workers, options: dict) -> None:
    """Judge ``todo`` here or on Ray, handing each prediction to ``write``; the model is loaded (or
    checked) before ``results`` is opened, so a bad model leaves the file untouched."""
    if engine == "ray":
        from unmask.decision.checkpoint import read_metadata
        from unmask.predict.ray_predict import judge_on_ray

        from unmask.predict.scorer import onnx_file

        if onnx_file(model) is None:  # a missing or broken checkpoint: one line here, before any cluster starts
            read_metadata(model)
        with results:
            judge_on_ray(model, todo, write, address=address, workers=workers, **options)
        return
    from unmask.predict.detector import Detector

    num_frames = options.pop("num_frames")
    detector = Detector.load(model, **options)
    with results:
        for prediction in predict_many(detector, todo, num_frames=num_frames):
            write(prediction)
