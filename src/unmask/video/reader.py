"""Open videos with PyAV and decode them in order, in display orientation, as RGB frames."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from unmask.errors import VideoReadError

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        index: position of the frame in display order, from 0.
        time_s: presentation time in seconds (from the stream's timestamps, so VFR is exact).
        image: ``(H, W, 3) uint8`` RGB in display orientation (rotation metadata applied).
        stream_index: the container's stream it was decoded from (see :func:`video_stream`).
    """

    index: int
    time_s: float
    image: np.ndarray
    stream_index: int = 0


@dataclass(frozen=True)
class VideoInfo:
    """What a video is, without decoding it."""

    path: Path
    num_frames: int
    fps: float
    duration_s: float
    width: int
    height: int
    codec: str
    stream_index: int = 0


def open_video(path: str | Path) -> av.container.InputContainer:
    """Open ``path`` for reading, or raise :class:`VideoReadError` saying why not."""
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"No such video file: {path}")
    if path.stat().st_size == 0:
        raise VideoReadError(f"{path.name} is empty (0 bytes); re-copy or remove it")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoReadError(f"{path.name} is not a readable video ({_reason(exc)})") from exc
    if not _candidates(container):
        container.close()
        raise VideoReadError(f"{path.name} has no video stream (audio only, or only a cover picture)")
    stream = video_stream(container)
    stream.thread_type = "AUTO"
    if len(_candidates(container)) > 1:
        logger.info("%s holds %d video streams; reading stream #%d (%dx%d), the one ffmpeg would choose",
                    path.name, len(_candidates(container)), stream.index, stream.width, stream.height)
    return container


def _candidates(container) -> list:
    # A cover picture (attached_pic) is a one-frame "video" stream that ffmpeg never picks.
    return [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]


def video_stream(container: av.container.InputContainer):
    """The video stream ffmpeg would read by default: the most pixels, a ``default`` disposition
    worth as much as 5 megapixels (ffmpeg's own weighting), then the lowest index; never a cover
    picture. Stream 0 is not always it: a container may hold a thumbnail track first."""
    def score(stream) -> tuple:
        default = bool(stream.disposition & av.stream.Disposition.default)
        return ((stream.width or 0) * (stream.height or 0) + 5_000_000 * default, -stream.index)

    return max(_candidates(container), key=score)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def count_frames(container: av.container.InputContainer) -> int:
    """Number of frames in the video stream: the header's count, else a demux pass (no decoding)."""
    stream = video_stream(container)
    if stream.frames and stream.frames > 0:
        return int(stream.frames)
    n = sum(1 for packet in container.demux(stream) if packet.size)
    container.seek(0)
    return n


def probe_video(path: str | Path) -> VideoInfo:
    """Describe a video from its headers (and a demux pass where the header has no frame count)."""
    with open_video(path) as container:
        stream = video_stream(container)
        fps = stream_fps(stream)
        n = count_frames(container)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = n / fps if fps else 0.0
        return VideoInfo(Path(path), n, fps, duration, stream.width, stream.height, stream.codec_context.name, stream.index)


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Convert a decoded frame to ``(H, W, 3) uint8`` RGB, turned upright by its rotation metadata."""
    image = frame.to_ndarray(format="rgb24")
    quarter_turns = (int(round(frame.rotation or 0)) // 90) % 4
    if quarter_turns:
        image = np.ascontiguousarray(np.rot90(image, k=quarter_turns))
    return image


def frame_time(frame: av.VideoFrame, index: int, fps: float) -> float:
    """Presentation time of ``frame`` in seconds; falls back on ``index / fps`` without timestamps."""
    if frame.time is not None:
        return float(frame.time)
    return index / fps if fps else 0.0


def stream_fps(stream) -> float:
    """Nominal frames per second of a stream (0.0 when the container does not say)."""
    return float(stream.average_rate or stream.guessed_rate or 0.0)


def iter_decoded(container: av.container.InputContainer, path: Path, max_bad_packets: int = 25) -> Iterator[av.VideoFrame]:
    """Decode the video stream (see :func:`video_stream`) in display order, packet by packet.

    Scraped datasets hold damaged files: a bad packet is skipped (up to ``max_bad_packets``) and a
    broken tail ends the stream, so that the good frames around the damage are still returned.
    """
    stream = video_stream(container)
    bad = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.FFmpegError, EOFError) as exc:  # the container itself is cut short
            logger.warning("%s: reading stopped early (%s)", path.name, _reason(exc))
            break
        try:
            yield from packet.decode()
        except (av.FFmpegError, EOFError) as exc:
            bad += 1
            logger.warning("%s: skipped a damaged packet (%s)", path.name, _reason(exc))
            if bad > max_bad_packets:
                return
    try:  # drain the frames still held by the decoder
        yield from stream.codec_context.decode(None)
    except (av.FFmpegError, EOFError):
        pass
