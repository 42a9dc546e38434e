import json

import numpy as np
import pandas as pd
import pytest

from unmask import Detector, Prediction
from unmask.demo import write_video
from unmask.errors import UnmaskError
from unmask.models import BACKBONES, create_model
from unmask.decision.verdict import decide_track, min_faces
from unmask.predict.result import REASON_CODES, VERDICTS
from unmask.decision.checkpoint import load_classifier, read_record
from unmask.video import sample_frames


@pytest.fixture(scope="module")
def detector(small_run):
    return Detector.load(small_run[0].run_dir, device="cpu")


@pytest.fixture(scope="module")
def fake_clip(demo_clips):
    return demo_clips / "fake" / "fake_astronaut_00.mp4"


def check_consistent(p: Prediction, record=None):
    """What every result must satisfy, whatever the verdict (``record``: the judging checkpoint's,
    when the Detector was not loaded from a file)."""
    record = record or read_record(p.model["run"])
    assert p.verdict in VERDICTS and p.reason_code in (None, *REASON_CODES)
    assert (p.verdict == "inconclusive") == (p.reason_code is not None) == (p.reason is not None)
    assert len(p.timeline) == sum(t.n_faces for t in p.tracks)
    assert p.frames_with_face == len({s.frame_index for s in p.timeline}) <= p.frames_sampled
    assert [s.time_s for s in p.timeline] == sorted(s.time_s for s in p.timeline)
    assert set(p.timings) == {"decode", "detect", "crop", "model", "aggregate", "total"}
    assert p.timings["total"] >= sum(v for k, v in p.timings.items() if k != "total") - 1e-3
    for t in p.tracks:
        mine = [s for s in p.timeline if s.track_id == t.track_id]
        again = decide_track(
            [s.p_fake for s in mine],
            threshold=p.threshold,
            frames_sampled=p.frames_sampled,
            record=record,
            prior_fake=p.model["prior_fake"],
        )
        assert (t.verdict, t.p_fake, t.first_s, t.last_s) == (
            again.verdict,
            pytest.approx(again.p_fake),
            mine[0].time_s,
            mine[-1].time_s,
        )
    if p.tracks:
        counted = [t for t in p.tracks if t.n_faces >= min_faces(p.frames_sampled)]
        assert (p.verdict == "fake") == any(t.verdict == "fake" for t in counted)


def test_a_clip_is_cut_and_scored_exactly_as_the_runs_training_data(detector, small_run, prepared, fake_clip):
    """The demo clips are deterministic: the training manifest holds the very same clip's crops."""
    p = detector.predict(fake_clip)
    check_consistent(p)
    assert (p.kind, p.frames_sampled, p.frames_with_face) == ("video", 8, 8)
    assert p.threshold == 0.5 and p.costs == {"missed_fake": 1.0, "false_alarm": 1.0}
    assert p.model["name"] == "mobilenetv3_small" and p.model["input_size_px"] == 64

    from unmask.evaluation.evaluator import score_rows
    from unmask.decision.calibration import calibrated_p_fake

    manifest = pd.read_parquet(prepared / "manifest.parquet")
    rows = manifest[manifest["video_id"] == "fake/fake_astronaut_00"].sort_values("frame_index")
    assert [s.frame_index for s in p.timeline] == rows["frame_index"].tolist()
    np.testing.assert_allclose([s.box for s in p.timeline], rows[["x1", "y1", "x2", "y2"]].to_numpy(), atol=0.06)
    model, record = load_classifier(small_run[0].run_dir)
    expected = calibrated_p_fake(score_rows(model, record, rows, prepared, device="cpu"), record)
    np.testing.assert_allclose([s.p_fake for s in p.timeline], expected, atol=1e-5)
    assert p.p_fake == pytest.approx(float(np.mean(expected)))  # today's aggregation: the mean
    # the face step prepare used, all passes on: the same definition cuts the faces here
    config = detector.prepare_config
    assert (config.second_pass, config.near_pass, config.bridge_max_gap) == (True, True, 2)
    assert detector.extractor.second_pass is not None and detector.extractor.near_pass is not None


