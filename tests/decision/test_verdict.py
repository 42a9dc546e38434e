import math

import pytest

from unmask.decision.verdict import CLOSE_LOGIT, Decision, decide_clip, decide_track, min_faces


def test_a_verdict_needs_four_faces_or_a_quarter_of_the_frames_but_never_more_than_were_sampled():
    assert [min_faces(n) for n in (1, 3, 8, 16, 32, 100)] == [1, 3, 4, 4, 8, 25]


@pytest.mark.parametrize(
    "scores, sampled, expected",
    [
        ([0.9] * 8, 32, Decision(0.9, "fake")),
        ([0.1, 0.2, 0.3, 0.2], 8, Decision(0.2, "real")),
        ([0.95] * 7, 32, Decision(0.95, "inconclusive", "too_few_faces")),  # 7 < 32 / 4
        ([0.95], 1, Decision(0.95, "fake")),  # a still image with one face
        ([0.5] * 8, 8, Decision(0.5, "inconclusive", "too_close")),  # at the threshold
        ([0.59] * 8, 8, Decision(0.59, "inconclusive", "too_close")),  # within 1.5x of the break-even odds
        ([0.61] * 8, 8, Decision(0.61, "fake")),
        ([0.39] * 8, 8, Decision(0.39, "real")),
    ],
)
def test_one_persons_verdict(scores, sampled, expected):
    got = decide_track(scores, threshold=0.5, frames_sampled=sampled)
    assert (got.verdict, got.reason_code) == (expected.verdict, expected.reason_code)
    assert got.p_fake == pytest.approx(expected.p_fake)


def test_the_band_is_in_log_odds_so_it_follows_a_moved_threshold():
    # t = 0.1 (a missed fake costs 9 false alarms): break-even odds 1/9; 1.5x is odds 1/6 (p = 1/7)
    edge = 1 / 7
    assert decide_track([edge - 0.005] * 8, threshold=0.1, frames_sampled=8).reason_code == "too_close"
    assert decide_track([edge + 0.005] * 8, threshold=0.1, frames_sampled=8).verdict == "fake"
    assert decide_track([0.35] * 8, threshold=0.1, frames_sampled=8).verdict == "fake"  # real at t = 0.5
    assert math.isclose(CLOSE_LOGIT, math.log(1.5))


def test_the_aggregation_is_evaluates(monkeypatch):
    scores = [0.9, 0.9, 0.9, 0.1, 0.1]
    assert decide_track(scores, threshold=0.5, frames_sampled=5).p_fake == pytest.approx(0.58)
    assert decide_track(scores, threshold=0.5, frames_sampled=5, aggregation="median").p_fake == pytest.approx(0.9)


def test_a_clip_is_fake_when_any_person_seen_often_enough_is():
    real, fake = Decision(0.1, "real"), Decision(0.9, "fake")
    brief_fake = Decision(0.99, "inconclusive", "too_few_faces")
    close = Decision(0.55, "inconclusive", "too_close")
    assert decide_clip([real, fake]) == Decision(0.9, "fake")
    assert decide_clip([fake, close, real]) == Decision(0.9, "fake")
    assert decide_clip([real, brief_fake]) == Decision(0.1, "real")  # a passing face does not decide
    assert decide_clip([real, close]) == Decision(0.55, "inconclusive", "too_close")
    assert decide_clip([brief_fake]) == Decision(0.99, "inconclusive", "too_few_faces")
    assert decide_clip([]).reason_code == "no_face"
