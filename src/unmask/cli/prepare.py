"""``unmask prepare``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer

from unmask.cli import app
from unmask.cli._settings import settings_command, settings_help, settings_options
from unmask.errors import UnmaskError

EXIT_SOME_FAILED = 3


def prepare_choices() -> dict:
    """Each choice option's choices, read from the library when --help is shown."""
    from unmask.data.config import PrepareConfig
    from unmask.data.sources.ffpp import COMPRESSIONS, METHODS
    from unmask.video.sampling import SAMPLERS, FrameSampler

    choices = settings_help(PrepareConfig)
    choices["dataset"] = (sorted(choices["dataset"][0]), None)
    frames = FrameSampler()  # its options default to None: FrameSampler's own defaults, shown here
    return {
        **choices,
        "sampler": (SAMPLERS, f"default: {frames.strategy}"),
        "num_frames": (None, f"default: {frames.num_frames}"),
        "every_n": (None, f"default: {frames.every_n}"),
        "compression": (COMPRESSIONS, None),
        "methods": (None, f"any of {', '.join(METHODS)}"),
    }


@app.command("prepare", cls=settings_command(prepare_choices))
@settings_options(
    "unmask.data.config:PrepareConfig",
    after="out",
    fields_as={
        "sampler": ("sampler", "num_frames", "every_n"),
        "dataset_options": ("compression", "methods", "people"),
    },
)
def prepare_command(
    root: Path = typer.Argument(..., help="Dataset folder (for --dataset csv: the CSV file)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for crops and manifest.parquet."),
    sampler: Optional[str] = typer.Option(None, help="Which frames of each video (the frame sampler)."),
    num_frames: Optional[int] = typer.Option(
        None, help="Frames per video (uniform), or the most kept (others; 0 = all)."
    ),
    every_n: Optional[int] = typer.Option(None, help="Stride of --sampler stride."),
    compression: str = typer.Option("c23", help="FF++ only: which compression's videos."),
    methods: Optional[str] = typer.Option(
        None, metavar="METHOD,...", help="FF++ only: comma-separated methods (default: all found)."
    ),
    people: Optional[Path] = typer.Option(
        None,
        help="folder only: CSV of video,person (default ROOT/people.csv if present): a person's videos stay on one side of the video split.",
    ),
    engine: str = typer.Option(
        "local",
        "--engine",
        metavar="local|ray",
        help="Where videos are cropped: worker "
        "processes here, or the workers of a Ray cluster (pip install 'unmask[ray]'; --out "
        "on a filesystem they all see). Same outputs.",
    ),
    address: Optional[str] = typer.Option(
        None,
        "--address",
        help="--engine ray: the cluster to join (auto, ray://HOST:PORT); default: start one on this machine.",
    ),
    **settings,
):
    """Turn a video dataset into face crops and a manifest with train/val/test splits.

    \b
    Example: unmask prepare /data/FaceForensics++ --dataset ffpp --out runs/ffpp --workers 2

    \b
    On a Ray cluster: unmask prepare /shared/DFDC --dataset dfdc --out /shared/dfdc --engine ray --address auto
    """
    from unmask.cli import on_interrupt
    from unmask.cli._progress import ProgressBars
    from unmask.data.preparation import prepare  # imported per command: keeps --help fast
    from unmask.data.config import PrepareConfig
    from unmask.data.splits import EmptySplitWarning
    from unmask.video.sampling import FrameSampler

    options = {}
    if people is not None:
        if settings["dataset"] != "folder":
            raise UnmaskError("--people is for --dataset folder (the other layouts name their people themselves)")
        options["people"] = str(people)
    if settings["dataset"] == "ffpp":
        options["compression"] = compression
        if methods:
            options["methods"] = tuple(m.strip() for m in methods.split(",") if m.strip())
    config = PrepareConfig(
        sampler=FrameSampler(
            **{
                k: v
                for k, v in zip(("strategy", "num_frames", "every_n"), (sampler, num_frames, every_n))
                if v is not None
            }
        ),
        dataset_options=options,
        **settings,
    )
    if engine == "ray":
        on_interrupt(
            "interrupted: the Ray workers were stopped and the videos finished are kept; "
            "run the same command again to prepare the rest"
        )
    bars = ProgressBars()
    try:
        with warnings.catch_warnings():  # report_prepared says it with the command to run instead
            warnings.simplefilter("ignore", EmptySplitWarning)
            summary = prepare(root, out, config, progress=bars, engine=engine, address=address)
    finally:
        bars.close()
    typer.echo(
        f"{summary.videos} videos: {summary.processed} prepared, {summary.skipped} already done, "
        f"{summary.failed} failed; {summary.crops} face crops in {summary.seconds:.1f} s"
    )
    if summary.manifest:
        report_prepared(summary.manifest, summary.failures)
    if summary.excluded:
        typer.echo(
            f"video split: {summary.excluded} videos left out (their people fall on different sides; "
            "counted in the manifest's metadata under 'splits')"
        )
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
    typer.echo(
        f"written: {manifest_path} ({len(manifest)} crops of {manifest['video_id'].nunique()} videos)"
        + (f", {failures} (videos that gave no crop)" if failures else "")
    )
    typer.echo("splits, videos / crops:")
    usable = []
    for protocol, sizes in split_sizes(manifest).items():
        if set(sizes) == {"none"}:
            typer.echo(f"  {protocol:<9} none: this dataset has no {protocol} split")
            continue
        typer.echo(f"  {protocol:<9} " + ", ".join(f"{k} {v} / {c}" for k, (v, c) in sizes.items()))
        empty = empty_of.get(protocol, [])
        if empty:
            typer.secho(
                f"warning: the {protocol} protocol has no {' and no '.join(empty)} videos: "
                f"`unmask train --protocol {protocol}` "
                + (
                    "cannot train or validate on it"
                    if {"train", "val"} & set(empty)
                    else "will run, but `unmask evaluate` has no test split"
                )
                + "; prepare more videos",
                fg="yellow",
                err=True,
            )
        if {"train", "val"} <= set(sizes):
            usable.append(protocol)
    folder = shlex.quote(str(manifest_path.parent))
    if "video" in usable:
        typer.echo(f"next: unmask train {folder} --out runs/NAME   (the video protocol; see unmask train --help)")
    elif usable:
        leaks = " (frames of one video on both sides: optimistic figures)" if usable[0] == "paper" else ""
        typer.echo(f"next: unmask train {folder} --protocol {usable[0]} --out runs/NAME{leaks}")
