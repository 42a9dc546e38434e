"""From the face scores of one person to a verdict, and from the people of a clip to the clip's.

:func:`decide_track` is the one place where frame scores become a video-level score and
decision; the clip's verdict (:func:`decide_clip`) only combines those per-person decisions.

When a verdict is withheld (``inconclusive``), and why:

- **too few faces** (``too_few_faces``): a person seen in fewer than
  ``max(MIN_FACES, MIN_FACE_SHARE * frames sampled)`` sampled frames (4, or a quarter of them;
  never more than were sampled, so a still image with one face is judged). A handful of faces
  is a handful of correlated draws: the mean of 2 frame scores says little about a clip, and
  short-lived tracks are often false detections (a poster, a puppet) rather than people;
- **too close to call** (``too_close``): ``|logit(p) - logit(t)| < CLOSE_LOGIT`` (ln 1.5). For a
  calibrated ``p`` and the cost threshold ``t``, ``exp(logit(p) - logit(t))`` is exactly the ratio
  of the expected costs of the two decisions (calling it real costs ``p * c_miss``, calling it
  fake ``(1 - p) * c_false_alarm``, and ``t`` is where they are equal). Inside the band the better
  decision is less than 1.5 times cheaper than the worse one: a coin toss in cost terms, and
  well within the wobble of a score averaged over 32 frames. At ``t = 0.5`` the band is
  ``0.4 < p < 0.6``; it follows the threshold when the costs move it. The band is in log-odds so
  that it is as strict near ``t = 0.1`` as near ``t = 0.5``.

A person's score is the video-level probability of
:func:`unmask.decision.calibration.video_p_fake` (the one rule ``evaluate`` uses too): the
``mean`` (by default) of the calibrated frame ``p_fake`` of the track, calibrated on the
validation videos at the end of training and, when asked, moved to a deployment prior; it is
compared with the checkpoint's cost threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from unmask.decision.aggregate import aggregate_scores
from unmask.decision.calibration import video_p_fake

if TYPE_CHECKING:
    from unmask.decision.record import CheckpointRecord

MIN_FACES = 4
MIN_FACE_SHARE = 0.25
CLOSE_LOGIT = math.log(1.5)


@dataclass(frozen=True)
class Decision:
    """A score and a verdict; ``reason_code`` says why a verdict is ``inconclusive``."""

    p_fake: float
    verdict: str
    reason_code: str | None = None


def min_faces(frames_sampled: int) -> int:
    """Faces a person needs for a verdict when ``frames_sampled`` frames were looked at."""
    return max(1, min(frames_sampled, max(MIN_FACES, math.ceil(MIN_FACE_SHARE * frames_sampled))))


def logit(p: float) -> float:
    """Log-odds of ``p``, finite even at 0 and 1."""
    p = min(max(float(p), 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def decide_track(
    p_fake,
    *,
    threshold: float,
    frames_sampled: int,
    frame_index=None,
    aggregation: str = "mean",
    record: CheckpointRecord | None = None,
    prior_fake: float | None = None,
) -> Decision:
    """One person's (or one video's) score and verdict from the ``p_fake`` of its faces.

    Args:
        p_fake: ``(n,)`` calibrated probabilities of the person's faces.
        threshold: the cost threshold on ``p_fake``.
        frames_sampled: frames looked at (sets how many faces a verdict needs).
        frame_index: ``(n,)`` the faces' frames (for aggregations that group by frame).
        aggregation: see :data:`unmask.decision.aggregate.AGGREGATIONS`.
        record: the checkpoint's record: its video-level calibration turns the aggregated score
            into a video ``p_fake``. None: the aggregated frame score as it is.
        prior_fake: the share of fakes expected where the detector is used (with ``record``).
    """
    p = np.asarray(p_fake, dtype=float)
    if record is not None:
        score = video_p_fake(p, record, aggregation=aggregation, frame_index=frame_index, prior_fake=prior_fake)
    else:
        score = aggregate_scores(p, frame_index=frame_index, method=aggregation)
    if p.size < min_faces(frames_sampled):
        return Decision(score, "inconclusive", "too_few_faces")
    if abs(logit(score) - logit(threshold)) < CLOSE_LOGIT:
        return Decision(score, "inconclusive", "too_close")
    return Decision(score, "fake" if score >= threshold else "real")


def decide_clip(tracks: list[Decision]) -> Decision:
    """The clip's verdict from its people's: fake if anyone is.

    Only people with enough faces count. The clip's score is the most suspicious counted
    person's (of every person's when none counts). Otherwise ``inconclusive`` when no person
    could be judged or when none is fake and one is too close to call, else ``real``.
    """
    if not tracks:
        return Decision(float("nan"), "inconclusive", "no_face")
    counted = [t for t in tracks if t.reason_code != "too_few_faces"]
    if not counted:
        return Decision(max(t.p_fake for t in tracks), "inconclusive", "too_few_faces")
    score = max(t.p_fake for t in counted)
    if any(t.verdict == "fake" for t in counted):
        return Decision(score, "fake")
    if any(t.verdict == "inconclusive" for t in counted):
        return Decision(score, "inconclusive", "too_close")
    return Decision(score, "real")
