"""Open videos with PyAV and decode them in order, in display orientation, as RGB frames."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from unmask.errors import UnsupportedMediaError, VideoReadError

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
        if _starts_like_a_video(path):  # a damaged video, not another kind of file
            raise VideoReadError(f"{path.name} is not a readable video: damaged or cut short ({_reason(exc)})") from exc
        raise UnsupportedMediaError(
            f"{path.name} is not a readable video: not a video format ({_reason(exc)}); give an mp4, avi, mov, mkv or webm file"
        ) from exc
    if not _candidates(container):
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        if container.streams.video:
            kinds = [*[k for k in kinds if k != "video"], "only a cover picture"]
        container.close()
        raise UnsupportedMediaError(f"{path.name} has no video stream (it holds {', '.join(kinds)})")
    stream = video_stream(container)
    if stream.codec_context is None:
        container.close()
        raise UnsupportedMediaError(f"{path.name}: no decoder for its video codec here; re-encode it to H.264")
    stream.thread_type = "AUTO"
    if len(_candidates(container)) > 1:
        logger.info(
            "%s holds %d video streams; reading stream #%d (%dx%d), the one ffmpeg would choose",
            path.name,
            len(_candidates(container)),
            stream.index,
            stream.width,
            stream.height,
        )
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


# Leading bytes of the containers unmask reads (offset, magic): MP4/MOV boxes, Matroska/WebM, AVI, MPEG-PS, FLV.
_VIDEO_MAGIC = (
    (4, b"ftyp"),
    (4, b"moov"),
    (4, b"mdat"),
    (4, b"free"),
    (4, b"wide"),
    (0, b"\x1a\x45\xdf\xa3"),
    (0, b"RIFF"),
    (0, b"\x00\x00\x01\xba"),
    (0, b"FLV"),
)


def _starts_like_a_video(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(12)
    return any(head[at : at + len(magic)] == magic for at, magic in _VIDEO_MAGIC)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, av.FFmpegError) and exc.strerror:  # FFmpeg's own words, without errno and file path
        return str(exc.strerror)[:200]
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


def iter_decoded(
    container: av.container.InputContainer, path: Path, max_bad_packets: int = 25
) -> Iterator[av.VideoFrame]:
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
