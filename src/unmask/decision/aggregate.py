"""From frame scores to a verdict per video: one definition, used by evaluate and predict.

- ``mean`` (default) and ``median`` of the frame scores;
- ``confident``: the rule of the DFDC winner (Seferbekov, 2020): when many frames are confidently
  fake (more than 11, and more than 40% of them, above 0.8), average only those; when nearly all
  (over 90%) are confidently real (below 0.2), average only those; else the plain mean. A fake
  that shows in part of a video is then not averaged away by the frames where it does not;
- ``track``: in each frame the most suspicious face track, then the mean over frames, so that
  one swapped face among several real ones still marks the video.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from unmask.errors import unknown_name

if TYPE_CHECKING:  # pandas is imported where tables are made: a verdict alone needs none
    import pandas as pd

AGGREGATIONS = ("mean", "median", "confident", "track")


def aggregate_scores(
    p_fake, *, frame_index=None, track_id=None, method: str = "mean", high: float = 0.8, low: float = 0.2
) -> float:
    """One score for one video from its crops' ``p_fake`` (and, for ``track``, their frames)."""
    if method not in AGGREGATIONS:
        raise unknown_name("aggregation", method, AGGREGATIONS)
    p = np.asarray(p_fake, dtype=float)
    if p.size == 0:
        return float("nan")
    if method == "mean":
        return float(p.mean())
    if method == "median":
        return float(np.median(p))
    if method == "confident":
        confident_fake, confident_real = p[p > high], p[p < low]
        if len(confident_fake) > 11 and len(confident_fake) > p.size / 2.5:
            return float(confident_fake.mean())
        if len(confident_real) > 0.9 * p.size:
            return float(confident_real.mean())
        return float(p.mean())
    import pandas as pd

    frames = np.zeros(p.size, dtype=int) if frame_index is None else np.asarray(frame_index)
    return float(pd.Series(p).groupby(frames).max().mean())


def aggregate_videos(frame_scores: pd.DataFrame, method: str = "mean") -> pd.DataFrame:
    """Video scores from crop scores (columns ``video_id``, ``label``, ``frame_index``, ``track_id``,
    ``p_fake``; ``method`` and ``dataset`` are carried along); one row per video with its ``p_fake``,
    crop and track counts."""
    import pandas as pd

    rows = []
    for video_id, group in frame_scores.groupby("video_id", sort=True):
        rows.append(
            {
                "video_id": video_id,
                "label": int(group["label"].iloc[0]),
                "method": group["method"].iloc[0] if "method" in group else None,
                **({"dataset": group["dataset"].iloc[0]} if "dataset" in group else {}),
                "p_fake": aggregate_scores(
                    group["p_fake"], frame_index=group["frame_index"], track_id=group["track_id"], method=method
                ),
                "n_crops": len(group),
                "n_tracks": int(group["track_id"].nunique()),
            }
        )
    return pd.DataFrame(rows)
