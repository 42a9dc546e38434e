"""Small face videos made from public-domain photos that ship inside PyPI packages.

Used by the Quick start and the tests, so that neither needs a dataset download. The photos are
NASA's portrait of Eileen Collins (``skimage.data.astronaut``) and the US Navy's portrait of Grace
Hopper (matplotlib's sample data); both are in the public domain.

Real clips move, scale and re-light one portrait over a synthetic background. Fake clips do the
same after a crude face swap: the other portrait's inner face, colour-matched, softened (as a
low-resolution generator's output is) and blended in through a feathered ellipse, which leaves
the blending traces that deepfake detectors learn to see.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from unmask.errors import UnmaskError

# Face boxes (x1, y1, x2, y2) in the original photos, found once with the mtcnn detector.
FACE_BOXES = {"astronaut": (179, 60, 268, 173), "hopper": (176, 118, 357, 337)}
CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".avi": "mpeg4", ".webm": "libvpx-vp9"}


def load_portraits() -> dict[str, np.ndarray]:
    """The two public-domain portraits as ``(H, W, 3) uint8`` RGB arrays."""
    try:
        import matplotlib.cbook
        from PIL import Image
        from skimage import data
    except ImportError as exc:
        raise UnmaskError("Demo clips need scikit-image and matplotlib: pip install 'unmask[demo]'") from exc
    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as im:
        hopper = np.asarray(im.convert("RGB"))
    return {"astronaut": data.astronaut(), "hopper": hopper}


def swap_face(target: np.ndarray, target_box, source: np.ndarray, source_box, *, blur: int = 3) -> np.ndarray:
    """Paste ``source``'s inner face over ``target``'s, colour-matched and softened."""
    out = target.astype(np.float32)
    tx1, ty1, tx2, ty2 = _inner(target_box)
    sx1, sy1, sx2, sy2 = _inner(source_box)
    w, h = tx2 - tx1, ty2 - ty1
    face = cv2.resize(source[sy1:sy2, sx1:sx2], (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    region = out[ty1:ty2, tx1:tx2]
    face = (face - face.mean((0, 1))) / (face.std((0, 1)) + 1e-6) * region.std((0, 1)) + region.mean((0, 1))
    small = cv2.resize(face, (max(1, w // blur), max(1, h // blur)), interpolation=cv2.INTER_AREA)
    face = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (w // 2, h // 2), (int(w * 0.45), int(h * 0.47)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, w * 0.04))[..., None]
    out[ty1:ty2, tx1:tx2] = region * (1 - mask) + face * mask
    return np.clip(out, 0, 255).astype(np.uint8)


def _inner(box, shrink: float = 0.85):
    x1, y1, x2, y2 = box
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * shrink, (y2 - y1) * shrink
    return int(cx - w / 2), int(cy - h / 2), int(cx + w / 2), int(cy + h / 2)


def _head(photo: np.ndarray, box, grow: float = 2.2) -> np.ndarray:
    """A square portrait window around ``box``."""
    x1, y1, x2, y2 = box
    side = int(max(x2 - x1, y2 - y1) * grow)
    side = min(side, photo.shape[0], photo.shape[1])
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    left = min(max(cx - side // 2, 0), photo.shape[1] - side)
    top = min(max(cy - side // 2, 0), photo.shape[0] - side)
    return photo[top : top + side, left : left + side]


def render_frames(head: np.ndarray, *, num_frames: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    """Frames of ``head`` drifting, zooming and changing light over a random smooth background."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    colours = rng.uniform(40, 215, (2, 3)).astype(np.float32)
    ramp = ((xx / width + yy / height) / 2)[..., None]
    background = colours[0] * (1 - ramp) + colours[1] * ramp
    phase = rng.uniform(0, 2 * np.pi, 3)
    frames = []
    for t in range(num_frames):
        s = t / max(1, num_frames - 1)
        side = int(height * (0.62 + 0.12 * np.sin(2 * np.pi * s + phase[0])))
        cx = width / 2 + width * 0.18 * np.sin(2 * np.pi * s + phase[1])
        cy = height / 2 + height * 0.08 * np.sin(2 * np.pi * s + phase[2])
        light = 0.95 + 0.2 * np.sin(2 * np.pi * s * 1.5 + phase[0])
        frame = background.copy()
        patch = cv2.resize(head, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32) * light
        x0, y0 = int(cx - side / 2), int(cy - side / 2)
        fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
        frame[fy0:fy1, fx0:fx1] = patch[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
        frame += rng.normal(0, 2.0, frame.shape).astype(np.float32)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def write_video(
    path: str | Path,
    frames: list[np.ndarray],
    fps: int = 10,
    *,
    codec: str | None = None,
    times_s: list[float] | None = None,
) -> Path:
    """Encode RGB ``frames`` to ``path`` with PyAV (codec from the suffix unless given).

    ``times_s`` gives each frame's presentation time for variable-frame-rate clips.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = codec or CODECS.get(path.suffix.lower(), "libx264")
    height, width = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        if codec == "mpeg4":
            stream.bit_rate = 2_000_000  # ffmpeg's default of 200 kb/s would smear the faces
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if times_s is not None:  # millisecond timestamps in both the codec and the container
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if times_s is not None:
                frame.pts, frame.time_base = int(round(times_s[i] * 1000)), Fraction(1, 1000)
            else:  # explicit timestamps: left unset, the encoder's rate control saw varying ones
                frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_demo_dataset(
    out_dir: str | Path,
    *,
    clips_per_class: int = 4,
    seconds: float = 2.0,
    fps: int = 10,
    size: tuple[int, int] = (320, 240),
    suffix: str = ".mp4",
    seed: int = 0,
    codec: str = "mpeg4",
    overwrite: bool = True,
) -> Path:
    """Write ``out_dir/real/*.mp4`` and ``out_dir/fake/*.mp4`` (the ``folder`` layout).

    Clips alternate between the two portraits; fakes carry the other portrait's face. The codec
    is MPEG-4 Part 2 by default because it encodes the same frames to the same bytes in every
    process; libx264 through PyAV did not here, which made tests and demos vary from run to run.
    With ``overwrite=False`` clips already there are kept (they would come out the same).
    """
    out_dir = Path(out_dir)
    photos = load_portraits()
    names = sorted(photos)
    fakes = {
        name: swap_face(photos[name], FACE_BOXES[name], photos[other], FACE_BOXES[other])
        for name, other in zip(names, names[::-1])
    }
    num_frames = max(1, int(round(seconds * fps)))
    for i in range(clips_per_class):
        name = names[i % len(names)]
        for label, photo in (("real", photos[name]), ("fake", fakes[name])):
            path = out_dir / label / f"{label}_{name}_{i:02d}{suffix}"
            if path.is_file() and not overwrite:
                continue
            frames = render_frames(
                _head(photo, FACE_BOXES[name]),
                num_frames=num_frames,
                size=size,
                seed=seed * 1000 + i * 2 + (label == "fake"),
            )
            write_video(path, frames, fps, codec=codec)
    return out_dir
