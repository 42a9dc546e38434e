"""What the face step promises on hard clips, checked in CI: with the DEFAULT face step, every
hard clip gives a face in at least 29 of its 32 sampled frames, the faces found are where the face
is, and frames without a face (the no-face clip, the cut of a cutaway clip) give none."""

from dataclasses import replace

import pytest

from unmask.data.config import PrepareConfig
from unmask.data.crop_video import make_extractor
from unmask.testing.hard_set import CUTAWAY, TINY_FACE_PX, make_hard_set
from unmask.faces.track import iou
from unmask.video import FrameSampler, sample_frames

DEFAULT = PrepareConfig("folder")


@pytest.fixture(scope="module")
def results(hard_clips):
    """Per clip name: its crops with the default settings, and the number of frames sampled."""
    extractor = make_extractor(DEFAULT)
    return {c.path.name: crops_of(extractor, c.path) for c in hard_clips}


def crops_of(extractor, path):
    frames = sample_frames(path, DEFAULT.sampler)
    return extractor(frames), len(frames)


def frames_with_a_face(crops) -> set[int]:
    return {c.frame_index for c in crops}


def test_every_hard_clip_gives_a_face_in_29_of_32_frames_and_faceless_frames_none(hard_clips, results):
    for clip in hard_clips:
        crops, total = results[clip.path.name]
        assert total == 32, f"{clip.path.name}: {total} sampled frames"
        found, faceless = frames_with_a_face(crops), set(clip.faceless_frames)
        assert not found & faceless, f"{clip.path.name}: a (false) face in frames {sorted(found & faceless)}"
        face_frames = 32 - len(faceless)
        if clip.condition == "cutaway":  # the worst measured (README): 20 of its 24 face frames
            assert len(found) >= 20, f"{clip.path.name}: a face in {len(found)}/{face_frames} face frames"
        elif clip.has_face:
            assert len(found) >= 29, f"{clip.path.name}: a face in {len(found)}/32 frames"


def test_the_faces_found_in_the_dark_are_where_the_face_is(hard_clips, results):
    """``small`` and ``small_dark`` place the face alike: every crop of the dark clip, whichever
    pass found it or bridged it, overlaps the face found in the same frame of the clear one."""
    crops, _ = results["astronaut_small_dark.mp4"]
    truth = {c.frame_index: c.box for c in results["astronaut_small.mp4"][0]}
    assert len(truth) == 32
    assert {c.det_pass for c in crops} >= {"1", "2", "3"}
    overlaps = {(c.frame_index, c.det_pass): round(iou(c.box, truth[c.frame_index]), 2) for c in crops}
    assert min(overlaps.values()) >= 0.5, overlaps


def test_the_dark_small_clips_need_the_later_passes(hard_clips, results):
    """The clips are hard: one pass alone misses many frames, and passes 1 and 2 alone too few."""
    first_only = make_extractor(
        replace(DEFAULT, second_pass=False, near_pass=False, small_face_pass=False, bridge_max_gap=0)
    )
    crops, _ = crops_of(first_only, next(c.path for c in hard_clips if c.condition == "small_dark"))
    assert len(frames_with_a_face(crops)) < 29 and {c.det_pass for c in crops} == {"1"}
    no_third = make_extractor(replace(DEFAULT, near_pass=False, small_face_pass=False))
    hopper = next(c for c in hard_clips if c.path.name == "hopper_small_dark.mp4")
    assert len(frames_with_a_face(crops_of(no_third, hopper.path)[0])) < 29
    assert "3" in {c.det_pass for c in results[hopper.path.name][0]}


def test_a_cut_away_from_the_face_gives_no_face_even_when_searched_near_it(hard_clips, results):
    clip = next(c for c in hard_clips if c.condition == "cutaway")
    found = frames_with_a_face(results[clip.path.name][0])
    assert min(CUTAWAY) - 1 in found and max(CUTAWAY) + 1 in found  # seen on both sides of the cut
    assert not found & set(CUTAWAY)


def test_rotation_metadata_is_in_the_rotated_clip(hard_clips):
    clip = next(c for c in hard_clips if c.condition == "rotated")
    frame = sample_frames(clip.path, FrameSampler("uniform", 1))[0]
    assert frame.image.shape[:2] == (720, 1280)  # stored 720 wide and 1280 high, shown upright


@pytest.fixture(scope="module")
def tiny_dark_frames(tmp_path_factory, ffpp_samples):
    """6 of the 32 frames of the ``tiny_dark`` clip made from FF++ 519: few, because the small-face
    pass costs about a second a frame. (The portraits' faces come out a few px wider, enough for
    pass 2 to see them in some frames: they would not test this pass alone.)"""
    from functools import partial

    from unmask.testing.hard_set import clip_frames

    source = partial(clip_frames, ffpp_samples / "original_sequences/youtube/c23/videos/519.mp4")
    (clip,) = make_hard_set(tmp_path_factory.mktemp("tiny"), {"src": source}, conditions=("tiny_dark",), noface=())
    return sample_frames(clip.path, FrameSampler("uniform", 6))


def test_a_far_dark_face_in_1080p_is_found_only_by_the_small_face_pass(tiny_dark_frames):
    """Measured on all 32 frames: 30 at the pass's 0.95 floor, the two misses apart (the benchmark
    page); 5 of 6 leaves room for one such miss among the sampled frames."""
    crops = make_extractor(DEFAULT)(tiny_dark_frames)
    assert len(frames_with_a_face(crops)) >= 5, [(c.frame_index, c.det_pass) for c in crops]
    assert {c.det_pass for c in crops} <= {"small", "3", "bridged"} and "small" in {c.det_pass for c in crops}
    widths = [c.box[2] - c.box[0] for c in crops if c.det_pass == "small"]
    assert TINY_FACE_PX[0] - 6 <= min(widths) and max(widths) <= TINY_FACE_PX[1] + 6, widths
    assert make_extractor(replace(DEFAULT, small_face_pass=False))(tiny_dark_frames) == []
