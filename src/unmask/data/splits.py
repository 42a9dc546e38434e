"""Split protocols, all written into the manifest so that results can be compared side by side.

- ``paper``: crops split at random, stratified by label, seed 42: 10% test, then 10% of the rest
  for validation, exactly as the paper (``train_test_split`` twice). Frames of one video land on
  both sides, so its test scores are inflated: kept to reproduce the paper, not to trust.
- ``video``: whole videos, and no person (source id: FF++ ``A`` and ``B`` of ``A_B``, Celeb-DF
  ``idX``) on two sides. People are assigned to sides, whole linked groups first (seed 42, by a
  hash of each group, so that adding videos later moves only their own group); a video whose
  people end up on different sides (only when a linked group must be cut, as Celeb-DF's chained
  swaps force) is ``excluded``, and counted in the manifest and the prepare summary (see
  :func:`split_identities`).
- ``official``: the dataset's own lists (FF++ 720/140/140, Celeb-DF's test list, DFDC's field, a
  CSV's ``split`` column). Where the lists name no validation set, one is carved out of the
  official training videos the way ``video`` does it.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Sequence

import numpy as np

from unmask.errors import SettingError

if TYPE_CHECKING:  # pandas is imported where used: prepare's worker processes import this module
    import pandas as pd

logger = logging.getLogger(__name__)

PROTOCOLS = ("paper", "video", "official")
TEST_SIZE, VAL_SIZE, SEED = 0.1, 0.1, 42
# (train, val, test) shares: the paper's 10% test, then 10% of the rest for validation.
DEFAULT_FRACTIONS = (0.81, 0.09, 0.1)


def check_fractions(fractions) -> tuple[float, float, float]:
    """``(train, val, test)`` shares as floats, or a :class:`SettingError` if they are not shares of one whole."""
    try:
        train, val, test = (float(f) for f in fractions)
    except (TypeError, ValueError):
        raise SettingError(
            f"split_fractions must be three numbers (train, val, test), not {fractions!r}", "split_fractions"
        ) from None
    if not all(0.0 <= f <= 1.0 for f in (train, val, test)) or abs(train + val + test - 1.0) > 1e-6 or train <= 0:
        raise SettingError(
            f"split_fractions (train, val, test) must be shares in [0, 1] that add up to 1, with some "
            f"left for training; not {train:g}, {val:g}, {test:g}",
            "split_fractions",
        )
    return train, val, test


def split_sizes(fractions) -> tuple[float, float]:
    """``(test_size, val_size)`` as :func:`split_paper` takes them: test of all, then val of the rest."""
    train, val, test = check_fractions(fractions)
    # rounded: 0.09 / 0.9 must give the paper's 0.1 exactly (sklearn takes ceil(size * n) rows)
    return test, round(val / (train + val), 12)


def split_column(protocol: str) -> str:
    """Name of the manifest column that holds ``protocol``'s split."""
    return f"split_{protocol}"


def split_paper(
    labels: Sequence[int], *, seed: int = SEED, test_size: float = TEST_SIZE, val_size: float = VAL_SIZE
) -> np.ndarray:
    """The paper's split of rows: ``(n,)`` array of ``train``/``val``/``test``."""
    labels = np.asarray(labels)
    index = np.arange(len(labels))
    out = np.full(len(labels), "train", dtype=object)
    if len(labels) < 3:
        return out
    rest, test = _stratified(index, labels, test_size, seed) if test_size > 0 else (index, index[:0])
    _, val = _stratified(rest, labels[rest], val_size, seed) if val_size > 0 else (rest, rest[:0])
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


