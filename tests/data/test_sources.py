import json

import pytest

from unmask.data.sources import FAKE, REAL, find_videos, list_videos
from unmask.errors import DatasetLayoutError, UnknownNameError


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0")
    return path


def test_ffpp_gives_labels_methods_source_ids_and_official_splits(tmp_path):
    touch(tmp_path / "original_sequences/youtube/c23/videos/004.mp4")
    touch(tmp_path / "original_sequences/youtube/c23/videos/519.mp4")
    touch(tmp_path / "original_sequences/youtube/c40/videos/004.mp4")
    touch(tmp_path / "manipulated_sequences/Deepfakes/c23/videos/519_515.mp4")
    touch(tmp_path / "manipulated_sequences/NeuralTextures/c23/videos/004_982.mp4")
    items = {i.video_id: i for i in list_videos(tmp_path, "ffpp")}
    assert sorted(items) == [
        "Deepfakes/c23/519_515",
        "NeuralTextures/c23/004_982",
        "original/c23/004",
        "original/c23/519",
    ]
    fake = items["NeuralTextures/c23/004_982"]
    assert (fake.label, fake.method, fake.source_ids, fake.official_split) == (
        FAKE,
        "NeuralTextures",
        ("004", "982"),
        "val",
    )
    real = items["original/c23/519"]
    assert (real.label, real.method, real.source_ids, real.official_split) == (REAL, "original", ("519",), "train")
    assert len(list_videos(tmp_path, "ffpp", compression="c40")) == 1
    only = list_videos(tmp_path, "ffpp", methods=("Deepfakes",))
    assert {i.method for i in only} == {"original", "Deepfakes"}
    touch(tmp_path / "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4")
    assert "DeepFakeDetection" not in {i.method for i in list_videos(tmp_path, "ffpp")}
    with pytest.raises(DatasetLayoutError, match="Unknown FF\\+\\+ method 'DeepFakeDetection'"):
        list_videos(tmp_path, "ffpp", methods=("DeepFakeDetection",))


def test_ffpp_official_split_is_the_shipped_720_140_140():
    from unmask.data.sources.ffpp import official_splits

    counts = {}
    for split in official_splits().values():
        counts[split] = counts.get(split, 0) + 1
    assert counts == {"train": 720, "val": 140, "test": 140}


def test_ffpp_errors_name_what_was_expected(tmp_path):
    touch(tmp_path / "something/else.mp4")
    with pytest.raises(DatasetLayoutError, match="not a FaceForensics\\+\\+ folder: expected original_sequences"):
        list_videos(tmp_path, "ffpp")
    touch(tmp_path / "original_sequences/youtube/c40/videos/001.mp4")
    with pytest.raises(DatasetLayoutError, match="compression 'c23'.*found: c40"):
        list_videos(tmp_path, "ffpp")
    with pytest.raises(DatasetLayoutError, match="method 'FaceSwap' not found"):
        list_videos(tmp_path, "ffpp", compression="c40", methods=("FaceSwap",))


def test_celebdf_uses_the_official_test_list(tmp_path):
    touch(tmp_path / "Celeb-real/id0_0000.mp4")
    touch(tmp_path / "Celeb-real/id1_0001.mp4")
    touch(tmp_path / "YouTube-real/00170.mp4")
    touch(tmp_path / "Celeb-synthesis/id0_id16_0000.mp4")
    (tmp_path / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00170.mp4\n0 Celeb-synthesis/id0_id16_0000.mp4\n"
    )
    items = {i.video_id: i for i in list_videos(tmp_path, "celebdf")}
    fake = items["Celeb-synthesis/id0_id16_0000"]
    assert (fake.label, fake.method, fake.source_ids, fake.official_split) == (
        FAKE,
        "Celeb-synthesis",
        ("id0", "id16"),
        "test",
    )
    assert items["Celeb-real/id1_0001"].source_ids == ("id1",)
    assert items["Celeb-real/id1_0001"].official_split == "train"
    assert items["YouTube-real/00170"].official_split == "test"


def test_celebdf_without_its_folders_is_refused(tmp_path):
    touch(tmp_path / "real/a.mp4")
    with pytest.raises(DatasetLayoutError, match="expected Celeb-real/, YouTube-real/, Celeb-synthesis/"):
        list_videos(tmp_path, "celebdf")


