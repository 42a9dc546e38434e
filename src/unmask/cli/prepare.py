"""``unmask prepare``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer

from unmask.cli import app
from unmask.cli._help import with_code_help
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


def prepare_choices() -> dict:
    """Each choice option's choices, read from the library when --help is shown."""
    from unmask.data.config import IMAGE_FORMATS
    from unmask.data.sources import DATASETS
    from unmask.data.sources.ffpp import COMPRESSIONS, METHODS
    from unmask.faces.detectors import DETECTORS
    from unmask.faces.extract import KEEP_MODES
    from unmask.video.sampling import SAMPLERS

    return {"dataset": (sorted(DATASETS), None), "sampler": (SAMPLERS, None), "detector": (list(DETECTORS), None),
            "keep": (KEEP_MODES, None), "image_format": (IMAGE_FORMATS, None), "compression": (COMPRESSIONS, None),
            "methods": (None, f"any of {', '.join(METHODS)}")}


@app.command("prepare", cls=with_code_help(prepare_choices))
def prepare_command(
    root: Path = typer.Argument(..., help="Dataset folder (for --dataset csv: the CSV file)."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Layout of ROOT."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for crops and manifest.parquet."),
    sampler: str = typer.Option("uniform", help="Which frames of each video (the frame sampler)."),
    num_frames: int = typer.Option(32, help="Frames per video (uniform), or the most kept (others; 0 = all)."),
    every_n: int = typer.Option(10, help="Stride of --sampler stride."),
    detector: str = typer.Option("mtcnn", help="Face detector."),
    margin: float = typer.Option(1.3, help="Crop side over the face box's longer side."),
    size: int = typer.Option(224, help="Crop side in pixels."),
    keep: str = typer.Option("largest", help="The largest face per frame, or all faces linked into tracks."),
    max_side: int = typer.Option(
        640, help="The first pass detects on frames shrunk to this many px on their longer side (0: full size)."),
    second_pass: bool = typer.Option(
        True, help="Look again (1280 px, contrast-equalised luma) at frames where the 640 px pass found no face."),
    near_pass: bool = typer.Option(
        True, help="Search frames still without a face near where the face was in the frames around them."),
    bridge_max_gap: int = typer.Option(
        2, help="Bridge gaps of up to this many sampled frames in a face track (0: never)."),
    image_format: str = typer.Option("png", help="png (lossless) or jpg."),
    compression: str = typer.Option("c23", help="FF++ only: which compression's videos."),
    methods: Optional[str] = typer.Option(None, metavar="METHOD,...", help="FF++ only: comma-separated methods (default: all found)."),
    workers: int = typer.Option(1, help="Worker processes (one per core is a good start)."),
    shard: Optional[str] = typer.Option(None, help="K/N: do only the K-th of N parts; combine with `unmask merge`."),
    device: Optional[str] = typer.Option(None, help="Torch device for --detector facenet (default: cuda if there is one)."),
    people: Optional[Path] = typer.Option(
        None, help="folder only: CSV of video,person (default ROOT/people.csv if present): a person's videos stay on one side of the video split."),
    split_seed: int = typer.Option(42, help="Seed of the paper and video splits."),
    split_fractions: str = typer.Option("0.81,0.09,0.1", help="train,val,test shares of the paper and video splits (the paper's: 10% test, then 10% of the rest)."),
):
    """Turn a video dataset into face crops and a manifest with train/val/test splits.

    \b
    Example: unmask prepare /data/FaceForensics++ --dataset ffpp --out runs/ffpp --workers 2
    """
    from unmask.cli._progress import ProgressBars
    from unmask.data.preparation import PrepareConfig, prepare  # imported per command: keeps --help fast
    from unmask.data.splits import EmptySplitWarning
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
        max_side=max_side,
        second_pass=second_pass,
        near_pass=near_pass,
        bridge_max_gap=bridge_max_gap,
        image_format=image_format,
        dataset_options=options,
        workers=workers,
        shard=parse_shard(shard),
        device=device,
        split_seed=split_seed,
        split_fractions=parse_fractions(split_fractions),
    )
    bars = ProgressBars()
    try:
        with warnings.catch_warnings():  # report_prepared says it with the command to run instead
            warnings.simplefilter("ignore", EmptySplitWarning)
            summary = prepare(root, out, config, progress=bars)
    finally:
        bars.close()
    typer.echo(
        f"{summary.videos} videos: {summary.processed} prepared, {summary.skipped} already done, "
        f"{summary.failed} failed; {summary.crops} face crops in {summary.seconds:.1f} s"
    )
    if summary.manifest:
        report_prepared(summary.manifest, summary.failures)
    if summary.excluded:
        typer.echo(f"video split: {summary.excluded} videos left out (their people fall on different sides; "
                   "counted in the manifest's metadata under 'splits')")
    if summary.failures:
        typer.secho(f"{summary.failed} videos failed; reasons in {summary.failures}", fg="yellow", err=True)
        raise typer.Exit(EXIT_SOME_FAILED)


def split_sizes(manifest) -> dict[str, dict[str, tuple[int, int]]]:
    """``{protocol: {split: (videos, crops)}}`` of a manifest (a video counts in each split it has crops in)."""
    from unmask.data.splits import PROTOCOLS, split_column

    sizes = {}
    for protocol in PROTOCOLS:
        column = split_column(protocol)
        if column in manifest:
            grouped = manifest.groupby(manifest[column].fillna("none"))["video_id"]
            found = {str(k): (int(g.nunique()), int(len(g))) for k, g in grouped}
            order = [k for k in ("train", "val", "test") if k in found] + sorted(set(found) - {"train", "val", "test"})
            sizes[protocol] = {k: found[k] for k in order}
    return sizes


def report_prepared(manifest_path: Path, failures: Optional[Path]) -> None:
    """Say what a prepared folder holds (split sizes per protocol, with a warning for an empty
    split) and what to run next."""
    import shlex

    from unmask.data.manifest import read_manifest
    from unmask.data.splits import empty_splits, split_counts

    manifest, _ = read_manifest(manifest_path, need_splits=False)
    empty_of = empty_splits(split_counts(manifest))
    typer.echo(f"written: {manifest_path} ({len(manifest)} crops of {manifest['video_id'].nunique()} videos)"
               + (f", {failures} (videos that gave no crop)" if failures else ""))
    typer.echo("splits, videos / crops:")
    usable = []
    for protocol, sizes in split_sizes(manifest).items():
        if set(sizes) == {"none"}:
            typer.echo(f"  {protocol:<9} none: this dataset has no {protocol} split")
            continue
        typer.echo(f"  {protocol:<9} " + ", ".join(f"{k} {v} / {c}" for k, (v, c) in sizes.items()))
        empty = empty_of.get(protocol, [])
        if empty:
            typer.secho(f"warning: the {protocol} protocol has no {' and no '.join(empty)} videos: "
                        f"`unmask train --protocol {protocol}` " + ("cannot train or validate on it"
                                                                     if {"train", "val"} & set(empty) else
                                                                     "will run, but `unmask evaluate` has no test split")
                        + "; prepare more videos", fg="yellow", err=True)
        if {"train", "val"} <= set(sizes):
            usable.append(protocol)
    folder = shlex.quote(str(manifest_path.parent))
    if "video" in usable:
        typer.echo(f"next: unmask train {folder} --out runs/NAME   (the video protocol; see unmask train --help)")
    elif usable:
        leaks = " (frames of one video on both sides: optimistic figures)" if usable[0] == "paper" else ""
        typer.echo(f"next: unmask train {folder} --protocol {usable[0]} --out runs/NAME{leaks}")