def identity_components(source_ids: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
    """People (source ids), the linked group of each, and the people of each video.

    Two people are linked when a video involves both (a face swap); the groups are the connected
    components of that graph (scipy's ``connected_components``).

    Returns:
        ``(people, component of each person, person indices of each video)``.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    people = sorted({p for ids in source_ids for p in ids})
    index = {p: i for i, p in enumerate(people)}
    members = [np.unique([index[p] for p in ids]) for ids in source_ids]
    pairs = np.array([(m[0], other) for m in members for other in m[1:]], dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(people), len(people)))
    _, component = connected_components(graph, directed=False)
    return people, component, members


def split_identities(
    labels: Sequence[int],
    source_ids: Sequence[Sequence[str]],
    *,
    seed: int = SEED,
    test_size: float = TEST_SIZE,
    val_size: float = VAL_SIZE,
    splits: Sequence[str] = ("test", "val"),
) -> np.ndarray:
    """Split videos so that no person (source id) is on two sides.

    People, not videos, are assigned to sides; a video whose people end up on different sides is
    ``excluded`` (used by no side). Each held-out side is filled in turn up to its share of each
    label, by a greedy assignment argued as follows:

    1. Whole groups of linked people (FF++'s ``A``, ``B``, ``A_B``, ``B_A``) cost no exclusion: they
       are taken first, in the order of a seeded hash of their first person (adding videos later
       moves only their own group), each one that still fits the side's remaining share.
    2. When none fits, the group that overshoots least is taken, if it overshoots by less than it
       fills (or the side is still empty: a held-out side beats none).
    3. When only groups holding more than half of all videos are left (Celeb-DF's swaps chain
       nearly every celebrity into one), one is cut: the side grows from one person by adding, each time, the
       person who completes the most videos inside the side (a tight cluster, so few videos cross
       the cut), until the side holds its share of videos.

    Args:
        labels: ``(n_videos,)`` labels.
        source_ids: the people (or source clips) of each video.
        splits: which held-out splits to fill (``("val",)`` to carve only a validation set).

    Returns:
        ``(n_videos,)`` array of ``train``/``val``/``test``/``excluded``. Train always keeps at
        least one person. A side that misses its share by more than half is logged as a warning.
    """
    labels = np.asarray(labels, dtype=int)
    if len(labels) == 0:
        return np.array([], dtype=object)
    groups = _LinkedGroups(labels, source_ids, seed)
    fraction = {"test": test_size, "val": val_size * (1 - test_size) if "test" in splits else val_size}
    for split in splits:
        _fill_side(groups, split, {c: fraction[split] * sum(labels == c) for c in groups.classes})
    out = groups.video_sides()
    for split in splits:
        for c in groups.classes:
            want, got = fraction[split] * sum(labels == c), int(((out == split) & (labels == c)).sum())
            if want >= 2 and abs(got - want) > want / 2:
                logger.warning(
                    "the %s split holds %d videos labelled %d where its share is %.0f: linked people "
                    "cannot be split closer to the ratios",
                    split,
                    got,
                    c,
                    want,
                )
    return out


class _LinkedGroups:
    """The people of :func:`split_identities`'s videos, their linked groups (in seeded hash order)
    and the side each person is given so far."""

    def __init__(self, labels: np.ndarray, source_ids: Sequence[Sequence[str]], seed: int):
        self.labels = labels
        self.people, component, self.members = identity_components(source_ids)
        self.videos_of: list[list[int]] = [[] for _ in self.people]
        for v, m in enumerate(self.members):
            for p in m:
                self.videos_of[p].append(v)
        self.rank = {p: hashlib.sha1(f"{seed}:{name}".encode()).hexdigest() for p, name in enumerate(self.people)}
        self.side = np.full(len(self.people), None, dtype=object)
        self.classes = sorted(set(labels.tolist()))
        self.assigned = 0  # people given a held-out side so far
        self.comp_people: dict[int, list[int]] = defaultdict(list)
        for p in sorted(range(len(self.people)), key=self.rank.get):
            self.comp_people[int(component[p])].append(p)
        self.comp_size = {c: Counter() for c in self.comp_people}
        for v in range(len(labels)):
            self.comp_size[int(component[self.members[v][0]])][int(labels[v])] += 1
        self.order = sorted(self.comp_people, key=lambda c: self.rank[self.comp_people[c][0]])

    def unassigned_people(self) -> int:
        return len(self.people) - self.assigned

    def is_free(self, c) -> bool:
        return self.side[self.comp_people[c][0]] is None

    def videos(self, c) -> int:
        return sum(self.comp_size[c].values())

    def video_sides(self) -> np.ndarray:
        """Each video's side: its people's, ``excluded`` if they are on several, else ``train``."""
        out = np.full(len(self.labels), "train", dtype=object)
        for v, m in enumerate(self.members):
            sides = {self.side[p] for p in m}
            if len(sides) > 1:
                out[v] = "excluded"
            elif None not in sides:
                out[v] = sides.pop()
        return out


def _fill_side(groups: _LinkedGroups, split: str, target: dict[int, float]) -> None:
    """Give ``split`` linked groups until it holds ``target`` videos of each label (steps 1 to 3
    of :func:`split_identities`)."""
    have = Counter()
    comp_size, comp_people, order = groups.comp_size, groups.comp_people, groups.order

    def need(counts) -> float:  # how much of the remaining share ``counts`` would fill
        return sum(min(counts[c], max(0.0, target[c] - have[c])) for c in groups.classes)

    def over(counts) -> float:
        return sum(max(0.0, counts[c] - max(0.0, target[c] - have[c])) for c in groups.classes)

    def done() -> bool:
        return all(have[c] >= target[c] for c in groups.classes)

    def take(c):
        for p in comp_people[c]:
            groups.side[p] = split
        groups.assigned += len(comp_people[c])
        have.update(comp_size[c])

    for c in [c for c in order if groups.is_free(c)]:  # 1. whole groups that fit
        if done() or groups.unassigned_people() <= len(comp_people[c]):
            break
        if need(comp_size[c]) > 0 and over(comp_size[c]) == 0:
            take(c)
    while not done():
        free = [
            c
            for c in order
            if groups.is_free(c) and need(comp_size[c]) > 0 and groups.unassigned_people() > len(comp_people[c])
        ]
        # Cutting a group leaves videos out, so only a group that cannot be held out whole
        # (more than half of all videos) is cut; a smaller one is taken whole or not at all.
        small = [c for c in free if groups.videos(c) <= max(sum(target.values()), len(groups.labels) / 2)]
        if small:  # 2. the group that overshoots least, if it fills more than it overshoots
            best = min(small, key=lambda c: (over(comp_size[c]), groups.rank[comp_people[c][0]]))
            if over(comp_size[best]) >= need(comp_size[best]) and sum(have.values()) > 0:
                break  # (an empty side takes it anyway: a held-out side beats none)
            take(best)
            continue
        large = [
            c
            for c in order
            if groups.is_free(c)
            and len(comp_people[c]) > 1
            and groups.videos(c) > max(sum(target.values()), len(groups.labels) / 2)
        ]
        if not large:  # 3. cut the first large group
            break
        groups.assigned += _grow_inside(
            large[0],
            comp_people,
            groups.members,
            groups.videos_of,
            groups.labels,
            groups.side,
            split,
            have,
            target,
            groups.rank,
        )
        break


def _grow_inside(c, comp_people, members, videos_of, labels, side, split, have, target, rank) -> int:
    """Assign people of the linked group ``c`` to ``split``, a tight cluster, until it holds its share.

    Returns the number of people assigned.
    """
    people = [p for p in comp_people[c] if side[p] is None]
    keep_for_train = people[-1]  # train keeps at least one person of the group

    def completes(p) -> int:  # videos of p that would then lie wholly inside the split
        return sum(all(q == p or side[q] == split for q in members[v]) for v in videos_of[p])

    def touches(p) -> int:
        return sum(any(side[q] == split for q in members[v]) for v in videos_of[p])

    total_target, added = sum(target.values()), 0
    while sum(have.values()) < total_target:
        candidates = [p for p in people if side[p] is None and p != keep_for_train]
        if not candidates:
            break
        p = max(candidates, key=lambda q: (completes(q), touches(q), rank[q]))
        for v in videos_of[p]:
            if all(q == p or side[q] == split for q in members[v]):
                have[int(labels[v])] += 1
        side[p] = split
        added += 1
    return added


def add_splits(crops: pd.DataFrame, *, seed: int = SEED, fractions=DEFAULT_FRACTIONS) -> pd.DataFrame:
    """Return ``crops`` with a ``split_<protocol>`` column for each of :data:`PROTOCOLS`.

    ``crops`` needs ``label``, ``video_id``, ``source_ids`` (``|``-joined) and ``official_split``.
    Rows are put in a fixed order first, so that the same crops always get the same splits.
    ``fractions``: ``(train, val, test)`` shares of the ``paper`` and ``video`` splits.
    """
    import pandas as pd

    test_size, val_size = split_sizes(fractions)
    df = crops.sort_values(["video_id", "frame_index", "track_id"], kind="stable").reset_index(drop=True)
    df[split_column("paper")] = split_paper(df["label"].to_numpy(), seed=seed, test_size=test_size, val_size=val_size)

    videos = df.drop_duplicates("video_id")[["video_id", "label", "source_ids", "official_split"]]
    people = [s.split("|") for s in videos["source_ids"]]
    video_split = split_identities(
        videos["label"].to_numpy(), people, seed=seed, test_size=test_size, val_size=val_size
    )
    df[split_column("video")] = df["video_id"].map(dict(zip(videos["video_id"], video_split)))

    official = videos["official_split"].to_numpy(dtype=object)
    has_official = pd.notna(official)
    if has_official.any() and "val" not in set(official[has_official]):
        train = np.flatnonzero(official == "train")
        carved = split_identities(
            videos["label"].to_numpy()[train], [people[i] for i in train], seed=seed, val_size=val_size, splits=("val",)
        )
        official = official.copy()
        official[train] = carved
    df[split_column("official")] = df["video_id"].map(dict(zip(videos["video_id"], official)))
    return df


class EmptySplitWarning(UserWarning):
    """A protocol's train, val or test split holds no video (too few videos or people for it)."""


def empty_splits(counts: dict[str, dict[str, int]]) -> dict[str, list[str]]:
    """Per protocol with splits, its train, val and test splits that hold no video; ``counts`` as
    :func:`split_counts` gives them (a protocol with no split at all, e.g. no official lists, is left out)."""
    empty = {}
    for protocol, sizes in counts.items():
        present = {split for split, n in sizes.items() if n}
        missing = [split for split in ("train", "val", "test") if split not in present]
        if present & {"train", "val", "test"} and missing:
            empty[protocol] = missing
    return empty


def warn_empty_splits(counts: dict[str, dict[str, int]], stacklevel: int = 2) -> None:
    """Warn (:class:`EmptySplitWarning`) of each of :func:`empty_splits`.

    ``stacklevel``: as :func:`warnings.warn`'s, counted from the caller of this function."""
    for protocol, missing in empty_splits(counts).items():
        warnings.warn(
            f"the {protocol} protocol has no {' and no '.join(missing)} videos: prepare more videos "
            "or change the split fractions",
            EmptySplitWarning,
            stacklevel=stacklevel + 1,
        )


def split_counts(df: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Videos per split (``excluded`` included) of each protocol, for the manifest and the summary."""
    videos = df.drop_duplicates("video_id")
    return {
        protocol: {str(k): int(v) for k, v in videos[split_column(protocol)].value_counts(dropna=False).items()}
        for protocol in PROTOCOLS
        if split_column(protocol) in videos
    }
