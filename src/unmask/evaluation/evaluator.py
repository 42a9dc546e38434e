"""``unmask evaluate``: a trained run on a prepared dataset, per frame and per video.

Scores go through the run's own preprocessing and calibration. Two decisions are reported:

- ``raw_argmax``: the paper's decision, the larger of the two raw logits (``z_fake >= z_real``);
  per video, the aggregated raw softmax ``>= 0.5``. Class weights move this operating point.
- ``calibrated_cost``: the calibrated ``p_fake`` (frame calibration; per video, the video
  calibration of :func:`unmask.decision.calibration.video_p_fake`) at the cost-based threshold
  ``c_fa / (c_fa + c_miss)``, optionally for a deployment prior (``prior_fake``).

Score metrics (AUC, log-loss ...) are given for the calibrated ``p_fake`` (``scores``) and for
the raw softmax (``scores_raw``), so the effect of calibration on the log-loss is visible.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from unmask.data.config import crop_differences
from unmask.data.manifest import read_manifest, select_split
from unmask.data.splits import PROTOCOLS
from unmask.errors import ManifestError, SettingError, unknown_name
from unmask.decision.aggregate import AGGREGATIONS, aggregate_videos
from unmask.evaluation.metrics import bootstrap_ci, per_method_metrics, reliability, score_metrics, threshold_metrics
from unmask.evaluation.model_card import model_card, seen_in_training
from unmask.models import build_transform
from unmask.decision.record import CheckpointRecord
from unmask.decision.scoring import score_dataset
from unmask.utils.device import default_device
from unmask.decision.calibration import (
    calibrate_video_scores,
    calibrated_p_fake,
    check_prior,
    decision_threshold,
    p_fake,
    shift_prior,
)
from unmask.decision.checkpoint import load_classifier
from unmask.data.crops import CropDataset
from unmask.utils.atomic import write_atomic
from unmask.utils.outdir import ensure_out_dir
from unmask.utils.progress import ProgressCallback, ProgressMeter

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "all")
DECISIONS = {
    "raw_argmax": "argmax of the raw logits (the paper)",
    "calibrated_cost": "calibrated p_fake at the cost-based threshold",
}


@dataclass(frozen=True)
class EvalResult:
    """What ``evaluate`` measured and where it wrote it."""

    out_dir: Path
    metrics: dict
    frame_scores: pd.DataFrame
    video_scores: pd.DataFrame


def score_rows(
    model, record: CheckpointRecord, rows: pd.DataFrame, root: Path, *, device=None, batch_size: int = 64, on_batch=None
) -> np.ndarray:
    """``(n, 2)`` logits of the manifest ``rows`` (crops under ``root``) through the run's preprocessing;
    ``on_batch(items)`` after each batch."""
    device = default_device(device)
    dataset = CropDataset(rows, root, build_transform(record.spec, record.size_px))
    logits, _ = score_dataset(
        model.to(device), dataset, device, batch_size=batch_size, amp=device.type == "cuda", on_batch=on_batch
    )
    return logits


def warn_crop_differences(record: CheckpointRecord, manifest_meta: dict, data_dir) -> list[str]:
    """Warn when the crops in ``data_dir`` were cut unlike the run's training crops; return how."""
    differences = crop_differences(record.prepare, manifest_meta)
    if differences:
        logger.warning(
            "the crops in %s were cut unlike the run's training data (%s): the scores may be worse than "
            "on crops cut alike; prepare the data with the run's settings to compare fairly",
            data_dir,
            "; ".join(differences),
        )
    return differences


def _level_metrics(labels, scores, raw_scores, groups, threshold: float, bootstrap: int) -> dict:
    return {
        "n": int(len(labels)),
        # the raw softmax is >= 0.5 exactly when z_fake >= z_real: the argmax of the logits
        "raw_argmax": threshold_metrics(labels, raw_scores, 0.5),
        "calibrated_cost": threshold_metrics(labels, scores, threshold),
        "scores": score_metrics(labels, scores),
        "scores_raw": score_metrics(labels, raw_scores),
        "ci95": bootstrap_ci(labels, scores, groups, threshold, n=bootstrap) if bootstrap else None,
    }


