import json
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pandas as pd
import pytest

from unmask.data.crop_video import make_extractor
from unmask.data.manifest import CROP_COLUMNS, FACE_COLUMNS, read_manifest, write_manifest
from unmask.faces.detectors import LANDMARK_COLUMNS
from unmask.data.preparation import PrepareConfig, merge_manifests, prepare
from unmask.demo import make_demo_dataset, write_video
from unmask.errors import ManifestError, UnmaskError
from unmask.video import FrameSampler

SMALL = dict(sampler=FrameSampler("uniform", 4), size=64)


@pytest.fixture
def dataset_with_bad_files(demo_clips, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(demo_clips, root)
    (root / "fake" / "zero.mp4").write_bytes(b"")
    (root / "fake" / "notes.mp4").write_text("not a video at all\n" * 20)
    whole = (root / "real" / "real_astronaut_00.mp4").read_bytes()
    (root / "real" / "header_only.mp4").write_bytes(whole[:200])
    write_video(root / "real" / "no_face.mp4", [np.full((120, 160, 3), v, np.uint8) for v in range(60, 140, 10)])
    return root


def test_prepare_writes_crops_manifest_and_failures(dataset_with_bad_files, tmp_path):
    out = tmp_path / "out"
    seen = []
    summary = prepare(
        dataset_with_bad_files, out, PrepareConfig("folder", **SMALL), progress=lambda s: seen.append(s.done)
    )
    assert (summary.videos, summary.processed, summary.failed) == (8, 4, 4)
    assert summary.crops == 16 and seen[-1] == 8
    failures = pd.read_csv(out / "failures.csv").set_index("video_id")["reason"]
    assert set(failures.index) == {"fake/zero", "fake/notes", "real/header_only", "real/no_face"}
    assert "is empty" in failures["fake/zero"]
    assert "not a readable video" in failures["fake/notes"]
    assert "no face found in 4 sampled frames" in failures["real/no_face"]

    df, meta = read_manifest(out)
    assert set(CROP_COLUMNS) <= set(df.columns) and len(df) == 16
    assert set(df["det_pass"]) <= {"1", "2", "3", "bridged"}
    detected = df[df["det_pass"] != "bridged"]
    assert detected[list(LANDMARK_COLUMNS)].notna().all().all()
    assert ((detected["left_eye_x"] > detected["x1"]) & (detected["left_eye_x"] < detected["x2"])).all()
    assert meta["dataset"] == "folder" and meta["size"] == 64
    assert df.groupby("video_id")["label"].first().to_dict() == {
        "fake/fake_astronaut_00": 1,
        "fake/fake_hopper_01": 1,
        "real/real_astronaut_00": 0,
        "real/real_hopper_01": 0,
    }
    for path in df["crop_path"]:
        image = cv2.imread(str(out / path))
        assert image is not None and image.shape == (64, 64, 3)
    assert set(df["split_paper"]) <= {"train", "val", "test"}
    assert df.groupby("video_id")["split_video"].nunique().eq(1).all()
    assert df["split_official"].isna().all()  # the folder layout has no official lists


def test_a_second_run_skips_finished_videos_and_refuses_other_settings(demo_clips, tmp_path):
    out = tmp_path / "out"
    first = prepare(demo_clips, out, PrepareConfig("folder", **SMALL))
    before = pd.read_parquet(out / "manifest.parquet")
    second = prepare(demo_clips, out, PrepareConfig("folder", **SMALL))
    assert (second.skipped, second.processed, second.crops) == (4, 0, first.crops)
    pd.testing.assert_frame_equal(before, pd.read_parquet(out / "manifest.parquet"))
    with pytest.raises(UnmaskError, match="prepared with other settings \\(size\\)"):
        prepare(demo_clips, out, PrepareConfig("folder", sampler=SMALL["sampler"], size=96))

    # A folder prepared before the settings took the command line's names resumes as before.
    record = out / ".unmask" / "config.json"
    old = json.loads(record.read_text())
    for old_name, new_name in (
        ("size_px", "size"),
        ("max_side_px", "max_side"),
        ("second_pass_side_px", "second_pass_side"),
        ("seed", "split_seed"),
    ):
        old[old_name] = old.pop(new_name)
    del old["split_fractions"]
    record.write_text(json.dumps(old))
    # New split settings re-split the kept crops: nothing is cropped again.
    third = prepare(demo_clips, out, PrepareConfig("folder", split_seed=7, split_fractions=(0.5, 0.25, 0.25), **SMALL))
    assert (third.skipped, third.processed) == (4, 0)
    _, meta = read_manifest(out)
    assert meta["split_seed"] == 7 and meta["split_fractions"] == [0.5, 0.25, 0.25]

    # A folder prepared by the two-pass face step: resumed with --no-near-pass; refused without it,
    # naming only that setting.
    old = json.loads(record.read_text())
    del old["near_pass"], old["near_pass_min_score"]
    record.write_text(json.dumps(old))
    with pytest.raises(UnmaskError, match="prepared with other settings \\(near_pass\\); prepare with the settings"):
        prepare(demo_clips, out, PrepareConfig("folder", **SMALL))
    fourth = prepare(demo_clips, out, PrepareConfig("folder", near_pass=False, **SMALL))
    assert (fourth.skipped, fourth.processed) == (4, 0)


def test_video_details_come_from_the_current_listing_on_resume(demo_clips, tmp_path):
    rows = "".join(f"{p.relative_to(demo_clips)},{p.parent.name}\n" for p in sorted(demo_clips.rglob("*.mp4")))
    listing = demo_clips / "list.csv"
    listing.write_text("path,label\n" + rows)
    out = tmp_path / "out"
    prepare(listing, out, PrepareConfig("csv", **SMALL))
    listing.write_text(
        "path,label,split\n"
        + "".join(r.replace("\n", ",test\n") for r in rows.replace(",real", ",fake").splitlines(True))
    )
    again = prepare(listing, out, PrepareConfig("csv", **SMALL))
    assert again.skipped == 4 and again.processed == 0
    df = pd.read_parquet(again.manifest)
    assert set(df["label"]) == {1} and set(df["split_official"]) == {"test"}
    listing.unlink()


def test_no_face_videos_are_done_once_and_still_reported(dataset_with_bad_files, tmp_path):
    out = tmp_path / "out"
    prepare(dataset_with_bad_files, out, PrepareConfig("folder", **SMALL))
    again = prepare(dataset_with_bad_files, out, PrepareConfig("folder", **SMALL))
    assert again.skipped == 5 and again.failed == 4  # 4 faces + no_face skipped; 3 unreadable retried
    assert "real/no_face" in set(pd.read_csv(out / "failures.csv")["video_id"])


def test_a_worker_that_dies_costs_only_its_video(demo_clips, tmp_path, monkeypatch):
    from tests.data.crash_helper import crop_or_die
    from unmask.data import preparation as prepare_module

    root = tmp_path / "data"
    shutil.copytree(demo_clips, root)
    shutil.copy(root / "fake" / "fake_hopper_01.mp4", root / "fake" / "crash.mp4")
    monkeypatch.setattr(prepare_module, "crop_video", crop_or_die)
    summary = prepare(root, tmp_path / "out", PrepareConfig("folder", workers=2, **SMALL))
    assert (summary.videos, summary.processed, summary.failed) == (5, 4, 1)
    reasons = pd.read_csv(tmp_path / "out" / "failures.csv").set_index("video_id")["reason"]
    assert "worker process died" in reasons["fake/crash"]


def test_bad_settings_and_an_out_file_stop_before_anything_is_written(demo_clips, tmp_path):
    with pytest.raises(UnmaskError, match="^margin must be at least 1.0"):
        PrepareConfig("folder", margin=0.5)
    for margin in (float("nan"), float("inf"), 100.0):  # inf cut whole frames as "faces", exit 0
        with pytest.raises(UnmaskError, match="^margin must be at least 1.0 .* and at most 4.0, not"):
            PrepareConfig("folder", margin=margin)
    for size in (4, 100000):  # 100000 px tried to allocate 30 GB per video
        with pytest.raises(UnmaskError, match=f"^size must lie between 8 and 1024 pixels, not {size}"):
            PrepareConfig("folder", size=size)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UnmaskError, match="is a file; give a folder"):
        prepare(demo_clips, tmp_path / "file", PrepareConfig("folder", **SMALL))


