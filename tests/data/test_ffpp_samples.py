"""End to end on the four real FaceForensics++ clips (../shared/samples)."""

import pandas as pd
import pytest

from unmask.data.preparation import PrepareConfig, prepare

pytestmark = pytest.mark.slow


def test_prepare_real_ffpp_clips(ffpp_samples, tmp_path):
    summary = prepare(ffpp_samples, tmp_path / "out", PrepareConfig("ffpp", workers=2))
    assert (summary.videos, summary.failed) == (4, 0)
    df = pd.read_parquet(summary.manifest)
    videos = df.groupby("video_id").agg(
        label=("label", "first"),
        method=("method", "first"),
        source_ids=("source_ids", "first"),
        official=("split_official", "first"),
        video=("split_video", "first"),
        crops=("crop_path", "size"),
    )
    assert videos[["label", "method", "source_ids", "official"]].to_dict("index") == {
        "Deepfakes/c23/519_515": {"label": 1, "method": "Deepfakes", "source_ids": "519|515", "official": "train"},
        "NeuralTextures/c23/004_982": {
            "label": 1,
            "method": "NeuralTextures",
            "source_ids": "004|982",
            "official": "val",
        },
        "original/c23/004": {"label": 0, "method": "original", "source_ids": "004", "official": "val"},
        "original/c23/519": {"label": 0, "method": "original", "source_ids": "519", "official": "train"},
    }
    # A face crop from nearly every one of the 32 sampled frames of each clip.
    assert (videos["crops"] >= 30).all(), videos["crops"].to_dict()
    # The video protocol keeps 004 with its fake 004_982, and 519 with 519_515.
    assert videos.loc["original/c23/004", "video"] == videos.loc["NeuralTextures/c23/004_982", "video"]
    assert videos.loc["original/c23/519", "video"] == videos.loc["Deepfakes/c23/519_515", "video"]
    assert set(videos["video"]) == {"train", "test"}
    # The paper protocol splits frames, so every clip has frames on several sides: the leak.
    assert (df.groupby("video_id")["split_paper"].nunique() > 1).all()


def test_all_faces_mode_tracks_the_puppet_picture_separately(ffpp_samples, tmp_path):
    from unmask.video import FrameSampler

    config = PrepareConfig(
        "ffpp", keep="all", sampler=FrameSampler("uniform", 8), dataset_options={"methods": ("NeuralTextures",)}
    )
    df = pd.read_parquet(prepare(ffpp_samples, tmp_path / "out", config).manifest)
    original = df[df["video_id"] == "original/c23/004"]
    per_track = original.groupby("track_id").size()
    assert per_track.max() == 8  # the presenter is one track through all 8 frames