def test_dfdc_reads_metadata_json(tmp_path):
    part = tmp_path / "dfdc_train_part_0"
    touch(part / "aaa.mp4")
    touch(part / "bbb.mp4")
    (part / "metadata.json").write_text(
        json.dumps(
            {
                "aaa.mp4": {"label": "REAL", "split": "train", "original": None},
                "bbb.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"},
                "ccc.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"},  # not downloaded
            }
        )
    )
    items = list_videos(tmp_path, "dfdc")
    assert [(i.video_id, i.label, i.source_ids, i.official_split) for i in items] == [
        ("dfdc_train_part_0/aaa", REAL, ("aaa",), "train"),
        ("dfdc_train_part_0/bbb", FAKE, ("aaa",), "train"),
    ]
    (part / "metadata.json").write_text("{not json")
    with pytest.raises(DatasetLayoutError, match="metadata.json is not valid JSON"):
        list_videos(tmp_path, "dfdc")


def test_folder_layout_and_method_subfolders(tmp_path):
    touch(tmp_path / "real/a.mp4")
    touch(tmp_path / "fake/FaceSwap/b.MOV")
    touch(tmp_path / "fake/c.webm")
    touch(tmp_path / "fake/notes.txt")
    items = {i.video_id: (i.label, i.method) for i in list_videos(tmp_path, "folder")}
    assert items == {"real/a": (REAL, "real"), "fake/FaceSwap/b": (FAKE, "FaceSwap"), "fake/c": (FAKE, "fake")}


def test_csv_list_with_optional_columns(tmp_path):
    touch(tmp_path / "v/one.mp4")
    touch(tmp_path / "v/two.mp4")
    (tmp_path / "list.csv").write_text("path,label,split,source_id\nv/one.mp4,real,train,p1\nv/two.mp4,1,test,p1\n")
    items = list_videos(tmp_path / "list.csv", "csv")
    assert [(i.video_id, i.label, i.official_split, i.source_ids) for i in items] == [
        ("v/one", REAL, "train", ("p1",)),
        ("v/two", FAKE, "test", ("p1",)),
    ]
    (tmp_path / "bad.csv").write_text("file,label\nv/one.mp4,real\n")
    with pytest.raises(DatasetLayoutError, match="columns path,label"):
        list_videos(tmp_path / "bad.csv", "csv")
    (tmp_path / "empty-path.csv").write_text("path,label\n,real\n")
    with pytest.raises(DatasetLayoutError, match="empty-path.csv:2: the path cell is empty"):
        list_videos(tmp_path / "empty-path.csv", "csv")
    (tmp_path / "bad2.csv").write_text("path,label\nv/one.mp4,maybe\n")
    with pytest.raises(DatasetLayoutError, match="bad2.csv:2: label 'maybe'"):
        list_videos(tmp_path / "bad2.csv", "csv")


def test_missing_empty_and_unknown(tmp_path):
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        list_videos(tmp_path / "nope", "folder")
    with pytest.raises(DatasetLayoutError, match="is empty"):
        list_videos(tmp_path, "folder")
    with pytest.raises(UnknownNameError, match="Unknown dataset 'celeb-df'.*'celebdf'"):
        list_videos(tmp_path, "celeb-df")
    (tmp_path / "real").mkdir()
    (tmp_path / "fake").mkdir()
    with pytest.raises(DatasetLayoutError, match="No videos found"):
        list_videos(tmp_path, "folder")


def test_csv_paths_outside_its_folder_get_ids_that_stay_inside_the_output(tmp_path):
    outside = touch(tmp_path / "elsewhere" / "clip.mp4")
    listing = tmp_path / "lists" / "list.csv"
    listing.parent.mkdir()
    listing.write_text(f"path,label\n{outside},fake\n../elsewhere/clip.mp4,fake\n")
    with pytest.raises(
        DatasetLayoutError, match="Two videos get the id .*elsewhere/clip.mp4 and .*lists/../elsewhere/clip.mp4"
    ):
        list_videos(listing, "csv")
    listing.write_text(f"path,label\n{outside},fake\n")
    (item,) = list_videos(listing, "csv")
    assert item.video_id.startswith("external/") and ".." not in item.video_id


def test_dfdc_metadata_of_the_wrong_shape_is_refused(tmp_path):
    touch(tmp_path / "p" / "a.mp4")
    (tmp_path / "p" / "metadata.json").write_text('["a.mp4"]')
    with pytest.raises(DatasetLayoutError, match="must map each file name"):
        list_videos(tmp_path, "dfdc")