def test_workers_give_the_same_manifest_as_one_process(demo_clips, tmp_path):
    one = prepare(demo_clips, tmp_path / "one", PrepareConfig("folder", **SMALL))
    two = prepare(demo_clips, tmp_path / "two", PrepareConfig("folder", workers=2, **SMALL))
    a, b = (pd.read_parquet(s.manifest).drop(columns=["det_score", "x1", "y1", "x2", "y2"]) for s in (one, two))
    pd.testing.assert_frame_equal(a, b)


def test_shards_merge_into_the_unsharded_manifest(demo_clips, tmp_path):
    whole = pd.read_parquet(prepare(demo_clips, tmp_path / "whole", PrepareConfig("folder", **SMALL)).manifest)
    parts = [tmp_path / f"part{k}" for k in (1, 2, 3)]
    sizes = [
        prepare(demo_clips, p, PrepareConfig("folder", shard=(k, 3), **SMALL)).videos for k, p in zip((1, 2, 3), parts)
    ]
    assert sum(sizes) == 4
    with pytest.raises(ManifestError, match="output of sharded runs; combine the shards with `unmask merge`"):
        read_manifest(parts[0])
    merged = pd.read_parquet(merge_manifests(parts, tmp_path / "all"))
    assert all((tmp_path / "all" / p).is_file() for p in merged["crop_path"])
    keep = ["video_id", "frame_index", "label", "split_paper", "split_video"]
    pd.testing.assert_frame_equal(whole[keep], merged[keep])
    with pytest.raises(UnmaskError, match="each of the 3 shards once; missing: \\[3\\], repeated: \\[1\\]"):
        merge_manifests([parts[0], parts[0], parts[1]], tmp_path / "twice")


