import shutil
import subprocess

import numpy as np
import pytest

from unmask.demo import write_video
from unmask.errors import UnmaskError, VideoReadError
from unmask.video import FrameSampler, probe_video, sample_frames, sampling
from unmask.video.sampling import evenly_spaced


def _frames(n, size=(64, 48), seed=0):
    """n frames, each a different flat grey level plus a moving square, so frames differ."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        im = np.full((size[1], size[0], 3), 40 + (i * 7) % 180, np.uint8)
        im[10:20, (i * 3) % 40 : (i * 3) % 40 + 10] = 255
        out.append(np.clip(im + rng.integers(0, 3, im.shape), 0, 255).astype(np.uint8))
    return out


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mov", ".mkv", ".webm"])
def test_every_container_reads_with_index_time_and_rgb(tmp_path, suffix):
    path = write_video(tmp_path / f"clip{suffix}", _frames(20), fps=10)
    frames = sample_frames(path, FrameSampler("uniform", 5))
    assert [f.index for f in frames] == [0, 5, 10, 14, 19]
    assert [round(f.time_s, 2) for f in frames] == [0.0, 0.5, 1.0, 1.4, 1.9]
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    assert probe_video(path).num_frames == 20


def test_uniform_takes_all_frames_of_a_short_video(tmp_path):
    path = write_video(tmp_path / "short.mp4", _frames(4))
    assert [f.index for f in sample_frames(path, FrameSampler("uniform", 32))] == [0, 1, 2, 3]


def test_frames_come_out_rgb(tmp_path):
    red = np.zeros((48, 64, 3), np.uint8)
    red[..., 0] = 220
    frame = sample_frames(write_video(tmp_path / "red.mp4", [red] * 3), FrameSampler("uniform", 1))[0]
    r, g, b = frame.image.reshape(-1, 3).mean(0)
    assert r > 180 and g < 40 and b < 40


def test_stride_and_its_cap(tmp_path):
    path = write_video(tmp_path / "c.mp4", _frames(30))
    assert [f.index for f in sample_frames(path, FrameSampler("stride", 0, every_n=7))] == [0, 7, 14, 21, 28]
    assert [f.index for f in sample_frames(path, FrameSampler("stride", 3, every_n=7))] == [0, 14, 28]


def test_decoding_stops_after_the_last_needed_frame(tmp_path, monkeypatch):
    path = write_video(tmp_path / "c.mp4", _frames(40))
    seen = []
    real = sampling.iter_decoded

    def counting(container, p):
        for frame in real(container, p):
            seen.append(frame)
            yield frame

    monkeypatch.setattr(sampling, "iter_decoded", counting)
    sample_frames(path, FrameSampler("stride", 2, every_n=5))  # wants frames 0 and 5... capped to [0, 35]
    assert len(seen) == 36
    seen.clear()
    sample_frames(path, FrameSampler("uniform", 1))
    assert len(seen) == 1


def test_codec_keyframes_are_the_encoders_iframes(tmp_path):
    import av

    path = tmp_path / "gop.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10, options={"g": "6", "keyint_min": "6", "sc_threshold": "0"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for image in _frames(24):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    frames = sample_frames(path, FrameSampler("codec_keyframes", 0))
    assert [f.index for f in frames] == [0, 6, 12, 18]
    assert [round(f.time_s, 1) for f in frames] == [0.0, 0.6, 1.2, 1.8]
    # The decoded keyframe is the same picture as frame 12 decoded in order.
    in_order = sample_frames(path, FrameSampler("stride", 0, every_n=12))
    assert np.abs(frames[2].image.astype(int) - in_order[1].image.astype(int)).mean() < 1
    assert [f.index for f in sample_frames(path, FrameSampler("codec_keyframes", 2))] == [0, 18]


def test_content_keyframes_find_the_cuts(tmp_path):
    shots = [np.full((48, 64, 3), level, np.uint8) for level in (30, 200, 90, 150)]
    images = [shots[0]] * 8 + [shots[1]] * 8 + [shots[2]] * 8 + [shots[3]] * 8
    path = write_video(tmp_path / "cuts.mp4", images)
    assert [f.index for f in sample_frames(path, FrameSampler("content_keyframes", 4))] == [0, 8, 16, 24]


def test_rotation_metadata_is_honoured(tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is missing: scripts/setup.sh installs it")
    image = np.zeros((48, 64, 3), np.uint8)
    image[:10, :10] = 255  # a white corner, top left as stored
    plain = write_video(tmp_path / "plain.mp4", [image] * 3)
    rotated = tmp_path / "rotated.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated)],
        check=True,
    )
    frame = sample_frames(rotated, FrameSampler("uniform", 1))[0]
    assert frame.image.shape == (64, 48, 3)
    assert np.abs(frame.image.astype(int) - np.rot90(image, 1).astype(int)).mean() < 8


def test_variable_frame_rate_times_are_the_streams(tmp_path):
    times = [0.0, 0.1, 0.15, 0.5, 0.55, 1.3, 2.0]
    path = write_video(tmp_path / "vfr.mkv", _frames(len(times)), fps=10, times_s=times)
    frames = sample_frames(path, FrameSampler("uniform", 32))
    assert [round(f.time_s, 3) for f in frames] == times


def test_bad_files_raise_one_clear_error(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    with pytest.raises(VideoReadError, match="empty.mp4 is empty"):
        sample_frames(tmp_path / "empty.mp4")
    with pytest.raises(VideoReadError, match="text.mp4 is not a readable video"):
        sample_frames(tmp_path / "text.mp4")
    with pytest.raises(VideoReadError, match="No such video file"):
        sample_frames(tmp_path / "missing.mp4")


def _faststart_mp4(path, n=100):
    """An mp4 whose index (moov) comes first, as web downloads are: cut short, its header still
    promises all ``n`` frames."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=10, options={"g": "10"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(n):
            image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)  # noise: large packets
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_truncated_video_gives_its_good_frames_spread_over_what_decodes(tmp_path):
    data = _faststart_mp4(tmp_path / "whole.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    assert probe_video(cut).num_frames == 100  # the header does not know
    frames = sample_frames(cut, FrameSampler("uniform", 8))
    assert len(frames) == 8, "picks should be re-spread over the frames that decode"
    assert frames[0].index == 0 and 20 <= frames[-1].index < 40
    assert sample_frames(cut, FrameSampler("codec_keyframes", 0))[0].index == 0
    (tmp_path / "head.mp4").write_bytes(data[:300])
    with pytest.raises(VideoReadError):
        sample_frames(tmp_path / "head.mp4")


def test_sampler_arguments_are_checked():
    with pytest.raises(UnmaskError, match="Unknown frame sampler 'keyframes'.*Did you mean"):
        FrameSampler("keyframes")
    with pytest.raises(UnmaskError, match="^every_n must"):
        FrameSampler("stride", every_n=0)


def test_evenly_spaced():
    assert evenly_spaced(10, 3) == [0, 4, 9]
    assert evenly_spaced(3, 10) == [0, 1, 2]
    assert evenly_spaced(0, 5) == []


def test_demo_clips_are_the_same_bytes_in_every_process(tmp_path):
    import sys

    from unmask.demo import make_demo_dataset

    here = make_demo_dataset(tmp_path / "a", clips_per_class=2, seconds=0.5, fps=8)
    code = (
        "import sys; from unmask.demo import make_demo_dataset; "
        "make_demo_dataset(sys.argv[1], clips_per_class=2, seconds=0.5, fps=8)"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "b")], check=True)
    for clip in sorted(here.rglob("*.mp4")):
        assert clip.read_bytes() == (tmp_path / "b" / clip.relative_to(here)).read_bytes(), clip.name
