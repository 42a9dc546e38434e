from fractions import Fraction

import av
import numpy as np

from unmask.video import FrameSampler
from unmask.video.probe import probe_video
from unmask.video.sampling import sample_frames


def write_two_streams(path, small=(64, 48), large=(320, 240), frames=6):
    """An MKV whose stream 0 is a small grey thumbnail track and stream 1 the real picture."""
    with av.open(str(path), mode="w") as container:
        streams = []
        for width, height in (small, large):
            stream = container.add_stream("mpeg4", rate=10)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            streams.append(stream)
        for i in range(frames):
            for stream, value in zip(streams, (40, 200)):
                image = np.full((stream.height, stream.width, 3), value, np.uint8)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, 10)
                for packet in stream.encode(frame):
                    container.mux(packet)
        for stream in streams:
            for packet in stream.encode():
                container.mux(packet)
    return path


def test_the_stream_ffmpeg_would_choose_is_read_and_recorded(tmp_path):
    path = write_two_streams(tmp_path / "two.mkv")
    with av.open(str(path)) as container:
        assert [(s.index, s.width) for s in container.streams.video] == [(0, 64), (1, 320)]
    frames = sample_frames(path, FrameSampler("uniform", 3))
    assert len(frames) == 3
    assert all(f.image.shape == (240, 320, 3) and f.stream_index == 1 for f in frames)
    assert abs(int(frames[0].image.mean()) - 200) < 8
    info = probe_video(path)
    assert (info.width, info.height, info.stream_index) == (320, 240, 1)
