import logging
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from unmask.data.splits import add_splits, identity_components, split_counts, split_identities, split_paper


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


def test_identity_components_link_people_who_share_a_video():
    people, component, members = identity_components([("004",), ("004", "982"), ("982",), ("519",), ("519", "515")])
    assert people == ["004", "515", "519", "982"]
    linked = {p: component[i] for i, p in enumerate(people)}
    assert linked["004"] == linked["982"] != linked["519"] == linked["515"]
    assert [list(m) for m in members] == [[0], [0, 3], [3], [2], [1, 2]]


def _people_on_two_sides(split, source_ids) -> set[str]:
    side, twice = {}, set()
    for s, ids in zip(split, source_ids):
        if s == "excluded":
            continue
        for person in ids:
            if side.setdefault(person, s) != s:
                twice.add(person)
    return twice


def _ffpp_layout(n_people=200):
    ids = [f"{i:03d}" for i in range(n_people)]
    source_ids = [(i,) for i in ids] + [(ids[i], ids[i + 1]) for i in range(0, n_people, 2)]
    return [0] * n_people + [1] * (n_people // 2), source_ids


def test_video_split_of_ffpp_pairs_keeps_people_apart_without_leaving_any_video_out():
    labels, source_ids = _ffpp_layout()
    split = split_identities(labels, source_ids)
    assert not _people_on_two_sides(split, source_ids)
    assert "excluded" not in set(split)
    share = pd.crosstab(split, np.array(labels), normalize="columns")  # per label
    assert share.loc["test"].between(0.08, 0.13).all(), share
    assert share.loc["val"].between(0.07, 0.12).all(), share


def _celebdf_layout(n_people=30, reals=4, swaps=(1, 2, 3)):
    """Celeb-DF's shape: reals of each celebrity, fakes swapping each with its next ones (a chain)."""
    labels, source_ids = [], []
    for i in range(n_people):
        labels += [0] * reals
        source_ids += [(f"id{i}",)] * reals
        for step in swaps:
            labels.append(1)
            source_ids.append((f"id{i}", f"id{(i + step) % n_people}"))
    return labels, source_ids


def test_chained_swaps_get_a_video_split_with_no_person_on_two_sides():
    labels, source_ids = _celebdf_layout()
    split = split_identities(labels, source_ids)
    assert not _people_on_two_sides(split, source_ids)
    excluded = split == "excluded"
    assert 0 < excluded.sum() < 0.5 * len(split)
    assert all(len(set(ids)) == 2 for ids in np.array(source_ids, dtype=object)[excluded])  # swaps only
    for name, share in (("test", 0.1), ("val", 0.09)):
        n = (split == name).sum()
        assert share / 2 <= n / len(split) <= share * 1.6, (name, n)
        assert set(np.asarray(labels)[split == name]) == {0, 1}


def test_one_large_linked_group_does_not_become_an_oversized_held_out_split():
    # a chain of 20 people holds 45% of the videos; 110 unlinked people hold the rest
    labels, source_ids = _celebdf_layout(n_people=20, reals=1, swaps=(1,))
    labels += [i % 2 for i in range(110)]
    source_ids += [(f"p{i}",) for i in range(110)]
    for seed in range(8):  # whichever place the draw gives the large group
        split = split_identities(labels, source_ids, seed=seed)
        assert not _people_on_two_sides(split, source_ids)
        assert 0.08 <= (split == "test").mean() <= 0.13, (seed, (split == "test").mean())
        assert 0.07 <= (split == "val").mean() <= 0.12, (seed, (split == "val").mean())


def test_ratios_that_cannot_be_met_are_warned_about(caplog):
    labels = [0] * 90 + [1] * 90 + [0, 1] * 5
    source_ids = [("star",)] * 90 + [("star", "double")] * 90 + [(f"p{i}",) for i in range(10)]
    with caplog.at_level(logging.WARNING, logger="unmask.data.splits"):
        split = split_identities(labels, source_ids)
    assert not _people_on_two_sides(split, source_ids)
    assert "cannot be split closer to the ratios" in caplog.text


def test_video_split_moves_only_the_people_that_change():
    labels, source_ids = _ffpp_layout()
    before = split_identities(labels, source_ids)
    after = split_identities(labels + [1], source_ids + [("new",)])[:-1]
    assert (before != after).sum() <= 3, (before != after).sum()


def _crops(videos):
    rows = []
    for video_id, label, sources, official in videos:
        for frame in range(10):
            rows.append(
                {
                    "video_id": video_id,
                    "label": label,
                    "source_ids": sources,
                    "official_split": official,
                    "frame_index": frame,
                    "track_id": 0,
                }
            )
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
    counts = split_counts(df)
    assert sum(counts["video"].values()) == 60 and counts["video"].get("excluded", 0) > 0


def test_add_splits_without_official_lists_leaves_official_empty():
    df = add_splits(_crops([("a", 0, "a", None), ("b", 1, "b", None), ("c", 0, "c", None)]))
    assert df["split_official"].isna().all()


def test_prepare_counts_the_videos_a_chained_celebdf_split_leaves_out(demo_clips, tmp_path):
    from unmask.data.manifest import read_manifest
    from unmask.data.preparation import PrepareConfig, prepare
    from unmask.video import FrameSampler

    root = tmp_path / "celebdf"
    (root / "Celeb-real").mkdir(parents=True)
    (root / "Celeb-synthesis").mkdir()
    real, fake = sorted((demo_clips / "real").iterdir())[0], sorted((demo_clips / "fake").iterdir())[0]
    n = 12
    for i in range(n):
        shutil.copy(real, root / "Celeb-real" / f"id{i}_0000{real.suffix}")
        for step in (1, 2):
            shutil.copy(fake, root / "Celeb-synthesis" / f"id{i}_id{(i + step) % n}_0000{fake.suffix}")
    summary = prepare(root, tmp_path / "out", PrepareConfig("celebdf", sampler=FrameSampler("uniform", 2), size=32))
    df, meta = read_manifest(tmp_path / "out")
    videos = df.drop_duplicates("video_id")
    assert summary.excluded == (videos["split_video"] == "excluded").sum() > 0
    assert meta["splits"]["video"]["excluded"] == summary.excluded
    assert not _people_on_two_sides(videos["split_video"].to_numpy(), [s.split("|") for s in videos["source_ids"]])


def _video_crops(people_of_videos, labels, per_video=3):
    rows = [
        {
            "video_id": f"v{v:03d}",
            "label": label,
            "frame_index": i,
            "track_id": 0,
            "source_ids": "|".join(people),
            "official_split": None,
        }
        for v, (people, label) in enumerate(zip(people_of_videos, labels))
        for i in range(per_video)
    ]
    return pd.DataFrame(rows)


def test_split_fractions_set_the_shares_of_the_paper_and_video_splits():
    labels = [1] * 100 + [0] * 100
    df = add_splits(_video_crops([(f"p{v}",) for v in range(200)], labels), seed=3, fractions=(0.6, 0.2, 0.2))
    videos = df.drop_duplicates("video_id")
    assert videos["split_video"].value_counts().to_dict() == {"train": 120, "val": 40, "test": 40}
    assert df["split_paper"].value_counts().to_dict() == {"train": 360, "val": 120, "test": 120}
    # The default is the paper's: 10% test, then 10% of the rest, as split_paper does it.
    default = add_splits(_video_crops([(f"p{v}",) for v in range(200)], labels), seed=3)
    assert (default["split_paper"].to_numpy() == split_paper(default["label"].to_numpy(), seed=3)).all()
    assert (
        add_splits(_video_crops([(f"p{v}",) for v in range(200)], labels), seed=4)["split_video"].tolist()
        != default["split_video"].tolist()
    )


def test_split_fractions_that_are_not_shares_of_one_whole_are_refused():
    from unmask.data.preparation import PrepareConfig
    from unmask.errors import SettingError

    for bad in ((0.5, 0.2, 0.2), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1), (0.8, 0.2)):
        with pytest.raises(SettingError, match="^split_fractions"):
            PrepareConfig("folder", split_fractions=bad)
    assert PrepareConfig("folder", split_fractions=[0.8, 0.2, 0]).split_fractions == (0.8, 0.2, 0.0)


