import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from unmask.data.splits import (
    add_splits,
    group_videos,
    split_groups,
    split_paper,
    video_groups,
)


def test_paper_split_is_sklearns_two_stratified_splits_with_seed_42():
    labels = np.array([1] * 700 + [0] * 300)
    split = split_paper(labels)
    index = np.arange(1000)
    rest, test = train_test_split(index, test_size=0.1, random_state=42, stratify=labels)
    train, val = train_test_split(rest, test_size=0.1, random_state=42, stratify=labels[rest])
    assert set(np.flatnonzero(split == "test")) == set(test)
    assert set(np.flatnonzero(split == "val")) == set(val)
    assert (split == "train").sum() == len(train) == 810
    assert labels[split == "test"].mean() == 0.7


def test_group_videos_joins_videos_that_share_a_source():
    assert group_videos([("004",), ("004", "982"), ("982",), ("519",), ("519", "515")]) == ["004", "004", "004", "515", "515"]


def test_video_split_never_puts_a_group_on_two_sides_and_keeps_label_shares():
    ids = [f"{i:03d}" for i in range(200)]
    source_ids = [(i,) for i in ids] + [(ids[i], ids[i + 1]) for i in range(0, 200, 2)]
    labels = [0] * 200 + [1] * 100
    groups = group_videos(source_ids)
    split = split_groups(labels, groups)
    for group in set(groups):
        assert len({s for s, g in zip(split, groups) if g == group}) == 1
    share = pd.crosstab(split, np.array(labels), normalize="columns")  # per label
    assert share.loc["test"].between(0.08, 0.16).all(), share
    assert share.loc["val"].between(0.07, 0.14).all(), share


def test_video_split_of_two_groups_gives_train_and_test():
    split = split_groups([0, 1, 0, 1], ["a", "a", "b", "b"])
    assert sorted(set(split)) == ["test", "train"]


def _crops(videos):
    rows = []
    for video_id, label, sources, official in videos:
        for frame in range(10):
            rows.append({"video_id": video_id, "label": label, "source_ids": sources, "official_split": official,
                         "frame_index": frame, "track_id": 0})
    return pd.DataFrame(rows)


def test_add_splits_writes_every_protocol_and_carves_val_from_official_train():
    videos = [(f"real/{i}", 0, f"id{i}", "test" if i < 3 else "train") for i in range(30)]
    videos += [(f"fake/{i}", 1, f"id{i}|id{(i + 1) % 30}", "test" if i < 3 else "train") for i in range(30)]
    df = add_splits(_crops(videos))
    assert {"split_paper", "split_video", "split_official"} <= set(df.columns)
    per_video = df.groupby("video_id")[["split_video", "split_official"]].nunique()
    assert (per_video == 1).all().all()  # whole videos under video and official
    official = df.drop_duplicates("video_id").set_index("video_id")["split_official"]
    assert (official[[f"real/{i}" for i in range(3)]] == "test").all()
    assert "val" in set(official) and (official[official.index.str.endswith(("/0", "/1", "/2"))] == "test").all()
    again = add_splits(_crops(videos).sample(frac=1, random_state=1))
    pd.testing.assert_frame_equal(df, again)  # row order in, same splits out


def test_add_splits_without_official_lists_leaves_official_empty():
    df = add_splits(_crops([("a", 0, "a", None), ("b", 1, "b", None), ("c", 0, "c", None)]))
    assert df["split_official"].isna().all()


def test_video_groups_fall_back_to_own_source_when_swaps_chain_everyone_together():
    chained = [(f"id{i}",) for i in range(10)] + [(f"id{i}", f"id{i + 1}") for i in range(9)]
    assert len(set(group_videos(chained))) == 1
    assert video_groups(chained) == [ids[0] for ids in chained]
    pairs = [("1",), ("2",), ("1", "2"), ("3",), ("4",), ("3", "4"), ("5",), ("6",), ("5", "6")]
    assert video_groups(pairs) == group_videos(pairs)


def test_video_split_moves_only_the_groups_that_change():
    groups = [f"g{i}" for i in range(100)]
    labels = [i % 2 for i in range(100)]
    before = dict(zip(groups, split_groups(labels, groups)))
    after = dict(zip(groups + ["new"], split_groups(labels + [1], groups + ["new"])))
    moved = [g for g in groups if before[g] != after[g]]
    assert len(moved) <= 2, moved