def _json_safe(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def evaluate(
    run_dir: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    split: str = "test",
    protocol: str | None = None,
    aggregation: str = "mean",
    device: str | None = None,
    batch_size: int = 64,
    bootstrap: int = 1000,
    report: bool = True,
    explain_per_case: int = 2,
    prior_fake: float | None = None,
    progress: ProgressCallback | None = None,
) -> EvalResult:
    """Evaluate the run in ``run_dir`` on the ``split`` of the manifest in ``data_dir``.

    Args:
        protocol: split protocol; default the run's own. ``split="all"`` takes every crop (for
            a cross-dataset test on a dataset the model never saw).
        aggregation: how frame scores become a video score (see :mod:`unmask.decision.aggregate`).
        bootstrap: resamples over videos for the 95% intervals of AUC and accuracy (0: none).
        report: also write ``report.html``; ``explain_per_case`` Grad-CAM examples per cell of
            the confusion matrix go into its gallery.
        prior_fake: the share of fakes expected where the detector is used; the calibrated
            probabilities carry the validation set's share ``pi_val`` and are shifted to it:
            ``logit(p') = logit(p) + logit(prior_fake) - logit(pi_val)``. None: no shift.
        progress: called with a :class:`unmask.utils.progress.Progress` while crops are scored,
            then for the metrics and report (counted as a tenth of the scoring, an estimate).

    Writes ``metrics.json``, ``frame_scores.csv``, ``video_scores.csv`` (and ``report.html``).
    """
    _check_settings(split, protocol, aggregation, batch_size, bootstrap, prior_fake)
    model, record = load_classifier(run_dir)
    protocol = protocol or record.data["protocol"]
    manifest, manifest_meta = read_manifest(data_dir)
    root = Path(data_dir) if Path(data_dir).is_dir() else Path(data_dir).parent
    rows = manifest if split == "all" else select_split(manifest, protocol, split)
    if rows.empty:
        raise ManifestError(f"{data_dir} has no crops to evaluate")
    warn_crop_differences(record, manifest_meta, data_dir)
    ensure_out_dir(out_dir)  # a file, a read-only folder: one line now, not after the scoring

    seen = seen_in_training(record, rows, manifest=manifest, root=root)
    meter = ProgressMeter(progress, "evaluate", len(rows) * (1.1 if report or bootstrap else 1.0), unit="work")
    logits = _score(model, record, rows, root, meter, device=device, batch_size=batch_size)
    meter.report("metrics" + (" and report" if report else ""))
    frames, videos = _frame_and_video_scores(rows, logits, record, aggregation, prior_fake)
    where = dict(run=str(Path(run_dir).resolve()), data=str(root.resolve()), dataset=manifest_meta.get("dataset"))
    how = dict(split=split, protocol=protocol, aggregation=aggregation, prior_fake=prior_fake, bootstrap=bootstrap)
    result = _write_scores(Path(out_dir), _metrics(frames, videos, record, seen, **where, **how), frames, videos)
    if report:
        from unmask.evaluation.report import write_report

        write_report(
            result,
            run_dir=Path(run_dir),
            data_root=root,
            model=model,
            record=record,
            per_case=explain_per_case,
            device=device,
        )
    meter.finish()
    return result


def _score(model, record, rows, root, meter, *, device, batch_size) -> np.ndarray:
    """The logits of the crops in ``rows``, advancing ``meter`` batch by batch."""
    logger.info("scoring %d crops of %d videos with %s", len(rows), rows["video_id"].nunique(), record.spec.name)
    on_batch = lambda n: meter.advance(n, stage="scoring crops")  # noqa: E731
    return score_rows(model, record, rows, root, device=device, batch_size=batch_size, on_batch=on_batch)


def _check_settings(
    split: str, protocol: str | None, aggregation: str, batch_size: int, bootstrap: int, prior_fake: float | None
) -> None:
    if split not in SPLITS:
        raise unknown_name("split", split, SPLITS)
    if batch_size < 1 or bootstrap < 0:
        raise SettingError(
            f"batch_size must be at least 1 and bootstrap not negative (got {batch_size}, {bootstrap})",
            "batch_size",
            "bootstrap",
        )
    if aggregation not in AGGREGATIONS:
        raise unknown_name("aggregation", aggregation, AGGREGATIONS)
    if protocol is not None and protocol not in PROTOCOLS:
        raise unknown_name("split protocol", protocol, PROTOCOLS)
    check_prior(prior_fake)


def _frame_and_video_scores(
    rows: pd.DataFrame, logits: np.ndarray, record: CheckpointRecord, aggregation: str, prior_fake: float | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per crop and per video: the raw and the calibrated ``p_fake`` (shifted to ``prior_fake`` if given)."""
    frames = rows[
        ["dataset", "video_id", "label", "method", "frame_index", "time_s", "track_id", "crop_path"]
    ].reset_index(drop=True)
    frames["logit_real"], frames["logit_fake"] = logits[:, 0], logits[:, 1]
    frames["p_fake_raw"] = p_fake(logits)
    frames["p_fake"] = calibrated_p_fake(logits, record)  # the video calibration's input: no prior shift
    videos = aggregate_videos(frames, aggregation)
    videos["p_fake_raw"] = aggregate_videos(frames.assign(p_fake=frames["p_fake_raw"]), aggregation)["p_fake"]
    videos["score"] = videos["p_fake"]
    videos["p_fake"] = calibrate_video_scores(videos["score"], record, aggregation, prior_fake=prior_fake)
    frames["p_fake"] = shift_prior(frames["p_fake"], record.frame_prior, prior_fake)
    return frames, videos


def _metrics(
    frames: pd.DataFrame,
    videos: pd.DataFrame,
    record: CheckpointRecord,
    seen: dict,
    *,
    run: str,
    data: str,
    dataset,
    split: str,
    protocol: str,
    aggregation: str,
    prior_fake: float | None,
    bootstrap: int,
) -> dict:
    """``metrics.json``: what was evaluated, how it decides, and how well, per frame and per video."""
    threshold = decision_threshold(record)
    not_recorded = {"note": "not recorded: trained before unmask fitted one"}
    calibration = {
        "frame": record.calibration or None,
        "video": record.video_calibration.get(aggregation, not_recorded),
        "prior_fake": prior_fake,
    }
    return _json_safe(
        {
            "run": run,
            "model": record.spec.name,
            "data": data,
            "dataset": dataset,
            "trained_on": record.data.get("dataset"),
            "trained_data": record.data.get("manifest"),  # the prepared folder it trained on: within or cross
            "split": split,
            "protocol": protocol,
            "train_protocol": record.data["protocol"],
            "aggregation": aggregation,
            "temperature": record.temperature,
            "bias": record.bias,
            "threshold": threshold,
            "costs": asdict(record.costs),
            "calibration": calibration,
            "decisions": DECISIONS,
            # the share of evaluated videos the run trained or validated on, matched by video identity
            "seen_in_training": seen["videos"],
            "seen": seen,
            "frame": _level_metrics(
                frames["label"], frames["p_fake"], frames["p_fake_raw"], frames["video_id"], threshold, bootstrap
            ),
            "video": _level_metrics(
                videos["label"], videos["p_fake"], videos["p_fake_raw"], videos["video_id"], threshold, bootstrap
            ),
            "per_method": per_method_metrics(frames, videos, threshold),
            "reliability": {
                "frame": reliability(frames["label"], frames["p_fake"]),
                "video": reliability(videos["label"], videos["p_fake"]),
            },
            "model_card": model_card(record, seen=seen),
        }
    )


def _write_scores(out_dir: Path, metrics: dict, frames: pd.DataFrame, videos: pd.DataFrame) -> EvalResult:
    """Write ``metrics.json``, ``frame_scores.csv`` and ``video_scores.csv`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with write_atomic(out_dir / "metrics.json", "w") as fh:
        json.dump(metrics, fh, indent=1)
    for name, df in (("frame_scores.csv", frames), ("video_scores.csv", videos)):
        with write_atomic(out_dir / name, "w") as fh:
            df.to_csv(fh, index=False)
    return EvalResult(out_dir, metrics, frames, videos)


def format_metrics(metrics: dict) -> str:
    """A plain-text table of the main figures (for the terminal)."""
    lines = [
        f"{metrics['model']} on {metrics['dataset']} ({metrics['split']} split, {metrics['protocol']} protocol, "
        f"{metrics['aggregation']} aggregation)",
        f"{'level':<7}{'decision':<17}{'n':>6}{'acc':>8}{'prec':>8}{'recall':>8}{'f1':>8}{'auc':>8}{'ap':>8}"
        f"{'eer':>8}{'logloss':>8}",
    ]

    def fmt(x):
        return f"{x:8.4f}" if isinstance(x, (int, float)) else f"{'-':>8}"

    for level in ("frame", "video"):
        m = metrics[level]
        for decision, scores in (("raw_argmax", m["scores_raw"]), ("calibrated_cost", m["scores"])):
            d = m[decision]
            lines.append(
                f"{level:<7}{decision:<17}{m['n']:>6}{fmt(d['accuracy'])}{fmt(d['weighted']['precision'])}"
                f"{fmt(d['weighted']['recall'])}{fmt(d['weighted']['f1'])}{fmt(scores['auc'])}"
                f"{fmt(scores['ap'])}{fmt(scores['eer'])}{fmt(scores['log_loss'])}"
            )
    lines.append(
        "raw_argmax: the paper's argmax of the raw logits (scores: raw softmax); calibrated_cost: calibrated "
        f"p_fake >= {metrics['threshold']:.3f} from the costs (scores: calibrated p_fake)"
    )
    lines.append("precision, recall and F1 are weighted averages over both classes, as in the paper")
    lines += ["", format_per_method(metrics)]
    return "\n".join(lines)


def format_per_method(metrics: dict) -> str:
    """The per-method figures (video level, at the decision threshold) as a plain-text table."""
    per_method = metrics.get("per_method") or {}
    lines = [
        f"per method, video level, calibrated p_fake >= {per_method.get('threshold', metrics['threshold']):.3f}: "
        f"{per_method.get('pairing', '')}",
        f"{'dataset':<10}{'method':<18}{'fake':>6}{'real':>6}{'auc':>8}{'acc':>8}{'recall':>8}",
    ]

    def fmt(x):
        return f"{x:8.4f}" if isinstance(x, (int, float)) else f"{'-':>8}"

    for row in per_method.get("rows", []):
        v = row["video"]
        method = row["method"] + (" (real)" if row["label"] == "real" else "")
        lines.append(
            f"{str(row['dataset']):<10}{method:<18}{row['videos_fake']:>6}{row['videos_real']:>6}"
            f"{fmt(v['auc'])}{fmt(v['accuracy'])}{fmt(v['recall'])}"
        )
    return "\n".join(lines)