def test_shards_can_share_one_out_folder_and_must_agree_on_settings(demo_clips, tmp_path):
    shared = tmp_path / "shared"
    for k in (1, 2):
        prepare(demo_clips, shared, PrepareConfig("folder", shard=(k, 2), **SMALL))
    assert sorted(p.name for p in shared.glob("manifest.*")) == [
        "manifest.shard-1-of-2.parquet",
        "manifest.shard-2-of-2.parquet",
    ]
    merged = pd.read_parquet(merge_manifests([shared], shared))
    assert merged["video_id"].nunique() == 4 and all((shared / p).is_file() for p in merged["crop_path"])
    other = tmp_path / "other"
    prepare(demo_clips, other, PrepareConfig("folder", shard=(2, 2), sampler=FrameSampler("uniform", 2), size=64))
    with pytest.raises(UnmaskError, match="prepared with other settings \\(sampler\\)"):
        merge_manifests([shared / "manifest.shard-1-of-2.parquet", other], tmp_path / "mixed")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_keeps_finished_videos_and_resumes(tmp_path, sig):
    root = make_demo_dataset(tmp_path / "clips", clips_per_class=6, seconds=2.0, fps=10)
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "unmask",
        "prepare",
        str(root),
        "--dataset",
        "folder",
        "--out",
        str(out),
        "--num-frames",
        "6",
        "--size",
        "64",
    ]
    # SIG_DFL in the child: a test run started in the background inherits SIGINT ignored, and
    # Python then installs no handler of its own
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    done = out / ".unmask" / "done"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(done.glob("*.json"))) < 2:
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    finished = len(list(done.glob("*.json")))
    assert 2 <= finished < 12, "the run ended before it could be interrupted"
    assert not (out / "manifest.parquet").exists()
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{finished} already done" in resumed.stdout
    df = pd.read_parquet(out / "manifest.parquet")
    assert df["video_id"].nunique() == 12
    assert all(cv2.imread(str(out / p)) is not None for p in df["crop_path"])
    assert not (out / ".unmask" / "partial").exists() or not any((out / ".unmask" / "partial").iterdir())


def test_prepare_on_an_empty_root_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnmaskError, match="is empty"):
        prepare(tmp_path / "empty", tmp_path / "out", PrepareConfig("folder"))
    assert not (tmp_path / "out").exists()


def test_recorded_settings_rebuild_the_same_config():
    import json

    config = PrepareConfig(
        "ffpp",
        sampler=FrameSampler("stride", 5, every_n=3),
        margin=1.5,
        size=128,
        keep="all",
        image_format="jpg",
        min_score=0.8,
        max_side=480,
        workers=2,
        second_pass_side=960,
        second_pass_min_score=0.85,
        second_pass_probe=4,
        near_pass_min_score=0.8,
        bridge_max_gap=3,
        small_face_pass=False,
        small_face_side=1600,
        small_face_min_px=16,
        small_face_min_score=0.8,
        small_face_probe=2,
    )
    again = PrepareConfig.from_recorded(json.loads(json.dumps(config.recorded())))
    assert again.recorded() == config.recorded() and again.sampler == config.sampler


