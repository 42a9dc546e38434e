"""The judged clip, re-encoded with every face boxed and labelled with its score.

Only sampled frames were scored; every other frame shows the boxes of the nearest sampled frame
(so the boxes move in steps of the sampling interval). Boxes are red when the face's ``p_fake``
is at or above the threshold, green below it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from unmask.errors import UnmaskError
from unmask.faces.crop import DEFAULT_MARGIN, square_box
from unmask.predict.result import Heatmap, Prediction

FAKE_RGB, REAL_RGB = (230, 40, 40), (40, 200, 70)


def draw_faces(
    image: np.ndarray, scores, threshold: float, *, heatmaps: dict | None = None, margin: float = DEFAULT_MARGIN
) -> np.ndarray:
    """Draw ``scores`` (:class:`FrameScore` of one frame) on a copy of ``image`` (``(H, W, 3) uint8`` RGB).

    ``heatmaps`` maps ``(frame_index, track_id)`` to a ``(h, w)`` map in [0, 1], blended (jet,
    alpha 0.5) over the face's square crop region (``margin`` as the crops were cut).
    """
    from unmask.explain.overlay import overlay_heatmap

    out = image.copy()
    height, width = out.shape[:2]
    thickness = max(2, round(min(height, width) / 240))
    for s in scores:
        if heatmaps and (s.frame_index, s.track_id) in heatmaps:
            x1, y1, x2, y2 = square_box(s.box, (width, height), margin)
            out[y1:y2, x1:x2] = overlay_heatmap(out[y1:y2, x1:x2], heatmaps[(s.frame_index, s.track_id)])
        colour = FAKE_RGB if s.p_fake >= threshold else REAL_RGB
        x1, y1, x2, y2 = (int(round(v)) for v in s.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        label = f"#{s.track_id} p(fake) {s.p_fake:.2f}"
        scale = max(0.4, min(height, width) / 900)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else min(height - 1, y2 + th + 4)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 4, ty + base // 2), colour, -1)
        cv2.putText(
            out, label, (x1 + 2, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
        )
    return out


def write_overlay(
    prediction: Prediction,
    out_path: str | Path,
    *,
    heatmaps: list[Heatmap] | None = None,
    margin: float = DEFAULT_MARGIN,
    codec: str = "libx264",
) -> Path:
    """Write ``prediction``'s video to ``out_path`` with each face boxed and labelled.

    Every frame of the input is kept (same count, size and rate). ``heatmaps`` (e.g. one method's
    for every face) are blended over their faces, held like the boxes.

    Raises:
        UnmaskError: the prediction is not of a readable video.
    """
    import av

    from unmask.utils.atomic import atomic_path
    from unmask.video.reader import iter_decoded, open_video, to_rgb, video_stream

    if prediction.kind != "video" or prediction.reason_code == "unreadable":
        raise UnmaskError(f"A boxed copy needs a readable video; {Path(prediction.input).name} is not one")
    by_frame: dict[int, list] = {}
    for s in prediction.timeline:
        by_frame.setdefault(s.frame_index, []).append(s)
    sampled = np.array(sorted(by_frame))
    maps = {(h.frame_index, h.track_id): h.heatmap for h in heatmaps or []}
    out_path = Path(out_path)
    with open_video(prediction.input) as source, atomic_path(out_path) as tmp:
        in_stream = video_stream(source)
        rate = in_stream.average_rate or in_stream.guessed_rate or 25
        with av.open(str(tmp), mode="w") as sink:
            stream = None
            for index, frame in enumerate(iter_decoded(source, Path(prediction.input))):
                image = to_rgb(frame)
                if stream is None:
                    stream = sink.add_stream(codec, rate=rate)
                    stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
                if len(sampled):
                    nearest = int(sampled[np.abs(sampled - index).argmin()])
                    held = by_frame[nearest]
                    held_maps = {
                        (index, s.track_id): maps[(nearest, s.track_id)] for s in held if (nearest, s.track_id) in maps
                    }
                    image = draw_faces(
                        image, [_at(s, index) for s in held], prediction.threshold, heatmaps=held_maps, margin=margin
                    )
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    sink.mux(packet)
            if stream is None:
                raise UnmaskError(f"{Path(prediction.input).name} has no decodable frame")
            for packet in stream.encode():
                sink.mux(packet)
    return out_path


def _at(score, index: int):
    """``score`` moved to frame ``index`` (its box and p_fake held)."""
    from dataclasses import replace

    return replace(score, frame_index=index)
