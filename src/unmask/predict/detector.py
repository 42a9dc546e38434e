"""The one judge: a trained run, loaded once, that gives videos and images a verdict.

``Detector.load(run).predict(path)`` samples frames, finds and cuts the faces exactly as the
run's training data was cut (the prepare settings recorded in the checkpoint), scores them
through the model's own preprocessing and calibration, and decides per person and per clip
(:mod:`unmask.decision.verdict`). ``unmask predict``, ``unmask explain`` (for videos) and
``unmask serve`` all go through it; each step is the function ``prepare`` and ``evaluate`` call.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from unmask.decision.verdict import decide_clip, decide_track, min_faces
from unmask.errors import SettingError, UnmaskError, unknown_name
from unmask.predict.result import FrameScore, Heatmap, Prediction, TrackVerdict

if TYPE_CHECKING:
    from unmask.decision.record import CheckpointRecord

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
STAGES = ("decode", "detect", "crop", "model", "aggregate")

Progress = Callable[[str, float], None]


def check_num_frames(num_frames: int | None) -> None:
    """Refuse a frame count that cannot be sampled (None: the run's own).

    Raises:
        SettingError: ``num_frames`` is below 1.
    """
    if num_frames is not None and (isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1):
        raise SettingError(f"num_frames must be a whole number of at least 1, not {num_frames!r}", "num_frames")


def input_kind(path: str | Path) -> str:
    """``image`` for the usual image suffixes, else ``video`` (PyAV decides what it can read)."""
    return "image" if Path(path).suffix.lower() in IMAGE_SUFFIXES else "video"


class Detector:
    """A trained run, ready to judge inputs.

    Build it with :meth:`load`. It holds the model (on ``device``), its preprocessing, its
    calibration, decision threshold and costs, and the face step the run's training data was cut
    with. It is not thread-safe: give each worker thread its own, or serialise calls.

    Args:
        model: a :class:`unmask.models.DeepfakeClassifier`, or a :class:`~unmask.predict.scorer.Scorer`
            (an export on ONNX Runtime: ``device`` must then be the CPU).
        record: its checkpoint's :class:`~unmask.decision.record.CheckpointRecord`.
        source: where it was loaded from (reported in each result).
        device: ``cpu``, ``cuda`` ...; default a GPU when there is one.
        aggregation: how a person's face scores become one (see :mod:`unmask.decision.aggregate`).
        prior_fake: the share of fakes expected where the detector is used; the video ``p_fake`` is
            moved to it, ``logit(p') = logit(p) + logit(prior_fake) - logit(pi_val)`` with ``pi_val``
            the validation videos' share. None: the validation share stays.
    """

    def __init__(
        self,
        model,
        record: CheckpointRecord,
        *,
        source: str = "",
        device: str | None = None,
        aggregation: str = "mean",
        prior_fake: float | None = None,
    ):
        from unmask.data.crop_video import make_extractor
        from unmask.decision.aggregate import AGGREGATIONS
        from unmask.decision.calibration import check_prior
        from unmask.predict.scorer import Scorer

        if aggregation not in AGGREGATIONS:
            raise unknown_name("aggregation", aggregation, AGGREGATIONS)
        self.record = record
        self.source = source
        self.aggregation = aggregation
        check_prior(prior_fake)
        self.prior_fake = prior_fake
        self.spec = record.spec
        self.size_px = record.size_px
        self.threshold = record.threshold
        self.costs = asdict(record.costs)
        self.prepare_config = record.prepare_config
        if isinstance(model, Scorer):  # an export: no torch, on the CPU
            self._check_torch_free(device)
            self.scorer, self.model, self.device, detector_device = model, None, None, None
        else:
            self._load_torch(model, device)
            detector_device = None if self.device.type == "cpu" else str(self.device)
        self.extractor = make_extractor(replace(self.prepare_config, device=detector_device))

    def _load_torch(self, model, device: str | None) -> None:
        """Put the PyTorch ``model`` on ``device``, scored through the transform training used."""
        import torch

        from unmask.models import build_transform
        from unmask.predict.scorer import TorchScorer

        try:
            self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        except (RuntimeError, TypeError):  # "Invalid device string: 'tpu9'"
            raise UnmaskError(f"Unknown device {device!r}; give cpu, cuda or cuda:N", "device") from None
        try:
            self.model = model.to(self.device).eval()
        except (RuntimeError, AssertionError) as exc:  # e.g. "cuda" on a machine without one
            raise UnmaskError(
                f"Cannot use device {device!r}: {str(exc).splitlines()[0]}; try device cpu", "device"
            ) from exc
        self.transform = build_transform(self.spec, self.size_px)
        self.scorer = TorchScorer(self.model, self.transform, self.device)

    def _check_torch_free(self, device: str | None) -> None:
        """An export runs on ONNX Runtime's CPU and with a face detector that needs no torch."""
        from unmask.faces.detectors import DETECTORS

        if device not in (None, "cpu"):
            raise UnmaskError(
                f"An exported detector runs on the CPU (ONNX Runtime), not {device!r}; "
                "give the run folder to use a GPU",
                "device",
            )
        name = self.prepare_config.detector
        if getattr(DETECTORS.get(name), "needs_torch", False):
            raise UnmaskError(
                f"This export's face step uses the face detector {name!r}, which runs on torch: "
                "install torch and give the run folder, or prepare with --detector mtcnn"
            )

    @property
    def can_explain(self) -> bool:
        """Whether :meth:`explain` can make heatmaps (they need the PyTorch model's gradients)."""
        return self.model is not None

    @property
    def explain_needs(self) -> str:
        """What to do when :attr:`can_explain` is False: one sentence for an error line."""
        return "an exported detector (ONNX) has no gradients; give the run folder of `unmask train` instead"

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, **kwargs) -> "Detector":
        """Load the run folder (its ``model.safetensors``) or checkpoint file at ``path``, or the export
        folder (``unmask export RUN --out DIR``) or ``.onnx`` file there: it judges on ONNX Runtime,
        without importing torch, with the same face step, calibration and decisions.

        Raises:
            UnmaskError: no checkpoint there, an incomplete or uncalibrated one, a bad device; an
                export whose face detector needs torch.
        """
        from unmask.predict.scorer import OnnxScorer, onnx_file

        exported = onnx_file(path)
        if exported is not None:  # torch is not imported on this path
            scorer = OnnxScorer(exported)
            return cls(scorer, scorer.record, source=str(path), device=device, **kwargs)
        from unmask.decision.checkpoint import load_classifier

        model, record = load_classifier(path)
        return cls(model, record, source=str(path), device=device, **kwargs)

    @property
    def model_info(self) -> dict:
        """Which model judges: reported in every :class:`Prediction`."""
        return {
            "name": self.spec.name,
            "run": self.source,
            "input_size_px": self.size_px,
            "aggregation": self.aggregation,
            "prior_fake": self.prior_fake,
        }

    def score_crops(self, images) -> np.ndarray:
        """Calibrated ``p_fake (n,)`` of ``(h, w, 3) uint8`` RGB face crops."""
        from unmask.decision.calibration import calibrated_p_fake

        return calibrated_p_fake(self.scorer.logits(list(images)), self.record)

    def predict(
        self,
        path: str | Path,
        *,
        progress: Progress | None = None,
        keep_faces: bool = False,
        num_frames: int | None = None,
        is_crop: bool = False,
    ) -> Prediction:
        """Judge the video or image at ``path``.

        Never raises for a bad input: an unreadable file, one with no face, too few faces or a
        score too close to the threshold gives ``verdict="inconclusive"`` with ``reason``.

        Args:
            progress: called as ``progress(stage, fraction)`` while it works: ``stage`` one of
                :data:`STAGES`, ``fraction`` of the whole work done, in [0, 1].
            keep_faces: keep the face crops in ``Prediction.faces`` (for :meth:`explain`).
            num_frames: frames to sample from a video (default: as the training data was).
            is_crop: the image is already a face crop: skip face detection.
        """
        check_num_frames(num_frames)
        started = time.perf_counter()
        path = Path(path)
        kind = input_kind(path)
        timings = dict.fromkeys(STAGES, 0.0)
        report = progress or (lambda stage, fraction: None)

        def inconclusive(code: str, reason: str, **extra) -> Prediction:
            timings["total"] = time.perf_counter() - started
            return self._result(path, kind, "inconclusive", None, timings, reason_code=code, reason=reason, **extra)

        report("decode", 0.0)
        tick = time.perf_counter()
        try:
            frames = self._frames(path, kind, num_frames)
        except UnmaskError as exc:
            return inconclusive("unreadable", str(exc))
        except Exception as exc:  # a decoder's odd failure on a damaged file must not end a batch
            logger.warning("%s: unexpected %s while reading: %s", path, type(exc).__name__, exc)
            return inconclusive("unreadable", f"{path.name} could not be read ({type(exc).__name__}: {exc})")
        timings["decode"] = time.perf_counter() - tick
        extent = self._extent(path, frames) if kind == "video" else {}
        crops = self._crops(frames, is_crop and kind == "image", timings, report)
        n_frames = len(frames)
        if not crops:
            noun = "the image" if kind == "image" else f"{n_frames} sampled frames"
            return inconclusive("no_face", f"No face found in {noun} of {path.name}", frames_sampled=n_frames, **extent)
        report("model", 0.85)

        tick = time.perf_counter()
        p_fake = self.score_crops([c.image for c in crops])
        timings["model"] = time.perf_counter() - tick
        report("aggregate", 0.98)

        tick = time.perf_counter()
        clip, tracks, timeline = self._decide(crops, p_fake, n_frames)
        with_face = len({c.frame_index for c in crops})
        reason = self._reason(clip, max(t.n_faces for t in tracks), n_frames)
        timings["aggregate"] = time.perf_counter() - tick
        timings["total"] = time.perf_counter() - started
        report("aggregate", 1.0)
        return self._result(
            path,
            kind,
            clip.verdict,
            clip.p_fake,
            timings,
            reason=reason,
            reason_code=clip.reason_code,
            tracks=tracks,
            timeline=timeline,
            frames_sampled=n_frames,
            frames_with_face=with_face,
            faces=[c.image for c in crops] if keep_faces else None,
            landmarks=[_crop_landmarks(c) for c in crops] if keep_faces else None,
            **extent,
        )

    def _crops(self, frames, whole_image: bool, timings: dict, report: Progress) -> list:
        """The face crops of ``frames``, cut as the training data was; ``whole_image``: the one
        image is already a face crop, kept uncut. Fills the ``detect`` and ``crop`` timings."""
        report("detect", 0.3)
        tick = time.perf_counter()
        if whole_image:
            from unmask.faces.detectors import Detection

            height, width = frames[0].image.shape[:2]
            detections = ([[Detection((0.0, 0.0, float(width), float(height)), 1.0)]], [["1"]])
        else:
            detections = self.extractor.detect(frames)
        timings["detect"] = time.perf_counter() - tick
        report("crop", 0.8)

        tick = time.perf_counter()
        crops = self.extractor.crop(frames, detections)
        if whole_image:
            crops = [replace(crops[0], image=frames[0].image)]
        timings["crop"] = time.perf_counter() - tick
        return crops

    def _decide(self, crops, p_fake, n_frames: int):
        """Each person's verdict from their faces' scores, then the clip's: ``(clip, tracks, timeline)``."""
        timeline = [
            FrameScore(
                c.frame_index, round(float(c.time_s), 4), int(c.track_id), float(p), [round(float(v), 1) for v in c.box]
            )
            for c, p in zip(crops, p_fake)
        ]
        tracks, decisions = [], []
        for track_id in sorted({s.track_id for s in timeline}):
            mine = [s for s in timeline if s.track_id == track_id]
            decision = decide_track(
                [s.p_fake for s in mine],
                threshold=self.threshold,
                frames_sampled=n_frames,
                frame_index=[s.frame_index for s in mine],
                aggregation=self.aggregation,
                record=self.record,
                prior_fake=self.prior_fake,
            )
            decisions.append(decision)
            tracks.append(
                TrackVerdict(track_id, decision.verdict, decision.p_fake, len(mine), mine[0].time_s, mine[-1].time_s)
            )
        return decide_clip(decisions), tracks, timeline

    def explain(
        self, prediction: Prediction, *, methods=None, max_faces: int = 4, size_px: int | None = None, on_method=None
    ) -> list[Heatmap]:
        """Heatmaps of the ``max_faces`` most suspicious faces of ``prediction``, most suspicious first.

        Args:
            prediction: a result of :meth:`predict` made with ``keep_faces=True``.
            methods: explanation methods (default the paper's four,
                :data:`unmask.explain.PAPER_METHODS`).
            size_px: side of the returned ``face`` and ``overlay`` images (default the model's
                input size, at least 224).
            on_method: called with each method's name when its heatmaps are done.

        Returns:
            One :class:`Heatmap` per face and method (faces in order, methods in order).

        Raises:
            UnmaskError: an exported detector (:attr:`can_explain` is False), no faces kept.
        """
        if not self.can_explain:  # before the explainers' imports: they need torch
            raise UnmaskError(f"The heatmaps need the PyTorch model: {self.explain_needs}")
        import cv2

        from unmask.explain.cam import PAPER_METHODS, check_methods
        from unmask.explain.explainer import explain_crops
        from unmask.explain.overlay import overlay_heatmap
        from unmask.explain.regions import region_shares

        methods = check_methods(PAPER_METHODS if methods is None else methods)
        if prediction.faces is None:
            raise UnmaskError("explain needs the faces: predict with keep_faces=True")
        if max_faces < 1:
            raise UnmaskError(f"max_faces must be at least 1, not {max_faces}")
        if not prediction.timeline or not methods:
            return []
        side = size_px or max(224, self.size_px)
        order = np.argsort([-s.p_fake for s in prediction.timeline], kind="stable")[:max_faces]
        crops = [prediction.faces[i] for i in order]
        points = [prediction.landmarks[i] if prediction.landmarks else None for i in order]
        _, results = explain_crops(self.model, self.record, crops, methods, device=self.device, on_method=on_method)
        heatmaps = []
        for k, i in enumerate(order):
            score = prediction.timeline[i]
            shrink = crops[k].shape[0] > side
            face = cv2.resize(crops[k], (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
            for method in methods:
                maps, faithful = results[method]
                regions = region_shares(maps[k], points[k], points_side_px=crops[k].shape[0])
                heatmaps.append(
                    Heatmap(
                        score.frame_index,
                        score.time_s,
                        score.track_id,
                        score.p_fake,
                        method,
                        float(faithful[k]),
                        face,
                        overlay_heatmap(face, maps[k]),
                        maps[k],
                        regions,
                    )
                )
        return heatmaps

    def _frames(self, path: Path, kind: str, num_frames: int | None):
        """The frames to look at: the recorded sampler's (or ``num_frames``), or the image."""
        from unmask.video.reader import Frame
        from unmask.video.sampling import sample_frames

        if not path.is_file():
            raise UnmaskError(f"No such file: {path}")
        if kind == "image":
            import cv2

            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise UnmaskError(f"{path.name} is not a readable image")
            return [Frame(0, 0.0, cv2.cvtColor(image, cv2.COLOR_BGR2RGB))]
        sampler = self.prepare_config.sampler
        if num_frames is not None:
            sampler = replace(sampler, num_frames=num_frames)
        return sample_frames(path, sampler)

    def _extent(self, path: Path, frames) -> dict:
        """``duration_s`` (the headers'), ``decoded_s`` (to the end of the last frame looked at) and,
        when much of the clip did not decode (a file cut short or damaged), a ``note`` saying so.

        The ``uniform`` and ``stride`` samplers look at (or near) the last frame that decodes, so
        there the gap is the missing part; the keyframe samplers' last pick may lie well before the
        end of a whole file, so they get no note."""
        from unmask.video.probe import probe_video

        try:
            info = probe_video(path, decode_first=False)
        except Exception as exc:  # the frames decoded: a probe's failure only loses the note
            logger.warning("%s: its length could not be read (%s)", path.name, exc)
            return {}
        step = 1.0 / info.fps if info.fps else 0.0
        duration = round(info.duration_s, 3) if info.duration_s > 0 else None
        decoded = round(max(f.time_s for f in frames) + step, 3) if frames else 0.0
        if duration is not None:
            decoded = min(decoded, duration)
        extent = {"duration_s": duration, "decoded_s": decoded}
        reaches_end = self.prepare_config.sampler.strategy in ("uniform", "stride")
        if reaches_end and duration is not None and duration - decoded > max(1.0, 0.1 * duration):
            extent["note"] = (
                f"only {decoded:.1f} s of its {duration:.1f} s decode (the file is cut short or damaged); "
                "the verdict rests on that part"
            )
        return extent

    def _reason(self, clip, longest_track: int, n_frames: int) -> str | None:
        """The sentence that says why ``clip`` is inconclusive."""
        if clip.reason_code == "too_few_faces":
            return (
                f"No person is seen often enough: at most {longest_track} of {n_frames} sampled frames show the "
                f"same face, and a verdict needs {min_faces(n_frames)}"
            )
        if clip.reason_code == "too_close":
            return (
                f"p_fake {clip.p_fake:.2f} is too close to the threshold {self.threshold:.2f} to call: "
                "either verdict would cost about as much"
            )
        return None

    def _result(self, path: Path, kind: str, verdict: str, p_fake, timings: dict, **fields) -> Prediction:
        return Prediction(
            input=str(path),
            kind=kind,
            verdict=verdict,
            p_fake=None if p_fake is None or not np.isfinite(p_fake) else float(p_fake),
            threshold=self.threshold,
            costs=dict(self.costs),
            timings={k: round(v, 4) for k, v in timings.items()},
            model=self.model_info,
            **fields,
        )


def _crop_landmarks(crop) -> np.ndarray | None:
    """The crop's five landmarks in its own pixels (None where the detector gave none)."""
    from unmask.explain.regions import landmarks_in_crop

    return landmarks_in_crop(crop.landmarks, crop.crop_box, crop.image.shape[0])
