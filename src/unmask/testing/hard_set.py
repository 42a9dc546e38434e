"""Hard footage for the face step, made on demand: dark, small, blurred, compressed, turned faces.

The clips are made from the real FF++ clips in ``../shared/samples`` (where present) and from the
public-domain portraits of :mod:`unmask.demo`, so nothing is downloaded and no footage is shipped.
Each clip holds 32 frames (the default sampler takes all of them). Conditions:

- ``dark``: brightness and gamma down (gamma 2.2, gain 0.45), sensor noise up (sigma 7).
- ``small``: the picture shrunk so the face is 60-120 px wide, placed in a 1920x1080 frame over a
  faceless textured scene (DFDC's "person a few metres away").
- ``small_dark``: both at once and worse, as in a dark room filmed at 1080p from a few metres:
  dimmer (gain 0.2, gamma 2.4), noisier (sigma 10), slightly out of focus, CRF 32. The hardest case:
  the 640 px first pass alone finds the face in about 60% of the frames.
- ``tiny_dark``: a face about 28 px wide (its box ~38 px high, the head ~50 px) in a 1920x1080
  frame, dimmed (gain 0.3, gamma 2.2), noisy (sigma 10), CRF 28: a person at the back of a dark
  room. Under the first two passes' 32 px face floor, and near MTCNN's smallest once shrunk to
  their 640 or 1280 px: only the small-face pass, which looks at the frame in full, finds it.
- ``blur``: motion blur, a streak 8-16% of the face's width in a direction that changes per frame.
- ``crf40``: re-encoded with libx264 at CRF 40 (blocky, smeared).
- ``rotated``: stored a quarter turn sideways with rotation metadata (as phones write it).
- ``profile``: a window following the face, turned in perspective about a vertical axis (to 55%
  of its width) and cut so the face's near side touches the frame's edge (a profile-ish face).
- ``cutaway``: ``small_dark`` with a cut to the faceless scene for frames 12-19
  (:data:`CUTAWAY`): the face step must find the face before and after the cut, and nothing in it
  (a search near where the face last was must not invent one).
- ``noface``: faceless scenes (coffee, rocket, cat, bricks ...) panning, at 1080p; ``noface_dark``
  the same, dark and noisy. The detector must find nothing in them.

Encoding goes through the ``ffmpeg`` program (Debian's; ``scripts/setup.sh`` installs it) with one
x264 thread, so the same inputs give the same bytes.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from unmask.errors import UnmaskError

NUM_FRAMES = 32
FRAME_1080P = (1920, 1080)
CONDITIONS = ("dark", "small", "small_dark", "tiny_dark", "blur", "crf40", "rotated", "profile", "cutaway")
NOFACE_CONDITIONS = ("noface", "noface_dark")
TINY_FACE_PX = (26, 30)  # ``tiny_dark``'s face widths
CUTAWAY = range(12, 20)  # the frames of a ``cutaway`` clip that show no face


@dataclass(frozen=True)
class HardClip:
    """One generated clip: its file, the source it was made from, its condition, whether it has a face."""

    path: Path
    source: str
    condition: str
    has_face: bool

    @property
    def faceless_frames(self) -> range:
        """The frames (of its :data:`NUM_FRAMES`) that show no face."""
        if not self.has_face:
            return range(NUM_FRAMES)
        return CUTAWAY if self.condition == "cutaway" else range(0)


def _darken(
    frames: list[np.ndarray], rng: np.random.Generator, *, gain: float = 0.45, gamma: float = 2.2, noise: float = 7.0
) -> list[np.ndarray]:
    """A dim room: brightness times ``gain`` after a ``gamma`` curve (mean luma ~20), sensor noise."""
    lut = np.round(255 * gain * (np.arange(256) / 255.0) ** gamma).astype(np.uint8)
    # a few noise fields, cycled: drawing 6 M normals per 1080p frame would take most of the time
    bank = [(rng.standard_normal(frames[0].shape, dtype=np.float32) * noise).astype(np.int16) for _ in range(4)]
    out = []
    for t, frame in enumerate(frames):
        noise = (
            bank[t % len(bank)]
            if frame.shape == bank[0].shape
            else (rng.standard_normal(frame.shape, dtype=np.float32) * noise).astype(np.int16)
        )
        out.append(np.clip(cv2.LUT(frame, lut).astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return out


@functools.lru_cache(maxsize=8)
def _photo(name: str) -> np.ndarray:
    from skimage import data

    photo = getattr(data, name)()
    return np.stack([photo] * 3, axis=-1) if photo.ndim == 2 else photo


SCENES = ("coffee", "rocket", "chelsea", "brick", "gravel", "grass")  # scikit-image samples without a face


def _scene(size: tuple[int, int], t: int, names=SCENES) -> np.ndarray:
    """A faceless photo (scikit-image's samples), cycled and panned over ``t``, at ``size``."""
    width, height = size
    photo = _photo(names[(t // 6) % len(names)])
    scale = max(width / photo.shape[1], height / photo.shape[0]) * 1.25
    big = cv2.resize(
        photo, (int(photo.shape[1] * scale) + 1, int(photo.shape[0] * scale) + 1), interpolation=cv2.INTER_LINEAR
    )
    dx = int((big.shape[1] - width) * ((t % 6) / 5))
    dy = int((big.shape[0] - height) * 0.5)
    return np.ascontiguousarray(big[dy : dy + height, dx : dx + width])


def _shrink(
    frames: list[np.ndarray], face_px: float, rng: np.random.Generator, widths: tuple[float, float] = (60, 120)
) -> list[np.ndarray]:
    """Shrink each frame so its face is ``widths`` px wide (from one to the other and back over
    the clip) and place it in a 1920x1080 scene."""
    width, height = FRAME_1080P
    out = []
    for t, frame in enumerate(frames):
        target = widths[0] + (widths[1] - widths[0]) * (0.5 + 0.5 * np.sin(2 * np.pi * t / len(frames)))
        scale = target / face_px
        small = cv2.resize(
            frame,
            (max(1, int(frame.shape[1] * scale)), max(1, int(frame.shape[0] * scale))),
            interpolation=cv2.INTER_AREA,
        )
        canvas = _scene(FRAME_1080P, t + 3)
        x0 = int(width * 0.2 + (width * 0.5 - small.shape[1] / 2) * (0.5 + 0.3 * np.sin(t / 5)))
        y0 = int(max(0, (height - small.shape[0]) * 0.4))
        x0 = min(max(x0, 0), width - small.shape[1])
        canvas[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small[: height - y0, : width - x0]
        out.append(canvas)
    return out


def _motion_blur(frames: list[np.ndarray], face_px: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Blur each frame along a streak 8-16% of the face's width, at an angle that changes per frame
    (a head turning or the camera panning during a 1/25 s exposure)."""
    out = []
    for frame in frames:
        length = max(3, int(face_px * rng.uniform(0.08, 0.16))) | 1
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        out.append(cv2.filter2D(frame, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT))
    return out


def _profile(frames: list[np.ndarray], *, turn: float = 0.55, cut: float = 0.0) -> list[np.ndarray]:
    """A window that follows the face, turned about a vertical axis (shrunk to ``turn`` of its
    width, its far side squeezed) and cut so the frame's left edge runs along the face's near side
    (``cut``: the share of the face's width that leaves the frame)."""
    boxes = _face_boxes(frames)
    x1, y1, x2, y2 = boxes[0]
    face_w = x2 - x1
    side = int(max(x2 - x1, y2 - y1) * 3) & ~1
    src = np.float32([[0, 0], [side, 0], [side, side], [0, side]])
    squeeze = (1 - turn) * 0.3
    dst = np.float32([[0, 0], [side * turn, side * squeeze], [side * turn, side * (1 - squeeze)], [0, side]])
    warp = cv2.getPerspectiveTransform(src, dst)
    face_x = cv2.perspectiveTransform(np.float32([[[side / 2 - face_w / 2, side / 2]]]), warp)[0, 0, 0]
    left = max(0, int(face_x + face_w * cut))
    width = (int(side * turn) - left) & ~1
    out = []
    for frame, (x1, y1, x2, y2) in zip(frames, boxes):
        shift = np.float32([[1, 0, side / 2 - (x1 + x2) / 2], [0, 1, side / 2 - (y1 + y2) / 2]])
        window = cv2.warpAffine(frame, shift, (side, side), borderMode=cv2.BORDER_REFLECT)
        turned = cv2.warpPerspective(window, warp, (side, side), borderMode=cv2.BORDER_REPLICATE)
        out.append(np.ascontiguousarray(turned[:, left : left + width]))
    return out


def _face_boxes(frames: list[np.ndarray]) -> list[tuple[float, ...]]:
    """The box of one face through the clean source frames: the largest face of the first frame,
    then in each frame the face at the same place (the last box where none is).

    Following one face, not the largest of each frame: FF++ clip 004 shows a picture with a face
    beside the presenter, and a window jumping to it would leave frames with no human face.
    """
    from unmask.faces.detectors import create_detector
    from unmask.faces.track import distance, same_place

    detector = create_detector("mtcnn")
    first = detector.detect(frames[:1])[0]
    if not first:
        raise UnmaskError("The hard set's source clip shows no face in its first frame; pick another source")
    last, boxes = max(first, key=lambda d: d.area).box, []
    # Sources are steady clips: a face that moves more than its width between two frames, or is
    # lost, leaves the window where it last was (it is not searched for again).
    for found in detector.detect(frames):
        near = min((d.box for d in found), key=lambda box: distance(last, box), default=None)
        last = near if near is not None and same_place(last, near) else last
        boxes.append(last)
    return boxes


def encode(path: Path, frames: Sequence[np.ndarray], *, fps: int = 25, crf: int = 23, rotate: int = 0) -> Path:
    """Encode RGB ``frames`` as H.264 in ``path`` with ffmpeg (one thread: same bytes every run).

    ``rotate`` writes rotation metadata (degrees): the frames must then be stored turned the other
    way, so that a player, and :func:`unmask.video.sample_frames`, shows them upright.
    """
    if shutil.which("ffmpeg") is None:
        raise UnmaskError("The hard set needs the ffmpeg program: apt-get install ffmpeg (scripts/setup.sh does)")
    height, width = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width}x{height}",
        "-r",
        str(fps),
        "-i",
        "-",
        "-c:v",
        "libx264",
        "-preset",
        "superfast",
        "-crf",
        str(crf),
        "-threads",
        "1",
        "-x264-params",
        "threads=1",
        "-pix_fmt",
        "yuv420p",
    ]
    target = path.with_suffix(".plain.mp4") if rotate else path
    subprocess.run(cmd + [str(target)], input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames), check=True)
    if rotate:  # ffmpeg 5 writes the display matrix only when it copies a stream, not when it encodes
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-i",
                str(target),
                "-c",
                "copy",
                "-metadata:s:v:0",
                f"rotate={rotate}",
                str(path),
            ],
            check=True,
        )
        target.unlink()
    return path


def _face_width(frame: np.ndarray) -> tuple[float, tuple[float, ...]]:
    """Width and box of the largest face in ``frame`` (full resolution), to size the conditions."""
    from unmask.faces.detectors import create_detector

    found = create_detector("mtcnn", max_side_px=0).detect([frame])[0]
    if not found:
        raise UnmaskError("The hard set's source frame shows no face; pick another source clip")
    box = max(found, key=lambda d: d.area).box
    return box[2] - box[0], box


def make_condition(frames: list[np.ndarray], condition: str, path: Path, *, seed: int = 0) -> Path:
    """Apply ``condition`` (one of :data:`CONDITIONS`) to a face clip's ``frames`` and encode it."""
    rng = np.random.default_rng(seed)
    if condition in ("small", "small_dark", "tiny_dark", "cutaway", "blur"):
        face_px, box = _face_width(frames[0])
    if condition == "dark":
        return encode(path, _darken(frames, rng))
    if condition == "small":
        return encode(path, _shrink(frames, face_px, rng))
    if condition in ("small_dark", "cutaway"):
        # a dark room at a distance: dimmer than ``dark``, out of focus, and compressed as uploads are
        small = _shrink(frames, face_px, rng)
        if condition == "cutaway":  # the faceless scene the face was shown over, alone
            small = [_scene(FRAME_1080P, t + 3) if t in CUTAWAY else f for t, f in enumerate(small)]
        small = [cv2.GaussianBlur(f, (0, 0), 1.2) for f in small]
        return encode(path, _darken(small, rng, gain=0.2, gamma=2.4, noise=10.0), crf=32)
    if condition == "tiny_dark":
        return encode(path, _darken(_shrink(frames, face_px, rng, TINY_FACE_PX), rng, gain=0.3, noise=10.0), crf=28)
    if condition == "blur":
        return encode(path, _motion_blur(frames, face_px, rng))
    if condition == "crf40":
        return encode(path, frames, crf=40)
    if condition == "rotated":  # stored a quarter turn clockwise; the metadata turns it back
        return encode(path, [np.rot90(f, k=-1) for f in frames], rotate=90)
    if condition == "profile":
        return encode(path, _profile(frames))
    raise ValueError(f"unknown condition {condition!r}")


def make_noface(condition: str, path: Path, *, seed: int = 0) -> Path:
    """A 1080p clip of faceless scenes (``noface``), or the same dark and noisy (``noface_dark``)."""
    frames = [_scene(FRAME_1080P, t) for t in range(NUM_FRAMES)]
    if condition == "noface_dark":
        frames = _darken(frames, np.random.default_rng(seed))
    return encode(path, frames)


def portrait_frames(name: str = "hopper", size: tuple[int, int] = (1280, 720), seed: int = 0) -> list[np.ndarray]:
    """32 frames of a package portrait drifting over a background (as the demo clips)."""
    from unmask.demo import FACE_BOXES, _head, load_portraits, render_frames

    return render_frames(_head(load_portraits()[name], FACE_BOXES[name]), num_frames=NUM_FRAMES, size=size, seed=seed)


def clip_frames(path: str | Path) -> list[np.ndarray]:
    """32 evenly spaced frames of a real clip (the pipeline's own sampler)."""
    from unmask.video import FrameSampler, sample_frames

    return [f.image for f in sample_frames(path, FrameSampler("uniform", NUM_FRAMES))]


def make_hard_set(
    out_dir: str | Path,
    sources: dict[str, Callable[[], list[np.ndarray]]],
    *,
    conditions: Sequence[str] = CONDITIONS,
    noface: Sequence[str] = NOFACE_CONDITIONS,
    overwrite: bool = False,
) -> list[HardClip]:
    """Write ``out_dir/<source>_<condition>.mp4`` for every source and condition, plus the no-face clips.

    Args:
        sources: name -> a function giving that source's 32 RGB frames (e.g. :func:`clip_frames`,
            :func:`portrait_frames`); called only when one of its clips is missing.
        overwrite: False keeps clips already there (they come out the same).

    Returns:
        The clips, face clips first.
    """
    out_dir = Path(out_dir)
    clips = []
    for name, frames_of in sources.items():
        frames = None
        for condition in conditions:
            path = out_dir / f"{name}_{condition}.mp4"
            if overwrite or not path.is_file():
                frames = frames if frames is not None else frames_of()
                make_condition(frames, condition, path)
            clips.append(HardClip(path, name, condition, True))
    for condition in noface:
        path = out_dir / f"scenes_{condition}.mp4"
        if overwrite or not path.is_file():
            make_noface(condition, path)
        clips.append(HardClip(path, "scenes", condition, False))
    return clips
