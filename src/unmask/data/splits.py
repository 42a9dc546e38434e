"""Split protocols, all written into the manifest so that results can be compared side by side.

- ``paper``: crops split at random, stratified by label, seed 42: 10% test, then 10% of the rest
  for validation, exactly as the paper (``train_test_split`` twice). Frames of one video land on
  both sides, so its test scores are inflated: kept to reproduce the paper, not to trust.
- ``video``: whole videos, grouped so that videos sharing a person or source clip (FF++ ``A``,
  ``B``, ``A_B`` and ``B_A``; Celeb-DF ``idX``) stay on one side; groups are drawn at random
  (seed 42, by a hash of each group's key, so that adding videos later moves only their own
  groups) until test and validation hold their share of each label (see :func:`video_groups`
  for the Celeb-DF caveat).
- ``official``: the dataset's own lists (FF++ 720/140/140, Celeb-DF's test list, DFDC's field, a
  CSV's ``split`` column). Where the lists name no validation set, one is carved out of the
  official training videos the way ``video`` does it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from typing import Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

PROTOCOLS = ("paper", "video", "official")
TEST_SIZE, VAL_SIZE, SEED = 0.1, 0.1, 42


def split_column(protocol: str) -> str:
    """Name of the manifest column that holds ``protocol``'s split."""
    return f"split_{protocol}"


def split_paper(labels: Sequence[int], *, seed: int = SEED, test_size: float = TEST_SIZE,
                val_size: float = VAL_SIZE) -> np.ndarray:
    """The paper's split of rows: ``(n,)`` array of ``train``/``val``/``test``."""
    labels = np.asarray(labels)
    index = np.arange(len(labels))
    out = np.full(len(labels), "train", dtype=object)
    if len(labels) < 3:
        return out
    rest, test = _stratified(index, labels, test_size, seed)
    _, val = _stratified(rest, labels[rest], val_size, seed)
    out[test], out[val] = "test", "val"
    return out


def _stratified(index, labels, size, seed):
    from sklearn.model_selection import (
        train_test_split,  # here: worker processes never need it
    )

    try:
        return train_test_split(index, test_size=size, random_state=seed, stratify=labels)
    except ValueError:  # a class too small to stratify: fall back to a plain random split
        logger.warning("too few crops of one class to stratify the paper split; splitting at random")
        return train_test_split(index, test_size=size, random_state=seed)


def group_videos(source_ids: Sequence[Sequence[str]]) -> list[str]:
    """Group videos that share any source id (union-find); returns one group key per video."""
    parent: dict[str, str] = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for ids in source_ids:
        for other in ids[1:]:
            a, b = find(ids[0]), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [find(ids[0]) for ids in source_ids]


def video_groups(source_ids: Sequence[Sequence[str]], *, max_share: float = 0.5) -> list[str]:
    """Groups for the ``video`` split: shared sources joined, unless that joins too much.

    Face swaps link two people, and in Celeb-DF-v2 the links chain nearly every celebrity into one
    group, which leaves nothing to hold out. When one group would hold more than ``max_share`` of
    the videos, videos are grouped by their own person or source clip (the first source id)
    instead: no clip and no filmed person is then on two sides, but a swapped-in face can be.
    """
    groups = group_videos(source_ids)
    if groups and Counter(groups).most_common(1)[0][1] > max_share * len(groups):
        logger.warning("shared sources join %d of %d videos into one group; grouping the video split by "
                       "each video's own source instead", Counter(groups).most_common(1)[0][1], len(groups))
        groups = [ids[0] for ids in source_ids]
    return groups


def split_groups(labels: Sequence[int], groups: Sequence[str], *, seed: int = SEED, test_size: float = TEST_SIZE,
                 val_size: float = VAL_SIZE, splits: Sequence[str] = ("test", "val")) -> np.ndarray:
    """Split videos so that no group is on two sides, each side holding its share of each label.

    Args:
        labels: ``(n_videos,)`` labels.
        groups: ``(n_videos,)`` group keys from :func:`group_videos`.
        splits: which held-out splits to fill (``("val",)`` to carve only a validation set).

    Returns:
        ``(n_videos,)`` array of ``train``/``val``/``test``. With fewer groups than splits, test is
        filled before val and train always keeps at least one group.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    counts: dict[str, Counter] = defaultdict(Counter)
    for label, group in zip(labels, groups):
        counts[group][int(label)] += 1
    totals = Counter(int(x) for x in labels)
    # Each group's place in the draw comes from a seeded hash of its own key, not from a shuffle
    # of all keys: a video added or failing later moves only its own group, not the whole split.
    remaining = sorted(counts, key=lambda g: hashlib.sha1(f"{seed}:{g}".encode()).hexdigest())
    fraction = {"test": test_size, "val": val_size * (1 - test_size) if "test" in splits else val_size}
    split_of: dict[str, str] = {}
    for split in splits:
        target = {label: fraction[split] * n for label, n in totals.items()}
        have = Counter()
        for group in list(remaining):
            if len(remaining) <= 1 or all(have[label] >= target[label] for label in totals):
                break
            if any(counts[group][label] and have[label] < target[label] for label in totals):
                split_of[group] = split
                have.update(counts[group])
                remaining.remove(group)
    return np.array([split_of.get(str(g), "train") for g in groups], dtype=object)


def add_splits(crops: pd.DataFrame, *, seed: int = SEED) -> pd.DataFrame:
    """Return ``crops`` with a ``split_<protocol>`` column for each of :data:`PROTOCOLS`.

    ``crops`` needs ``label``, ``video_id``, ``source_ids`` (``|``-joined) and ``official_split``.
    Rows are put in a fixed order first, so that the same crops always get the same splits.
    """
    df = crops.sort_values(["video_id", "frame_index", "track_id"], kind="stable").reset_index(drop=True)
    df[split_column("paper")] = split_paper(df["label"].to_numpy(), seed=seed)

    videos = df.drop_duplicates("video_id")[["video_id", "label", "source_ids", "official_split"]]
    groups = video_groups([s.split("|") for s in videos["source_ids"]])
    video_split = split_groups(videos["label"].to_numpy(), groups, seed=seed)
    df[split_column("video")] = df["video_id"].map(dict(zip(videos["video_id"], video_split)))

    official = videos["official_split"].to_numpy(dtype=object)
    has_official = pd.notna(official)
    if has_official.any() and "val" not in set(official[has_official]):
        train = np.flatnonzero(official == "train")
        carved = split_groups(videos["label"].to_numpy()[train], [groups[i] for i in train], seed=seed, splits=("val",))
        official = official.copy()
        official[train] = carved
    df[split_column("official")] = df["video_id"].map(dict(zip(videos["video_id"], official)))
    return df
