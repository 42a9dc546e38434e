"""The manifest: one row per face crop, the only thing training and evaluation read.

Columns (fake = 1 is the positive class):

============== =========================================================================
crop_path      crop image, relative to the manifest's folder
dataset        adapter name (``ffpp``, ``celebdf`` ...)
video_id       the video's id within the dataset
video_path     the video file as prepare saw it
label          1 fake, 0 real
method         manipulation method (fakes) or real source (reals)
source_id      the person or source clip the video is of (its first source id)
source_ids     all people/source clips it involves, ``|``-joined (FF++ fake: ``A|B``)
frame_index    frame number in display order
time_s         presentation time in seconds
track_id       face track within the video (0 when only the largest face is kept)
det_score      the detector's confidence
x1 y1 x2 y2    detection box in frame pixels
det_pass       how the face was found: ``1`` first pass, ``2`` second pass, ``small`` the
               small-face pass (a large frame looked at in full), ``3`` third pass
               (searched near the face of the frames around), ``bridged`` box interpolated
               across a gap in its face track (det_score 0.0)
left_eye_x ... the detector's five landmarks in frame pixels (``left_eye``, ``right_eye``,
mouth_right_y  ``nose``, ``mouth_left``, ``mouth_right``; ``_x`` and ``_y``); NaN without
               them (haar, bridged crops)
crop_x1 ...    the square the crop was cut from, in frame pixels (maps landmarks into the
crop_y2        crop; NaN in manifests written before it was recorded)
official_split the dataset's own split of the video, where it has one
video_hash     the video file's content fingerprint (SHA-256 of its size, first and last
               64 KiB): the same video prepared elsewhere has the same one (absent in older
               manifests)
label_level    ``face``: the label is known to hold for this face; ``video``: it is the
               video's label only (see :func:`label_levels`; absent in older manifests)
split_paper    ``train``/``val``/``test`` under each protocol (see :mod:`unmask.data.splits`);
split_video    ``excluded``: the video joins people held on different sides (``video``
split_official protocol only), used by none of them
============== =========================================================================

``det_pass``, the landmarks, the crop square and ``video_hash`` are absent from manifests written before they existed; nothing
requires them.

The Parquet file's metadata holds how it was made (``unmask`` key, JSON).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from unmask.data.splits import PROTOCOLS, split_column
from unmask.errors import ManifestError, unknown_name
from unmask.faces.crop import CROP_BOX_COLUMNS
from unmask.faces.detectors import LANDMARK_COLUMNS
from unmask.utils.atomic import atomic_path

MANIFEST_NAME = "manifest.parquet"
CROP_COLUMNS = [
    "crop_path",
    "dataset",
    "video_id",
    "video_path",
    "label",
    "method",
    "source_id",
    "source_ids",
    "frame_index",
    "time_s",
    "track_id",
    "det_score",
    "x1",
    "y1",
    "x2",
    "y2",
    "official_split",
]
# Written by today's prepare, but not required: manifests made before them still load.
FACE_COLUMNS = ["det_pass", *LANDMARK_COLUMNS, *CROP_BOX_COLUMNS]
VIDEO_HASH_COLUMN = "video_hash"  # the video file's content fingerprint (unmask.utils.provenance.file_fingerprint)
SPLIT_COLUMNS = [split_column(p) for p in PROTOCOLS]


def write_manifest(df: pd.DataFrame, path: str | Path, metadata: dict) -> Path:
    """Write ``df`` to ``path`` atomically, with ``metadata`` in the file's key-value metadata."""
    path = Path(path)
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"unmask": json.dumps(metadata).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_manifest(path: str | Path, *, need_splits: bool = True) -> tuple[pd.DataFrame, dict]:
    """Read a manifest (a file, or the folder holding ``manifest.parquet``) and its metadata.

    Raises:
        ManifestError: missing or unreadable file, missing columns, or (with ``need_splits``) a
            shard manifest that has not been merged yet.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / MANIFEST_NAME).is_file() and any(path.glob("manifest.shard-*.parquet")):
            raise ManifestError(
                f"{path} holds the output of sharded runs; combine the shards with `unmask merge` first"
            )
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"No manifest at {path}; run `unmask prepare` first")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ManifestError(f"{path} is not a readable manifest ({exc}); run `unmask prepare` again") from exc
    metadata = json.loads((table.schema.metadata or {}).get(b"unmask", b"{}"))
    df = table.to_pandas()
    check_manifest(df, path, need_splits=need_splits)
    return df, metadata


def check_manifest(df: pd.DataFrame, path: Path | str = "manifest", *, need_splits: bool = True) -> None:
    """Raise :class:`ManifestError` if ``df`` lacks a column a later stage reads."""
    missing = [c for c in CROP_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{path} lacks columns {', '.join(missing)}; prepare it again with this unmask")
    bad = sorted(set(df["label"].dropna().unique().tolist()) - {0, 1}, key=str) if len(df) else []
    if bad or (len(df) and df["label"].isna().any()):
        raise ManifestError(
            f"{path} has labels other than 0 (real) and 1 (fake): {bad or ['missing']}; fix the "
            "labels and prepare it again"
        )
    if need_splits and any(c not in df.columns for c in SPLIT_COLUMNS):
        raise ManifestError(f"{path} is one shard of a sharded run; combine the shards with `unmask merge` first")


LABEL_LEVELS = ("face", "video")


def label_levels(df: pd.DataFrame) -> pd.Series:
    """Whether each crop's label holds for its own face (``face``) or only for its video (``video``).

    No adapter says which face of a fake video was swapped, so: every face of a real video is
    real (``face``); a fake video with one face track has that face swapped (``face``); in a
    fake video with several tracks (``--keep all``) the others may be real bystanders, so their
    crops carry the video's label only (``video``). ``train --label-level face`` leaves those out.
    """
    tracks = df.groupby("video_id")["track_id"].transform("nunique")
    return pd.Series(
        ["video" if label == 1 and n > 1 else "face" for label, n in zip(df["label"], tracks)],
        index=df.index,
        dtype=object,
    )


def select_label_level(rows: pd.DataFrame, level: str) -> pd.DataFrame:
    """``rows`` to train on: all of them (``video``), or only those labelled per face (``face``)."""
    if level == "video":
        return rows
    if "label_level" not in rows.columns:
        raise ManifestError(
            "This manifest does not record label levels; prepare it again with this unmask "
            "to train with label_level face",
            "label_level",
        )
    kept = rows[rows["label_level"] == "face"]
    if kept.empty:
        raise ManifestError("No crop of the training split is labelled per face; use label_level video", "label_level")
    return kept


def select_split(df: pd.DataFrame, protocol: str, split: str) -> pd.DataFrame:
    """Rows of ``df`` in ``split`` (``train``/``val``/``test``) under ``protocol``."""
    if protocol not in PROTOCOLS:
        raise unknown_name("split protocol", protocol, PROTOCOLS)
    column = split_column(protocol)
    if column not in df.columns:
        raise ManifestError(f"The manifest has no {protocol!r} split; prepare it again with this unmask")
    rows = df[df[column] == split]
    if rows.empty:
        raise ManifestError(
            f"The manifest's {protocol!r} protocol has no {split!r} videos; choose another protocol", "protocol"
        )
    return rows
