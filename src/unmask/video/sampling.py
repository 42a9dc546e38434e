"""Choose which frames of a video to look at: one definition shared by prepare, predict and explain.

Strategies:

- ``uniform``: ``num_frames`` frames evenly spaced by frame index over the whole video
  (DeepfakeBench's and the DFDC winners' choice). Decoding stops after the last one needed.
- ``stride``: every ``every_n``-th frame, at most ``num_frames`` of them (0: no cap).
- ``codec_keyframes``: the encoder's I-frames. Only those are decoded, so it is the fastest, but
  where they fall is the encoder's choice (often every 2-10 s, plus scene cuts).
- ``content_keyframes``: frames where the picture changes most (shot cuts, large motion), found by
  comparing small grey thumbnails of every frame. It decodes the whole video, so it is the slowest;
  it is the "key frame extraction" of the paper, which does not say how it chose them.

Both keyframe strategies keep at most ``num_frames`` frames, spread evenly over the candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unmask.errors import SettingError, VideoReadError, unknown_name
from unmask.settings import named_settings
from unmask.video.reader import (
    Frame,
    count_frames,
    frame_time,
    iter_decoded,
    open_video,
    stream_fps,
    to_rgb,
    video_stream,
)

SAMPLERS = ("uniform", "stride", "codec_keyframes", "content_keyframes")


@named_settings("frame sampler setting")
@dataclass(frozen=True)
class FrameSampler:
    """How to sample frames from a video.

    Attributes:
        strategy: one of :data:`SAMPLERS` (``prepare --sampler``).
        num_frames: frames to take (``uniform``) or the most to keep (the others; 0 = no cap).
        every_n: the stride of ``stride``.
    """

    strategy: str = "uniform"
    num_frames: int = 32
    every_n: int = 10

    def __post_init__(self):
        if self.strategy not in SAMPLERS:
            raise unknown_name("frame sampler", self.strategy, SAMPLERS)
        if self.num_frames < 0 or (self.strategy == "uniform" and self.num_frames == 0):
            raise SettingError(f"num_frames must be a positive number, not {self.num_frames}", "num_frames")
        if self.every_n < 1:
            raise SettingError(f"every_n must be at least 1, not {self.every_n}", "every_n")


def sample_frames(path: str | Path, sampler: FrameSampler = FrameSampler()) -> list[Frame]:
    """Decode the frames ``sampler`` chooses from the video at ``path``.

    Returns:
        The frames in display order, each with its index, time and ``(H, W, 3) uint8`` RGB image.

    Raises:
        VideoReadError: the file cannot be opened or yields no decodable frame.
    """
    path = Path(path)
    with open_video(path) as container:
        stream = video_stream(container)
        fps = stream_fps(stream)
        if sampler.strategy == "codec_keyframes":
            frames = _codec_keyframes(container, path, fps, sampler.num_frames)
        elif sampler.strategy == "content_keyframes":
            frames = _decode_indices(container, path, fps, _content_keyframes(container, path, sampler.num_frames))
        else:
            wanted = _plan(sampler, count_frames(container))
            frames = _decode_indices(container, path, fps, wanted)
            if frames and len(frames) < len(wanted):
                # The header promised more frames than the file holds (a truncated download):
                # spread the picks over the frames that really decode.
                container.seek(0)
                decodable = sum(1 for _ in iter_decoded(container, path))
                container.seek(0)
                frames = _decode_indices(container, path, fps, _plan(sampler, decodable))
    if not frames:
        raise VideoReadError(f"{path.name} has no decodable frame")
    return frames


def _plan(sampler: FrameSampler, total: int) -> list[int]:
    """Frame indices the ``uniform`` and ``stride`` samplers want from ``total`` frames."""
    if sampler.strategy == "uniform":
        return evenly_spaced(total, sampler.num_frames)
    return _cap(list(range(0, total, sampler.every_n)), sampler.num_frames)


def evenly_spaced(total: int, count: int) -> list[int]:
    """``count`` distinct indices evenly spread over ``range(total)``, first and last included."""
    if total <= 0:
        return []
    if count >= total:
        return list(range(total))
    return sorted(set(np.linspace(0, total - 1, count).round().astype(int).tolist()))


def _cap(indices: list[int], cap: int) -> list[int]:
    if not cap or len(indices) <= cap:
        return indices
    return [indices[i] for i in evenly_spaced(len(indices), cap)]


def _decode_indices(container, path: Path, fps: float, wanted: list[int]) -> list[Frame]:
    """Decode in order up to the last wanted index, converting only the wanted frames."""
    if not wanted:
        return []
    wanted_set, last = set(wanted), max(wanted)
    stream_index = video_stream(container).index
    frames = []
    for index, frame in enumerate(iter_decoded(container, path)):
        if index in wanted_set:
            frames.append(Frame(index, frame_time(frame, index, fps), to_rgb(frame), stream_index))
        if index >= last:
            break
    return frames


def _codec_keyframes(container, path: Path, fps: float, cap: int) -> list[Frame]:
    """Decode only the I-frames; their display indices come from the packets' timestamps."""
    stream = video_stream(container)
    pts, key_pts = [], []
    for packet in container.demux(stream):
        if packet.size and packet.pts is not None:
            pts.append(packet.pts)
            if packet.is_keyframe:
                key_pts.append(packet.pts)
    container.seek(0)
    index_of = {p: i for i, p in enumerate(sorted(pts))}
    chosen = set(_cap(sorted(key_pts), cap))
    stream.codec_context.skip_frame = "NONKEY"
    frames = []
    for frame in iter_decoded(container, path):
        if frame.pts in chosen:
            index = index_of[frame.pts]
            frames.append(Frame(index, frame_time(frame, index, fps), to_rgb(frame), stream.index))
    return sorted(frames, key=lambda f: f.index)


def _content_keyframes(container, path: Path, cap: int, thumb_px: int = 64) -> list[int]:
    """Indices of the frames whose grey thumbnail differs most from the previous frame's.

    The first frame always counts (it opens the first shot). Picks are kept at least
    ``total / (2 * cap)`` frames apart so that one cut does not fill the whole quota.
    """
    change, previous = [], None
    for frame in iter_decoded(container, path):
        thumb = frame.reformat(width=thumb_px, height=thumb_px, format="gray").to_ndarray().astype(np.float32)
        change.append(np.inf if previous is None else float(np.abs(thumb - previous).mean()))
        previous = thumb
    container.seek(0)
    total = len(change)
    if total == 0:
        return []
    cap = cap or total
    min_gap = max(1, total // (2 * cap))
    picked: list[int] = []
    for index in np.argsort(-np.asarray(change), kind="stable"):
        if all(abs(int(index) - p) >= min_gap for p in picked):
            picked.append(int(index))
            if len(picked) == cap:
                break
    return sorted(picked)