def test_folder_people_keep_a_persons_videos_on_one_side_of_the_video_split(tmp_path):
    from unmask.data.preparation import video_fields
    from unmask.data.sources import list_videos

    people = [f"person{p:02d}" for p in range(20)]
    lines = ["video,person"]
    for p, person in enumerate(people):
        for k in range(3):  # three real videos of each person, and one fake of them
            (tmp_path / "real").mkdir(exist_ok=True)
            (tmp_path / "real" / f"{person}_{k}.mp4").write_bytes(b"\0")
            lines.append(f"real/{person}_{k}.mp4,{person}")
        (tmp_path / "fake").mkdir(exist_ok=True)
        (tmp_path / "fake" / f"{person}_fake.mp4").write_bytes(b"\0")
        lines.append(f"fake/{person}_fake.mp4,{person}")
    (tmp_path / "people.csv").write_text("\n".join(lines) + "\n")
    items = list_videos(tmp_path, "folder")
    crops = pd.DataFrame([{**video_fields(item, "folder"), "frame_index": 0, "track_id": 0} for item in items])
    df = add_splits(crops, fractions=(0.6, 0.2, 0.2))
    sides = df.assign(person=df["video_id"].str.extract(r"(person\d+)")[0]).groupby("person")["split_video"].nunique()
    assert (sides == 1).all() and set(df["split_video"]) == {"train", "val", "test"}
