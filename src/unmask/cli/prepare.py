"""``unmask prepare`` and ``unmask merge``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from tqdm import tqdm

from unmask.cli import app
from unmask.errors import UnmaskError

EXIT_SOME_FAILED = 3


def parse_shard(text: Optional[str]) -> tuple[int, int] | None:
    """``"2/8"`` -> ``(2, 8)``."""
    if not text:
        return None
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UnmaskError(f"--shard must look like K/N (e.g. 2/8), not {text!r}") from None
    return k, n


def parse_fractions(text: str) -> tuple[float, ...]:
    """``"0.8,0.1,0.1"`` -> ``(0.8, 0.1, 0.1)`` (checked by :class:`PrepareConfig`)."""
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise UnmaskError(f"--split-fractions must look like 0.8,0.1,0.1 (train,val,test), not {text!r}") from None


@app.command("prepare")
def prepare_command(
    root: Path = typer.Argument(..., help="Dataset folder (for --dataset csv: the CSV file)."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Layout: celebdf, ffpp, dfdc, folder or csv."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for crops and manifest.parquet."),
    sampler: str = typer.Option("uniform", help="Frames: uniform, stride, codec_keyframes, content_keyframes."),
    num_frames: int = typer.Option(32, help="Frames per video (uniform), or the most kept (others; 0 = all)."),
    every_n: int = typer.Option(10, help="Stride of --sampler stride."),
    detector: str = typer.Option("mtcnn", help="Face detector: mtcnn, facenet or haar."),
    margin: float = typer.Option(1.3, help="Crop side over the face box's longer side."),
    size: int = typer.Option(224, help="Crop side in pixels."),
    keep: str = typer.Option("largest", help="largest face per frame, or all faces linked into tracks."),
    second_pass: bool = typer.Option(
        True, help="Look again (1280 px, contrast-equalised luma) at frames where the 640 px pass found no face."),
    bridge_max_gap: int = typer.Option(
        2, help="Bridge gaps of up to this many sampled frames in a face track (0: never)."),
    image_format: str = typer.Option("png", help="png (lossless) or jpg."),
    compression: str = typer.Option("c23", help="FF++ only: raw, c23 or c40."),
    methods: Optional[str] = typer.Option(None, help="FF++ only: comma-separated methods (default: all found)."),
    workers: int = typer.Option(1, help="Worker processes (one per core is a good start)."),
    shard: Optional[str] = typer.Option(None, help="K/N: do only the K-th of N parts; combine with `unmask merge`."),
    device: Optional[str] = typer.Option(None, help="Torch device for --detector facenet (default: cuda if there is one)."),
    people: Optional[Path] = typer.Option(
        None, help="folder only: CSV of video,person (default ROOT/people.csv if present): a person's videos stay on one side of the video split."),
    split_seed: int = typer.Option(42, help="Seed of the paper and video splits."),
    split_fractions: str = typer.Option("0.81,0.09,0.1", help="train,val,test shares of the paper and video splits (the paper's: 10% test, then 10% of the rest)."),
):
    """Turn a video dataset into face crops and a manifest with train/val/test splits.

    Example: unmask prepare /data/FaceForensics++ --dataset ffpp --out runs/ffpp --workers 2
    """
    from unmask.data.preparation import PrepareConfig, prepare  # imported per command: keeps --help fast
    from unmask.video.sampling import FrameSampler

    options = {}
    if people is not None:
        if dataset != "folder":
            raise UnmaskError("--people is for --dataset folder (the other layouts name their people themselves)")
        options["people"] = str(people)
    if dataset == "ffpp":
        options["compression"] = compression
        if methods:
            options["methods"] = tuple(m.strip() for m in methods.split(",") if m.strip())
    config = PrepareConfig(
        dataset=dataset,
        sampler=FrameSampler(sampler, num_frames, every_n),
        detector=detector,
        margin=margin,
        size=size,
        keep=keep,
        second_pass=second_pass,
        bridge_max_gap=bridge_max_gap,
        image_format=image_format,
        dataset_options=options,
        workers=workers,
        shard=parse_shard(shard),
        device=device,
        split_seed=split_seed,
        split_fractions=parse_fractions(split_fractions),
    )
    bar = None

    def progress(state):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=state.total, unit="video", desc="prepare", disable=None)
        bar.n = state.done + state.skipped
        bar.set_postfix(faces=state.crops, failed=state.failed, refresh=False)
        bar.refresh()

    try:
        summary = prepare(root, out, config, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    typer.echo(
        f"{summary.videos} videos: {summary.processed} prepared, {summary.skipped} already done, "
        f"{summary.failed} failed; {summary.crops} face crops in {summary.seconds:.1f} s"
    )
    if summary.manifest:
        typer.echo(f"manifest: {summary.manifest}")
    if summary.excluded:
        typer.echo(f"video split: {summary.excluded} videos left out (their people fall on different sides; "
                   "counted in the manifest's metadata under 'splits')")
    if summary.failures:
        typer.secho(f"{summary.failed} videos failed; reasons in {summary.failures}", fg="yellow", err=True)
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command("merge")
def merge_command(
    shards: list[Path] = typer.Argument(..., help="Output folders of `unmask prepare --shard K/N` runs."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the combined manifest.parquet."),
):
    """Combine the manifests of sharded prepare runs into one, with splits over all videos.

    Example: unmask merge runs/part1 runs/part2 --out runs/all
    """
    from unmask.data.preparation import merge_manifests

    path = merge_manifests(shards, out)
    typer.echo(f"manifest: {path}")
