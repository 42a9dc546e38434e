"""``predict --engine ray``: inputs judged by the workers of a Ray cluster, one Detector each.

Each worker loads the model once and judges one input at a time with the local engine's own
:func:`~unmask.predict.batch.predict_many`; the driver gets each verdict as it comes and writes it,
so a bad file gets the same inconclusive verdict, in the same file, as on one machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from unmask.predict.batch import predict_many
from unmask.predict.detector import Detector, input_kind
from unmask.predict.result import Prediction
from unmask.utils.ray_cluster import ray_session, run_on_actors


def _start_worker(model: str, device: str | None, prior_fake: float | None, num_frames: int | None):
    import cv2
    import torch

    cv2.setNumThreads(1)  # one core per worker, as Ray counts them: no fight over cores between workers
    torch.set_num_threads(1)
    return Detector.load(model, device=device, prior_fake=prior_fake), num_frames


def _judge(state: tuple[Detector, int | None], path: Path) -> Prediction:
    detector, num_frames = state
    return next(predict_many(detector, [path], num_frames=num_frames))


def judge_on_ray(
    model: str | Path,
    inputs: list[Path],
    on_result: Callable[[Prediction], None],
    *,
    device: str | None = None,
    prior_fake: float | None = None,
    num_frames: int | None = None,
    address: str | None = None,
    workers: int | None = None,
) -> None:
    """Judge ``inputs`` with the run at ``model`` on the Ray cluster at ``address`` (None: one
    started here for the call), calling ``on_result(prediction)`` here as each is judged.

    ``workers``: how many Detectors (default one per CPU of the cluster, one per GPU when
    ``device`` names a CUDA device). A worker that crashes on an input gives it an inconclusive
    ``unreadable`` verdict.
    """
    if not inputs:
        return
    gpus = 1 if (device or "").startswith("cuda") else 0
    last: list[Prediction] = []  # the model's threshold and name, for an input that killed its worker

    def done(path: Path, prediction: Prediction) -> None:
        last[:] = [prediction]
        on_result(prediction)

    def lost(path: Path, why: str) -> None:
        on_result(_worker_died(path, why, last[0] if last else None, str(model)))

    with ray_session(address):
        run_on_actors(
            _start_worker,
            (str(model), device, prior_fake, num_frames),
            _judge,
            inputs,
            on_done=done,
            on_lost=lost,
            workers=workers,
            gpus_per_worker=gpus,
        )


def _worker_died(path: Path, why: str, like: Prediction | None, model: str) -> Prediction:
    """The inconclusive verdict on an input its worker died on (the model's details from ``like``)."""
    return Prediction(
        input=str(path),
        kind=input_kind(path),
        verdict="inconclusive",
        p_fake=None,
        threshold=like.threshold if like else float("nan"),
        costs=like.costs if like else {},
        reason=why,
        reason_code="unreadable",
        model=like.model if like else {"run": model},
    )