def test_jpeg_crops_are_jpeg_files_that_training_reads(demo_clips, tmp_path):
    from unmask.data.crops import load_crop

    prepare(demo_clips, tmp_path / "out", PrepareConfig("folder", image_format="jpg", **SMALL))
    df = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    assert df["crop_path"].str.endswith(".jpg").all()
    first = tmp_path / "out" / df["crop_path"].iloc[0]
    assert first.read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG's magic number, not PNG's
    assert load_crop(first).shape[2] == 3


def test_a_video_id_that_climbs_out_of_the_crops_folder_is_refused(demo_clips, tmp_path):
    from unmask.data.crop_video import crop_video, init_worker
    from unmask.data.sources import VideoItem

    config = PrepareConfig("folder", **SMALL)
    init_worker(config, single_thread=False)
    video = next((demo_clips / "fake").glob("*.mp4"))
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    item = VideoItem(video, "../../victim", 1, "fake", ("x",), None)
    video_id, rows, reason = crop_video(item, tmp_path / "out", config)
    assert rows is None and "would place crops outside" in reason
    assert (victim / "keep.txt").read_text() == "mine" and not any(victim.glob("*.png"))


def test_settings_recorded_before_the_two_pass_face_step_keep_their_one_pass_meaning():
    import json

    old = json.loads(json.dumps(PrepareConfig("ffpp").recorded()))
    three_pass = PrepareConfig.from_recorded({k: v for k, v in old.items() if not k.startswith("small_face")})
    assert not three_pass.small_face_pass and make_extractor(three_pass).small_face_pass is None
    assert three_pass.near_pass and three_pass.second_pass
    for key in ("near_pass", "near_pass_min_score"):
        del old[key]
    two_pass = PrepareConfig.from_recorded(old)  # recorded before the third pass: two passes, bridged
    assert (two_pass.second_pass, two_pass.near_pass, two_pass.bridge_max_gap) == (True, False, 2)
    assert make_extractor(two_pass).near_pass is None
    for key in ("second_pass", "second_pass_side", "second_pass_min_score", "second_pass_probe", "bridge_max_gap"):
        del old[key]  # what a manifest or checkpoint written before them holds
    for recorded in (old, {"size_px": 224}):  # the second: a checkpoint with no prepare settings
        config = PrepareConfig.from_recorded(recorded)
        assert (config.second_pass, config.near_pass, config.bridge_max_gap) == (False, False, 0)
        extractor = make_extractor(config)
        assert extractor.second_pass is None and extractor.near_pass is None and extractor.bridge_max_gap == 0
    today = make_extractor(PrepareConfig("ffpp"))
    assert today.near_pass.min_score == 0.7 and today.near_pass.enhance and today.near_pass.clahe_tiles == 4
    assert today.bridge_max_gap == 2 and today.second_pass.enhance
    assert (today.second_pass.max_side_px, today.second_pass.min_side_px) == (1280, 1280)
    assert today.second_pass.min_score == 0.9 and today.detector.max_side_px == 640 and today.second_pass_probe == 8
    small = today.small_face_pass
    assert (small.max_side_px, small.min_side_px, small.min_face_px, small.min_score) == (1920, 0, 12, 0.95)
    assert small.enhance and small._mtcnn is today.detector._mtcnn and today.small_face_probe == 4
    with pytest.raises(UnmaskError, match="^bridge_max_gap must"):
        PrepareConfig("ffpp", bridge_max_gap=-1)


def test_manifests_without_the_face_step_columns_still_load(prepared, tmp_path):
    df, meta = read_manifest(prepared)
    assert set(FACE_COLUMNS) <= set(df.columns)
    write_manifest(df.drop(columns=FACE_COLUMNS), tmp_path / "manifest.parquet", meta)
    old, _ = read_manifest(tmp_path)
    assert len(old) == len(df) and "det_pass" not in old.columns


def test_python_callers_are_warned_of_an_empty_split(demo_clips, tmp_path):
    """4 demo clips of 4 frames each: too few for the paper protocol to fill its test split."""
    from unmask.data.splits import EmptySplitWarning

    with pytest.warns(EmptySplitWarning, match="the paper protocol has no test videos"):
        prepare(demo_clips, tmp_path / "out", PrepareConfig("folder", **SMALL))