def test_frames_are_sampled_as_the_training_data_was(detector, fake_clip, tmp_path):
    from unmask.video.sampling import evenly_spaced

    frames = [f.image for f in sample_frames(fake_clip)]
    write_video(tmp_path / "longer.mp4", frames * 3, fps=8, codec="mpeg4")  # 24 frames; the run sampled 8
    p = detector.predict(tmp_path / "longer.mp4")
    assert p.frames_sampled == 8 and [s.frame_index for s in p.timeline] == evenly_spaced(24, 8)
    assert detector.predict(tmp_path / "longer.mp4", num_frames=5).frames_sampled == 5


def test_the_result_survives_json(detector, fake_clip):
    p = detector.predict(fake_clip, keep_faces=True)
    assert len(p.faces) == len(p.timeline) and p.faces[0].dtype == np.uint8
    text = p.to_json(allow_nan=False)
    assert "faces" not in json.loads(text)
    back = Prediction.from_dict(json.loads(text))
    assert back == p and back.faces is None
    assert json.loads(back.to_json()) == json.loads(text)


def _broken_inputs(tmp, fake_clip):
    (tmp / "empty.mp4").write_bytes(b"")
    (tmp / "notes.mp4").write_text("not a video at all\n" * 50)
    data = fake_clip.read_bytes()
    (tmp / "truncated.mp4").write_bytes(data[: len(data) // 2])  # PyAV puts the index (moov) at the end
    (tmp / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    rng = np.random.default_rng(0)
    write_video(tmp / "noise.mp4", [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(6)])
    write_video(tmp / "plain.avi", [np.full((240, 320, 3), 90, np.uint8)] * 6)
    return {
        "empty.mp4": "unreadable",
        "notes.mp4": "unreadable",
        "truncated.mp4": "unreadable",
        "broken.png": "unreadable",
        "noise.mp4": "no_face",
        "plain.avi": "no_face",
        "missing.mp4": "unreadable",
    }


def test_bad_inputs_are_inconclusive_with_a_reason_never_an_error(detector, fake_clip, tmp_path):
    expected = _broken_inputs(tmp_path, fake_clip)
    for name, code in expected.items():
        p = detector.predict(tmp_path / name)
        check_consistent(p)
        assert (p.verdict, p.reason_code, p.p_fake, p.timeline) == ("inconclusive", code, None, []), name
        assert name.split(".")[0] in p.reason or code == "no_face", p.reason
    assert detector.predict(tmp_path / "noise.mp4").frames_sampled == 6
    assert "empty (0 bytes)" in detector.predict(tmp_path / "empty.mp4").reason


def test_a_face_in_too_few_frames_is_inconclusive(detector, fake_clip, tmp_path):
    frames = [f.image for f in sample_frames(fake_clip)]
    assert len(frames) == 8
    grey = np.full_like(frames[0], 90)
    write_video(tmp_path / "brief.mp4", frames[:3] + [grey] * 5, fps=8, codec="mpeg4")
    p = detector.predict(tmp_path / "brief.mp4")
    check_consistent(p)
    assert (p.verdict, p.reason_code, p.frames_with_face) == ("inconclusive", "too_few_faces", 3)
    assert p.p_fake is not None and "3 of 8 sampled frames" in p.reason and "needs 4" in p.reason
    write_video(tmp_path / "enough.mp4", frames[:4] + [grey] * 4, fps=8, codec="mpeg4")
    assert detector.predict(tmp_path / "enough.mp4").reason_code != "too_few_faces"


def test_a_score_at_the_threshold_is_too_close_to_call(small_run, fake_clip):
    model, record = load_classifier(small_run[0].run_dir)
    p = Detector(model, record, device="cpu").predict(fake_clip)
    q = Detector(model, record.replace(threshold=p.p_fake), device="cpu").predict(fake_clip)
    assert (q.verdict, q.reason_code, q.threshold) == ("inconclusive", "too_close", p.p_fake)
    assert "too close to the threshold" in q.reason
    far = record.replace(threshold=min(0.999, p.p_fake * 3) if p.p_fake < 0.3 else p.p_fake / 3)
    assert Detector(model, far, device="cpu").predict(fake_clip).verdict in ("fake", "real")


def stand_in_scores(references: dict[str, np.ndarray], scores: dict[str, float]):
    """A stand-in for the classifier whose scores the test sets: each face crop is told apart by
    its mean colour, as the nearest of ``references`` (name -> mean RGB of that person's crops),
    and gets that person's score. Verdicts then rest on the code, not on a model's training."""

    def score_crops(images) -> np.ndarray:
        means = [image.reshape(-1, 3).mean(0) for image in images]
        return np.array([scores[min(references, key=lambda name: np.abs(m - references[name]).sum())] for m in means])

    return score_crops


def test_two_people_get_a_verdict_each_and_the_clip_is_fake_if_either_is(small_run, demo_clips, tmp_path):
    # Two people side by side, standing still (so that the tracks are the people): hopper left, astronaut right.
    hopper = sample_frames(demo_clips / "real" / "real_hopper_01.mp4")[0].image
    astronaut = sample_frames(demo_clips / "fake" / "fake_astronaut_00.mp4")[0].image
    write_video(tmp_path / "two.mp4", [np.concatenate([hopper, astronaut], axis=1)] * 8, fps=8, codec="mpeg4")
    write_video(tmp_path / "hopper.mp4", [hopper] * 8, fps=8, codec="mpeg4")
    write_video(tmp_path / "astronaut.mp4", [astronaut] * 8, fps=8, codec="mpeg4")
    model, record = load_classifier(small_run[0].run_dir)
    record = record.replace(
        prepare={**record.prepare, "keep": "all"}, video_calibration={"mean": {"identity": True, "prior_fake": 0.5}}
    )  # p_fake: the mean
    detector = Detector(model, record, device="cpu")
    references = {
        name: np.mean(
            [f.reshape(-1, 3).mean(0) for f in detector.predict(tmp_path / f"{name}.mp4", keep_faces=True).faces],
            axis=0,
        )
        for name in ("hopper", "astronaut")
    }
    threshold = record.threshold

    def judge(hopper_p: float, astronaut_p: float):
        detector.score_crops = stand_in_scores(references, {"hopper": hopper_p, "astronaut": astronaut_p})
        p = detector.predict(tmp_path / "two.mp4")
        check_consistent(p, record)
        assert len(p.tracks) == 2 and all(t.n_faces == 8 for t in p.tracks)
        left_id = min(p.timeline, key=lambda s: s.box[0]).track_id
        left, right = sorted(p.tracks, key=lambda t: t.track_id != left_id)
        # each person's faces got that person's score: the tracks are the people
        assert {s.p_fake for s in p.timeline if s.track_id == left.track_id} == {hopper_p}
        assert {s.p_fake for s in p.timeline if s.track_id == right.track_id} == {astronaut_p}
        return p, left, right

    p, left, right = judge(0.05, 0.95)  # far from the threshold (0.5) on either side
    assert threshold == 0.5
    assert (left.verdict, right.verdict, p.verdict) == ("real", "fake", "fake")
    assert p.p_fake == pytest.approx(right.p_fake) == pytest.approx(0.95)
    p, left, right = judge(0.95, 0.05)  # the other person faked: the clip is fake all the same
    assert (left.verdict, right.verdict, p.verdict) == ("fake", "real", "fake")
    assert p.p_fake == pytest.approx(left.p_fake)
    p, left, right = judge(0.05, 0.1)  # neither: real, and its score is the more suspicious person's
    assert (left.verdict, right.verdict, p.verdict) == ("real", "real", "real")
    assert p.p_fake == pytest.approx(0.1)


def test_heatmaps_of_the_most_suspicious_faces(detector, fake_clip):
    p = detector.predict(fake_clip, keep_faces=True)
    heatmaps = detector.explain(p, methods=["gradcam", "eigencam"], max_faces=2)
    assert [h.method for h in heatmaps] == ["gradcam", "eigencam"] * 2
    top = sorted((s.p_fake for s in p.timeline), reverse=True)[:2]
    assert [h.p_fake for h in heatmaps[::2]] == pytest.approx(top)
    for h in heatmaps:
        assert h.face.shape == h.overlay.shape == (224, 224, 3) and h.face.dtype == np.uint8
        assert h.heatmap.shape == (64, 64) and np.isfinite(h.faithfulness)
        assert set(h.to_dict()) == {"frame_index", "time_s", "track_id", "p_fake", "method", "faithfulness", "regions"}
        json.dumps(h.to_dict(), allow_nan=False)
    with pytest.raises(UnmaskError, match="keep_faces=True"):
        detector.explain(detector.predict(fake_clip))


def test_explain_of_a_video_goes_through_the_detector(small_run, detector, fake_clip, tmp_path):
    from unmask.predict.explanation import explain_file as explain

    explanations = explain(small_run[0].run_dir, fake_clip, tmp_path, methods=["gradcam"], max_faces=3)
    p = detector.predict(fake_clip)
    assert [(e.frame_index, e.p_fake) for e in explanations] == [
        (s.frame_index, pytest.approx(s.p_fake)) for s in p.most_suspicious(3)
    ]


def test_an_image_is_judged_and_a_bad_device_is_one_line(detector, demo_clips, tmp_path):
    import cv2

    frame = sample_frames(demo_clips / "real" / "real_hopper_01.mp4")[0].image
    cv2.imwrite(str(tmp_path / "still.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    p = detector.predict(tmp_path / "still.jpg")
    check_consistent(p)
    assert (p.kind, p.frames_sampled, p.frames_with_face, len(p.tracks)) == ("image", 1, 1, 1)
    assert p.verdict in ("fake", "real") or p.reason_code == "too_close"
    with pytest.raises(UnmaskError, match="Unknown aggregation"):
        Detector(detector.model, detector.record, aggregation="meen")


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_in_the_registry_judges_and_explains(name, small_run, fake_clip):
    """Random weights (nothing to download); the recorded face step of the small run."""
    import torch

    torch.manual_seed(0)
    _, record = load_classifier(small_run[0].run_dir)
    record = record.replace(spec=BACKBONES[name], size_px=128)
    detector = Detector(create_model(name).eval(), record, device="cpu")
    p = detector.predict(fake_clip, keep_faces=True, num_frames=4)
    check_consistent(p, record)
    assert p.frames_sampled == 4 and len(p.timeline) == 4 and p.model["name"] == name
    (h,) = detector.explain(p, methods=["gradcam"], max_faces=1)
    assert h.overlay.shape == (224, 224, 3) and h.heatmap.shape == (128, 128)


def test_samples_from_ffpp_get_the_right_kind_of_result(detector, ffpp_samples):
    clips = sorted(ffpp_samples.rglob("*.mp4"))
    assert len(clips) == 4
    for clip in clips:
        p = detector.predict(clip)
        check_consistent(p)
        assert p.kind == "video" and p.frames_sampled == 8 and p.frames_with_face >= 6, clip.name
        assert p.verdict in VERDICTS and (p.p_fake is not None)
        width = 1280 if clip.stem.startswith("004") else 640
        assert all(0 <= s.box[0] < s.box[2] <= width for s in p.timeline)
        assert all(0.0 <= s.p_fake <= 1.0 for s in p.timeline)


def test_a_checkpoint_written_before_the_record_loads_and_judges(small_run, fake_clip, tmp_path):
    """Metadata as older versions wrote it: the costs only in the training config, settings under
    their old names, no calibration fits and no face step recorded, a stale threshold."""
    from unmask.decision.checkpoint import load_tensors, read_metadata, save_checkpoint

    meta = read_metadata(small_run[0].run_dir)
    left_out = ("costs", "calibration", "video_calibration", "class_names", "format")
    old = {k: v for k, v in meta.items() if k not in left_out}
    old["config"] = {
        **{k: v for k, v in meta["config"].items() if k != "size"},
        "size_px": meta["config"]["size"],
        "costs": {"missed_fake": 3.0, "false_alarm": 1.0},
    }
    old["data"] = {k: v for k, v in meta["data"].items() if k != "prepare"}
    old["threshold"] = 0.5
    save_checkpoint(tmp_path / "old" / "model.safetensors", load_tensors(small_run[0].run_dir), old)

    detector = Detector.load(tmp_path / "old", device="cpu")
    assert detector.threshold == pytest.approx(0.25) and detector.costs == {"missed_fake": 3.0, "false_alarm": 1.0}
    assert detector.record.config["size"] == meta["config"]["size"] and "size_px" not in detector.record.config
    assert detector.prepare_config.size == meta["size_px"]  # the crops cut at the model's input size
    p = detector.predict(fake_clip)
    check_consistent(p)
    assert p.threshold == pytest.approx(0.25) and p.frames_sampled > 0
