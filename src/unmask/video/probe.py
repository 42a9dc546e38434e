"""Look at a file before any work: is it a video (or picture) unmask can decode, how long, how large.

The web server probes every upload with :func:`probe_video` before queueing it, and the library can
call it at its own door; both get the same answers and the same errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from unmask.errors import VideoReadError
from unmask.video.reader import count_frames, iter_decoded, open_video, stream_fps, video_stream

# Demuxers that hold one still picture: the file is an image, not a clip.
IMAGE_FORMATS = {
    "png_pipe": ".png",
    "jpeg_pipe": ".jpg",
    "webp_pipe": ".webp",
    "bmp_pipe": ".bmp",
    "tiff_pipe": ".tif",
    "image2": ".png",
}

# Demuxers that open files which are not pictures: they show any text (.txt, .nfo) or binary as text art.
NOT_VIDEO_FORMATS = {"tty", "bin", "xbin", "adf", "idf"}
TEXT_ART_CODECS = {"ansi", "bintext", "xbin", "idf"}
# Suffixes of files that are never a clip: a folder's listing skips them without opening them.
NOT_MEDIA_SUFFIXES = {
    ".txt",
    ".md",
    ".csv",
    ".tsv",
    ".json",
    ".jsonl",
    ".yaml",
    ".yml",
    ".xml",
    ".html",
    ".log",
    ".py",
    ".sh",
    ".parquet",
    ".npy",
    ".npz",
    ".pkl",
    ".pt",
    ".pth",
    ".safetensors",
    ".onnx",
    ".zip",
    ".tar",
    ".gz",
    ".pdf",
    ".srt",
    ".vtt",
    ".ass",
    ".wav",
    ".mp3",
    ".flac",
    ".aac",
}


@dataclass(frozen=True)
class VideoInfo:
    """What a video is, from its headers.

    Attributes:
        path: the file.
        num_frames: frames in the video stream read (header count, else counted by demuxing).
        fps: nominal frames per second (0.0 when the container does not say).
        duration_s: length in seconds (0.0 for a still picture).
        width, height: frame size in pixels as stored (before rotation metadata).
        codec: the decoder's name (``h264``, ``mpeg4``, ``png`` ...).
        container: the demuxer's name (``mov,mp4,m4a,3gp,3g2,mj2``, ``matroska,webm``, ``png_pipe`` ...).
        stream_index: the video stream read (the one ffmpeg would choose; see
            :func:`unmask.video.reader.video_stream`).
    """

    path: Path
    num_frames: int
    fps: float
    duration_s: float
    width: int
    height: int
    codec: str
    container: str = ""
    stream_index: int = 0

    @property
    def is_image(self) -> bool:
        """True for a still picture (PNG, JPEG ...) rather than a clip."""
        return self.container in IMAGE_FORMATS


def probe_video(path: str | Path, *, decode_first: bool = True) -> VideoInfo:
    """Describe a video from its headers, and (by default) check that its first frame decodes.

    Args:
        path: the file to look at.
        decode_first: also decode the first frame, so that a file whose headers parse but whose
            pictures do not (a damaged stream, a codec with no decoder) is refused here, before
            any work.

    Returns:
        The video's :class:`VideoInfo`.

    Raises:
        UnsupportedMediaError: not a video (text, audio only, an unknown format) or no decoder for its codec.
        VideoReadError: missing, empty, damaged, or no frame decodes.
    """
    path = Path(path)
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
        width, height = stream.width, stream.height
        if not (width and height) and container.format.name in IMAGE_FORMATS:
            # FFmpeg leaves the size of a picture too large for it (20000x20000) at 0x0: read the header.
            width, height = _picture_size(path) or (width, height)
        info = VideoInfo(
            path,
            n,
            fps,
            max(duration, 0.0),
            width,
            height,
            stream.codec_context.name,
            container.format.name,
            stream.index,
        )
        if decode_first and next(iter_decoded(container, path), None) is None:
            raise VideoReadError(f"{path.name}: no frame of its {info.codec} video decodes (damaged or cut short)")
    return info


def media_kind(path: str | Path) -> str | None:
    """What PyAV makes of ``path``: ``"video"``, ``"image"`` (a still picture), or None (not a
    file PyAV opens, no picture in it, or not even its first frame decodes).

    Cheap enough to ask of every file of a folder whose name does not say it is a video
    (``.mpg``, ``.ts``, ``.3gp``, no suffix ...): it reads the headers and decodes one frame; a
    suffix of :data:`NOT_MEDIA_SUFFIXES` (text, data, audio) is not even opened.
    FFmpeg guesses boldly (it opens some binary junk as raw streams): the decoded frame is what
    tells a video from a lucky guess.
    """
    path = Path(path)
    if path.suffix.lower() in NOT_MEDIA_SUFFIXES:
        return None
    try:
        with open_video(path) as container:
            codec = video_stream(container).codec_context.name
            if container.format.name in NOT_VIDEO_FORMATS or codec in TEXT_ART_CODECS:
                return None
            if next(iter_decoded(container, path, max_bad_packets=2), None) is None:
                return None
            return "image" if container.format.name in IMAGE_FORMATS else "video"
    except (VideoReadError, OSError, av.FFmpegError):
        return None


def _picture_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from a still picture's header by Pillow's parsers (nothing is decoded,
    and no pixel limit applies: the caller judges the size), or None when none reads it."""
    try:
        from PIL import Image
    except ImportError:
        return None
    Image.init()
    with open(path, "rb") as fh:
        prefix = fh.read(16)
        for format_id in Image.ID:
            factory, accept = Image.OPEN[format_id]
            if accept is not None and not accept(prefix):
                continue
            try:
                fh.seek(0)
                return tuple(factory(fh, str(path)).size)
            except Exception:  # not this format, or a header it cannot read: try the next
                continue
    return None
