import numpy as np
import pandas as pd
import pytest

from unmask.errors import UnknownNameError
from unmask.decision.aggregate import aggregate_scores, aggregate_videos


def test_mean_and_median():
    assert aggregate_scores([0.1, 0.2, 0.9]) == pytest.approx(0.4)
    assert aggregate_scores([0.1, 0.2, 0.9], method="median") == pytest.approx(0.2)


def test_confident_rule_averages_only_the_confident_frames():
    partly_fake = [0.95] * 14 + [0.1] * 18  # 14 > 11 and 14 > 32 / 2.5
    assert aggregate_scores(partly_fake, method="confident") == pytest.approx(0.95)
    assert aggregate_scores(partly_fake) < 0.5  # the mean would miss it
    few = [0.95] * 5 + [0.3] * 27  # too few confident fakes: plain mean
    assert aggregate_scores(few, method="confident") == pytest.approx(np.mean(few))
    real = [0.05] * 30 + [0.5, 0.6]  # over 90% confidently real
    assert aggregate_scores(real, method="confident") == pytest.approx(0.05)


def test_track_rule_takes_the_most_suspicious_face_per_frame():
    p = [0.1, 0.9, 0.2, 0.8, 0.1, 0.7]
    frames = [0, 0, 1, 1, 2, 2]
    tracks = [0, 1, 0, 1, 0, 1]
    assert aggregate_scores(p, frame_index=frames, track_id=tracks, method="track") == pytest.approx(0.8)
    assert aggregate_scores(p) == pytest.approx(0.4666, abs=1e-3)


def test_aggregate_videos_gives_one_row_per_video():
    scores = pd.DataFrame(
        {
            "video_id": ["a", "a", "b"],
            "label": [1, 1, 0],
            "method": ["x", "x", "real"],
            "frame_index": [0, 1, 0],
            "track_id": [0, 0, 0],
            "p_fake": [0.6, 0.8, 0.1],
        }
    )
    videos = aggregate_videos(scores, "mean").set_index("video_id")
    assert videos.loc["a", "p_fake"] == pytest.approx(0.7) and videos.loc["a", "n_crops"] == 2
    assert videos.loc["b", "label"] == 0
    with pytest.raises(UnknownNameError, match="Unknown aggregation 'max'"):
        aggregate_scores([0.5], method="max")