def test_links_are_followed_and_broken_ones_reported(tmp_path):
    real = touch(tmp_path / "real" / "a.mp4")
    touch(tmp_path / "fake" / "b.mp4")
    (tmp_path / "fake" / "same_as_a.mp4").symlink_to(real)  # the same video under a second name
    (tmp_path / "fake" / "dangling.mp4").symlink_to(tmp_path / "gone.mp4")
    (tmp_path / "fake" / "loop.mp4").symlink_to(tmp_path / "fake" / "loop.mp4")
    listing = find_videos(tmp_path, "folder")
    assert [i.video_id for i in listing.items] == ["fake/b", "real/a"]
    reasons = {item.video_id: reason for item, reason in listing.skipped}
    assert reasons["fake/same_as_a"].startswith("same file as video real/a")
    assert (
        reasons["fake/dangling"].startswith("dangling symbolic link: its target")
        and "gone.mp4" in reasons["fake/dangling"]
    )
    assert reasons["fake/loop"] == "symbolic link loop"
    assert list_videos(tmp_path, "folder") == listing.items


def test_two_files_with_one_id_are_both_named(tmp_path):
    touch(tmp_path / "real" / "clip.mp4")
    touch(tmp_path / "real" / "clip.avi")
    touch(tmp_path / "fake" / "x.mp4")
    with pytest.raises(
        DatasetLayoutError, match="Two videos get the id 'real/clip': .*real/clip.avi and .*real/clip.mp4"
    ):
        list_videos(tmp_path, "folder")


def test_control_characters_leave_ids_but_not_the_path(tmp_path):
    odd = touch(tmp_path / "real" / "line\nbreak\x1bclip.mp4")
    touch(tmp_path / "fake" / "ünï cödé x.mp4")
    items = {i.video_id: i for i in list_videos(tmp_path, "folder")}
    assert sorted(items) == ["fake/ünï cödé x", "real/line%0Abreak%1Bclip"]
    assert items["real/line%0Abreak%1Bclip"].path == odd
    assert items["real/line%0Abreak%1Bclip"].source_ids == ("real/line%0Abreak%1Bclip",)


def test_csv_with_a_byte_order_mark_is_read_and_a_binary_one_refused(tmp_path):
    touch(tmp_path / "a.mp4")
    listing = tmp_path / "list.csv"
    listing.write_bytes("path,label\na.mp4,fake\n".encode("utf-8-sig"))  # as spreadsheet programs save it
    (item,) = list_videos(listing, "csv")
    assert (item.video_id, item.label) == ("a", FAKE)
    listing.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DatasetLayoutError, match="is not a text CSV file"):
        list_videos(listing, "csv")


def test_folder_people_file_names_who_is_in_each_video(tmp_path, caplog):
    for name in ("real/alice_1.mp4", "real/alice_2.mp4", "real/bob_1.mp4", "fake/swap/alice_bob.mp4", "fake/carol.mp4"):
        touch(tmp_path / name)
    (tmp_path / "people.csv").write_text(
        "video,person\nreal/alice_1.mp4,alice\nreal/alice_2,alice\nreal/bob_1.mp4,bob\n"
        "fake/swap/alice_bob.mp4,alice|bob\nreal/gone.mp4,dave\n"
    )
    with caplog.at_level("WARNING"):
        items = {i.video_id: i.source_ids for i in list_videos(tmp_path, "folder")}
    assert items == {
        "real/alice_1": ("alice",),
        "real/alice_2": ("alice",),
        "real/bob_1": ("bob",),
        "fake/swap/alice_bob": ("alice", "bob"),
        "fake/carol": ("fake/carol",),
    }
    assert "no person for 1 of 5 videos" in caplog.text and "real/gone" in caplog.text
    # Another file, given by name, wins over ROOT/people.csv.
    other = touch(tmp_path / "elsewhere" / "who.csv")
    other.write_text("video,person\nfake/carol.mp4,carol\n")
    assert list_videos(tmp_path, "folder", people=str(other))[0].source_ids == ("carol",)
    other.write_text("clip,who\nfake/carol.mp4,carol\n")
    with pytest.raises(DatasetLayoutError, match="columns video,person"):
        list_videos(tmp_path, "folder", people=str(other))
    with pytest.raises(DatasetLayoutError, match="people file .*missing.csv does not exist"):
        list_videos(tmp_path, "folder", people=str(tmp_path / "missing.csv"))
