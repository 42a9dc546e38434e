"""``unmask predict``."""

from __future__ import annotations

from pathlib import Path

import typer

from unmask.cli import app
from unmask.cli._help import choice_list, methods_note, with_code_help

EXIT_SOME_FAILED = 3
FORMATS = ("text", "table", "csv", "jsonl", "parquet")


@app.command("predict", cls=with_code_help(methods_note))
def predict_command(
    paths: list[Path] = typer.Argument(..., help="Videos, images, or folders (searched recursively)."),
    model: Path = typer.Option(
        ...,
        "--model",
        "-m",
        help="Run folder of `unmask train` (or its model.safetensors), "
        "or a folder of `unmask export` (runs on ONNX Runtime, without torch).",
    ),
    as_json: bool = typer.Option(False, "--json", help="The whole result as JSON (JSON Lines for several inputs)."),
    fmt: str = typer.Option(
        None,
        "--format",
        "-f",
        metavar=choice_list(FORMATS),
        help="text (default for one input), table (default for several), csv or jsonl; "
        "with --out: jsonl, csv or parquet (default: its suffix).",
    ),
    explain: Path = typer.Option(None, "--explain", help="Folder for heatmaps of the most suspicious faces."),
    methods: str = typer.Option(
        None, metavar="METHOD,...", help="Comma-separated explanation methods (default the paper's four)."
    ),
    max_faces: int = typer.Option(4, help="Explain the N most suspicious faces of each input."),
    overlay: Path = typer.Option(None, "--overlay", help="Write the video with each face boxed and scored (.mp4)."),
    overlay_heatmap: bool = typer.Option(
        False, "--overlay-heatmap", help="Blend a heatmap (the first of --methods, else gradcam) on each face."
    ),
    num_frames: int = typer.Option(None, help="Frames to sample from a video (default: as the training data was)."),
    device: str = typer.Option(None, help="cpu, cuda ... (default: a GPU if there is one)."),
    prior_fake: float = typer.Option(
        None,
        "--prior-fake",
        help="Share of fakes expected among your inputs (default: the validation videos' share); moves p_fake to it.",
    ),
    report: Path = typer.Option(
        None,
        "--report",
        help="Write a report of the input to pass on: .html (one self-contained file) or .pdf (printed by Chromium).",
    ),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        help="Write the verdicts to this file (.jsonl, .csv or .parquet) "
        "as they are made; run again to go on where a stopped run left off.",
    ),
    engine: str = typer.Option(
        "local",
        "--engine",
        metavar="local|ray",
        help="Where to judge, with --out: this "
        "process, or one Detector per worker of a Ray cluster (pip install 'unmask[ray]').",
    ),
    address: str = typer.Option(
        None,
        "--address",
        help="--engine ray: the cluster to join (auto, ray://HOST:PORT); default: start one on this machine.",
    ),
    workers: int = typer.Option(None, "--workers", help="--engine ray: Detectors to run (default: one per CPU)."),
):
    """Judge videos and images: fake, real or inconclusive, and why.

    In a folder, any file PyAV can open is judged, whatever its suffix; the files skipped are
    counted and named on stderr.

    \b
    Exit status: 0 every input was judged (an inconclusive verdict included), 1 a user error
    (a missing input or run, a bad setting, an output that cannot be written; nothing judged),
    2 a usage error (an unknown option, a missing argument), 3 some input could not be read,
    130 interrupted (Ctrl-C or kill; the verdicts printed so far are all that is kept).

    \b
    Example: unmask predict clip.mp4 --model demo/run --explain why/ --overlay boxed.mp4
    """
    from tqdm import tqdm

    from unmask.cli import on_interrupt
    from unmask.errors import UnmaskError
    from unmask.predict.batch import find_inputs, predict_many
    from unmask.predict.detector import check_num_frames
    from unmask.utils.outdir import ensure_out_dir

    fmt = "jsonl" if as_json else fmt
    if fmt is not None and fmt not in FORMATS:
        raise UnmaskError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if out is not None or engine != "local" or fmt == "parquet":
        _predict_to_file(
            paths, model, out, fmt, engine, address, workers, num_frames, device, prior_fake, [explain, overlay, report]
        )
        return
    if max_faces < 1:
        raise UnmaskError(f"--max-faces must be at least 1, not {max_faces}")
    check_num_frames(num_frames)
    if overlay_heatmap and overlay is None:
        raise UnmaskError("--overlay-heatmap needs --overlay OUT.mp4")
    if explain is not None and explain.exists() and not explain.is_dir():
        raise UnmaskError(f"--explain {explain} is a file; give a folder")
    inputs, skipped = find_inputs(paths)
    if overlay is not None and len(inputs) != 1:
        raise UnmaskError(f"--overlay takes one input video, not {len(inputs)}")
    # Outputs are checked before any judging: a folder or file that cannot be written costs one line.
    if explain is not None:
        try:
            ensure_out_dir(explain)
        except UnmaskError as exc:
            raise UnmaskError(f"--explain {explain} cannot be written: {str(exc)[0].lower()}{str(exc)[1:]}") from None
    if overlay is not None:
        check_output_file(overlay, "--overlay")
    if report is not None:
        from unmask.predict.report import check_report_path

        check_report_path(report, n_inputs=len(inputs))
    single = len(inputs) == 1
    from unmask.predict import Detector

    method_list = None
    if methods:
        from unmask.explain.cam import check_methods  # imports torch: after the cheap checks

        method_list = check_methods([m.strip() for m in methods.split(",") if m.strip()])
    if fmt is None:
        fmt = "text" if single else "table"
    detector = Detector.load(model, device=device, prior_fake=prior_fake)
    if not detector.can_explain and (explain is not None or overlay_heatmap):
        raise UnmaskError(f"--explain and --overlay-heatmap need the PyTorch model: {detector.explain_needs}")
    if skipped:
        names = ", ".join(str(p) for p in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        typer.secho(f"skipped {len(skipped)} files that are neither videos nor images: {names}", err=True, fg="yellow")
    on_interrupt(
        "interrupted: the verdicts printed above are all that was kept; "
        "run the command again on the inputs not yet judged"
    )

    results = predict_many(
        detector,
        inputs,
        num_frames=num_frames,
        explain_dir=explain,
        methods=method_list,
        max_faces=max_faces,
        keep_faces=report is not None,
    )
    failed = 0
    bar = tqdm(total=len(inputs), unit="file", desc="predict", disable=None if not single else True, leave=False)
    try:
        _header(fmt)
        for prediction in results:
            failed += prediction.reason_code == "unreadable"
            bar.update(1)
            if fmt == "text":
                typer.echo(_as_text(prediction))
            elif fmt == "jsonl" and single:
                typer.echo(prediction.to_json(indent=1))
            else:
                tqdm.write(_row(prediction, fmt))
    finally:
        bar.close()
    if overlay is not None:
        _write_overlay(detector, prediction, overlay, method_list, overlay_heatmap)
    if report is not None:
        from unmask.predict.report import write_report

        written = write_report(
            detector,
            prediction,
            report,
            methods=method_list,
            max_faces=max_faces,
            heatmaps=None if detector.can_explain else [],
        )
        typer.echo(f"report: {written}", err=True)
    if not single:
        typer.secho(
            f"{len(inputs)} inputs, {failed} unreadable" + (f", {len(skipped)} other files skipped" if skipped else ""),
            err=True,
            fg="yellow" if failed else None,
        )
    if failed:
        raise typer.Exit(EXIT_SOME_FAILED)


def check_output_file(path: Path, flag: str) -> None:
    """Refuse, before any work, an output file that cannot be written: its folder is made if
    missing and must be writable, and the path must not be a folder.

    Raises:
        UnmaskError: one line naming ``flag``.
    """
    from unmask.errors import UnmaskError
    from unmask.utils.outdir import ensure_out_dir

    try:
        if path.is_dir():
            raise UnmaskError(f"{flag} {path} is a folder; give a file name")
        ensure_out_dir(path.parent)
    except UnmaskError as exc:
        raise UnmaskError(f"{flag} {path} cannot be written: {str(exc)[0].lower()}{str(exc)[1:]}") from None
    except OSError as exc:  # a name too long ...
        raise UnmaskError(
            f"{flag} {str(path)[:120]} cannot be written ({exc.strerror or exc}); give another file"
        ) from None


def _write_overlay(detector, prediction, out: Path, methods, with_heatmaps: bool) -> None:
    from unmask.errors import UnmaskError
    from unmask.predict.overlay import write_overlay

    heatmaps = None
    if with_heatmaps and prediction.timeline:
        if prediction.faces is None:  # --explain was not asked for: cut the faces again
            prediction = detector.predict(prediction.input, keep_faces=True)
        method = (methods or ["gradcam"])[0]
        heatmaps = detector.explain(prediction, methods=[method], max_faces=len(prediction.timeline))
    try:
        write_overlay(prediction, out, heatmaps=heatmaps, margin=detector.prepare_config.margin)
    except OSError as exc:  # checked before judging, but a disk may fill up or a folder go away since
        raise UnmaskError(f"--overlay {out} could not be written ({exc.strerror or exc}); give another file") from None
    typer.echo(f"overlay: {out}", err=True)


def _as_text(p) -> str:
    """One input, for a person to read."""
    name = Path(p.input).name
    head = f"{name}: {p.verdict.upper()}"
    if p.p_fake is not None:
        head += f"  p(fake) {p.p_fake:.2f} (threshold {p.threshold:.2f})"
    lines = [head]
    if p.reason:
        lines.append(f"  why: {p.reason}")
    if p.note:
        lines.append(f"  note: {p.note}")
    if p.kind == "video" and p.frames_sampled:
        lines.append(
            f"  a face in {p.frames_with_face} of {p.frames_sampled} sampled frames; "
            f"{len(p.tracks)} {'person' if len(p.tracks) == 1 else 'people'}"
        )
    if len(p.tracks) > 1:
        for t in p.tracks:
            lines.append(
                f"  person #{t.track_id}: {t.verdict}, p(fake) {t.p_fake:.2f}, {t.n_faces} faces, "
                f"{t.first_s:.1f}-{t.last_s:.1f} s"
            )
    if p.kind == "video" and p.timeline:
        moments = ", ".join(f"{s.time_s:.1f} s ({s.p_fake:.2f})" for s in p.most_suspicious(3))
        lines.append(f"  most suspicious moments: {moments}")
    lines.append(f"  model {p.model.get('name')} ({p.model.get('run')}), {p.timings.get('total', 0):.1f} s")
    return "\n".join(lines)


def _header(fmt: str) -> None:
    if fmt == "table":
        typer.echo(f"{'verdict':<13} {'p_fake':>6} {'faces':>7} {'seconds':>7}  input")
    elif fmt == "csv":
        from unmask.predict.results_file import COLUMNS, csv_line

        typer.echo(csv_line(COLUMNS))


def _row(p, fmt: str) -> str:
    from unmask.predict.results_file import COLUMNS, csv_line, row_values

    if fmt == "jsonl":
        return p.to_json()
    v = row_values(p)
    if fmt == "csv":
        return csv_line([v[c] for c in COLUMNS])
    p_text = f"{p.p_fake:.2f}" if p.p_fake is not None else "-"
    faces = f"{p.frames_with_face}/{p.frames_sampled}"
    line = f"{p.verdict:<13} {p_text:>6} {faces:>7} {v['seconds']:>7}  {p.input}"
    remark = "; ".join(filter(None, [p.reason, p.note]))
    return f"{line}  ({remark})" if remark else line


def _predict_to_file(
    paths, model, out, fmt, engine, address, workers, num_frames, device, prior_fake, one_input_only
) -> None:
    """``--out FILE``: the verdicts into a file, resumably, on this machine or a Ray cluster."""
    from unmask.cli import on_interrupt
    from unmask.cli._progress import ProgressBars
    from unmask.errors import UnmaskError
    from unmask.predict.files import predict_files
    from unmask.utils.ray_cluster import check_engine

    check_engine(engine)
    if fmt in ("text", "table"):
        raise UnmaskError(f"--out writes jsonl, csv or parquet, not {fmt}")
    if out is None:
        raise UnmaskError(
            f"--engine {engine} and --format parquet write the verdicts to a file: add --out FILE"
            if engine != "local" or fmt == "parquet"
            else "--out FILE is missing"
        )
    if any(flag is not None for flag in one_input_only):
        raise UnmaskError("--explain, --overlay and --report are for judging on the terminal; leave out --out")
    if workers is not None and workers < 1:
        raise UnmaskError(f"--workers must be at least 1, not {workers}")
    check_output_file(out, "--out")
    on_interrupt(f"interrupted: the verdicts made so far are in {out}; run the same command again to judge the rest")
    bars = ProgressBars()
    try:
        summary = predict_files(
            model,
            paths,
            out,
            fmt=fmt,
            engine=engine,
            address=address,
            workers=workers,
            num_frames=num_frames,
            device=device,
            prior_fake=prior_fake,
            progress=bars,
        )
    finally:
        bars.close()
    if summary.others:
        typer.secho(f"skipped {len(summary.others)} files that are neither videos nor images", err=True, fg="yellow")
    typer.secho(
        f"{summary.inputs} inputs: {summary.judged} judged, {summary.done_before} judged before, "
        f"{summary.unreadable} unreadable; verdicts in {summary.out}",
        err=True,
        fg="yellow" if summary.unreadable else None,
    )
    if summary.unreadable:
        raise typer.Exit(EXIT_SOME_FAILED)
