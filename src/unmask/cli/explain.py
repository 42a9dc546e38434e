"""``unmask explain``."""

from __future__ import annotations

from pathlib import Path

import typer

from unmask.cli import app
from unmask.cli._help import methods_note, with_code_help


@app.command("explain", cls=with_code_help(methods_note))
def explain_command(
    run_dir: Path = typer.Argument(..., help="Run folder of `unmask train`."),
    path: Path = typer.Argument(..., help="A face image or a video."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the heatmap PNGs and explanations.json."),
    methods: str = typer.Option(
        "smoothgrad,gradcam,gradcam++,scorecam",
        metavar="METHOD,...",
        help="Comma-separated explanation methods (scorecam is slow on a CPU).",
    ),
    max_faces: int = typer.Option(8, help="Explain the N most suspicious faces of a video."),
    is_crop: bool = typer.Option(False, "--is-crop", help="The image is already a face crop: skip face detection."),
    num_frames: int = typer.Option(None, help="Frames to sample from a video (default: as the training data was)."),
    device: str = typer.Option(None, help="cpu, cuda ... (default: a GPU if there is one)."),
):
    """Show why a face looks fake: heatmaps over the face, with a faithfulness score each.

    \b
    Example: unmask explain runs/xception-paper suspicious.mp4 --out why/ --methods gradcam,scorecam
    """
    from unmask.cli._progress import ProgressBars
    from unmask.explain.explainer import sheet_name
    from unmask.predict.explanation import explain_file

    bars = ProgressBars()
    try:
        explanations = explain_file(
            run_dir,
            path,
            out,
            methods=[m.strip() for m in methods.split(",") if m.strip()],
            max_faces=max_faces,
            is_crop=is_crop,
            num_frames=num_frames,
            device=device,
            progress=bars,
        )
    finally:
        bars.close()
    for e in explanations:
        score = f"{e.faithfulness:+.3f}" if e.faithfulness == e.faithfulness else "n/a (flat map)"
        typer.echo(
            f"frame {e.frame_index:5d} track {e.track_id}  p(fake) {e.p_fake:.3f}  {e.method:<10} "
            f"faithfulness {score}  {out / e.png}"
        )
    typer.echo(f"written: {len(explanations)} heatmaps and the faces, in {out}")
    typer.echo(f"contact sheet: {out / sheet_name(path.stem)}")
    typer.echo(f"index of every heatmap: {out / 'explanations.json'} (scores and faithfulness per heatmap)")
    if not is_crop:  # predict finds the faces itself: a crop is no input for it
        typer.echo(f"next: unmask predict {path} --model {run_dir} (the verdict for the whole input)")
