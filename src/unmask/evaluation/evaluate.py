"""``unmask evaluate``: a trained run on a prepared dataset, per frame and per video.

Scores go through the run's own preprocessing and calibration. Two decisions are reported:

- ``raw_argmax``: the paper's decision, the larger of the two raw logits (``z_fake >= z_real``);
  per video, the aggregated raw softmax ``>= 0.5``. Class weights move this operating point.
- ``calibrated_cost``: the calibrated ``p_fake`` (frame calibration; per video, the video
  calibration of :func:`unmask.training.calibration.video_p_fake`) at the cost-based threshold
  ``c_fa / (c_fa + c_miss)``, optionally for a deployment prior (``prior_fake``).

Score metrics (AUC, log-loss ...) are given for the calibrated ``p_fake`` (``scores``) and for
the raw softmax (``scores_raw``), so the effect of calibration on the log-loss is visible.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from unmask.data.manifest import read_manifest, select_split
from unmask.data.splits import PROTOCOLS
from unmask.errors import ManifestError, UnmaskError, unknown_name
from unmask.evaluation.aggregate import AGGREGATIONS, aggregate_videos
from unmask.evaluation.metrics import bootstrap_ci, score_metrics, threshold_metrics
from unmask.models import build_transform
from unmask.models.inference import default_device, score_dataset
from unmask.models.registry import spec_from_dict
from unmask.training.calibration import (
    calibrate_video_scores,
    calibrated_p_fake,
    check_prior,
    decision_threshold,
    p_fake,
    shift_prior,
)
from unmask.training.checkpoint import load_classifier
from unmask.training.data import CropDataset
from unmask.utils.atomic import write_atomic
from unmask.utils.outdir import ensure_out_dir

SPLITS = ("train", "val", "test", "all")
DECISIONS = {"raw_argmax": "argmax of the raw logits (the paper)",
             "calibrated_cost": "calibrated p_fake at the cost-based threshold"}


@dataclass(frozen=True)
class EvalResult:
    """What ``evaluate`` measured and where it wrote it."""

    out_dir: Path
    metrics: dict
    frame_scores: pd.DataFrame
    video_scores: pd.DataFrame


def score_rows(model, meta: dict, rows: pd.DataFrame, root: Path, *, device=None, batch_size: int = 64) -> np.ndarray:
    """``(n, 2)`` logits of the manifest ``rows`` (crops under ``root``) through the run's preprocessing."""
    device = default_device(device)
    dataset = CropDataset(rows, root, build_transform(spec_from_dict(meta["spec"]), meta["size_px"]))
    logits, _ = score_dataset(model.to(device), dataset, device, batch_size=batch_size, amp=device.type == "cuda")
    return logits


def seen_in_training(meta: dict, manifest: pd.DataFrame, root: Path, rows: pd.DataFrame) -> float:
    """Share of the evaluated crops whose video the run trained or validated on (0 on other data).

    Evaluating a run under another protocol than its own scores videos it has seen: a run trained
    on the paper's frame split has seen frames of nearly every video. This number says how much.
    """
    if str(root.resolve()) != meta["data"].get("manifest"):
        return 0.0
    column = f"split_{meta['data']['protocol']}"
    seen = set(manifest.loc[manifest[column].isin(["train", "val"]), "video_id"])
    return float(rows["video_id"].isin(seen).mean())


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


def evaluate(run_dir: str | Path, data_dir: str | Path, out_dir: str | Path, *, split: str = "test",
             protocol: str | None = None, aggregation: str = "mean", device: str | None = None,
             batch_size: int = 64, bootstrap: int = 1000, report: bool = True,
             explain_per_case: int = 2, prior_fake: float | None = None) -> EvalResult:
    """Evaluate the run in ``run_dir`` on the ``split`` of the manifest in ``data_dir``.

    Args:
        protocol: split protocol; default the run's own. ``split="all"`` takes every crop (for
            a cross-dataset test on a dataset the model never saw).
        aggregation: how frame scores become a video score (see :mod:`unmask.evaluation.aggregate`).
        bootstrap: resamples over videos for the 95% intervals of AUC and accuracy (0: none).
        report: also write ``report.html``; ``explain_per_case`` Grad-CAM examples per cell of
            the confusion matrix go into its gallery.
        prior_fake: the share of fakes expected where the detector is used; the calibrated
            probabilities carry the validation set's share ``pi_val`` and are shifted to it:
            ``logit(p') = logit(p) + logit(prior_fake) - logit(pi_val)``. None: no shift.

    Writes ``metrics.json``, ``frame_scores.csv``, ``video_scores.csv`` (and ``report.html``).
    """
    if split not in SPLITS:
        raise unknown_name("split", split, SPLITS)
    if batch_size < 1 or bootstrap < 0:
        raise UnmaskError(f"--batch-size must be at least 1 and --bootstrap not negative (got {batch_size}, {bootstrap})")
    if aggregation not in AGGREGATIONS:
        raise unknown_name("aggregation", aggregation, AGGREGATIONS)
    if protocol is not None and protocol not in PROTOCOLS:
        raise unknown_name("split protocol", protocol, PROTOCOLS)
    check_prior(prior_fake)
    model, meta = load_classifier(run_dir)
    protocol = protocol or meta["data"]["protocol"]
    manifest, manifest_meta = read_manifest(data_dir)
    root = Path(data_dir) if Path(data_dir).is_dir() else Path(data_dir).parent
    rows = manifest if split == "all" else select_split(manifest, protocol, split)
    if rows.empty:
        raise ManifestError(f"{data_dir} has no crops to evaluate")
    ensure_out_dir(out_dir)  # a file, a read-only folder: one line now, not after the scoring

    seen = seen_in_training(meta, manifest, root, rows)
    temperature, threshold = float(meta["temperature"]), decision_threshold(meta)
    logits = score_rows(model, meta, rows, root, device=device, batch_size=batch_size)
    frames = rows[["video_id", "label", "method", "frame_index", "time_s", "track_id", "crop_path"]].reset_index(drop=True)
    frames["logit_real"], frames["logit_fake"] = logits[:, 0], logits[:, 1]
    frames["p_fake_raw"] = p_fake(logits)
    frames["p_fake"] = calibrated_p_fake(logits, meta)  # the video calibration's input: no prior shift
    videos = aggregate_videos(frames, aggregation)
    videos["p_fake_raw"] = aggregate_videos(frames.assign(p_fake=frames["p_fake_raw"]), aggregation)["p_fake"]
    videos["score"] = videos["p_fake"]
    videos["p_fake"] = calibrate_video_scores(videos["score"], meta, aggregation, prior_fake=prior_fake)
    frames["p_fake"] = shift_prior(frames["p_fake"], meta.get("calibration", {}).get("prior_fake", 0.5), prior_fake)
    not_recorded = {"note": "not recorded: trained before unmask fitted one"}
    calibration = {"frame": meta.get("calibration"),
                   "video": meta.get("video_calibration", {}).get(aggregation, not_recorded), "prior_fake": prior_fake}

    metrics = _json_safe({
        "run": str(Path(run_dir).resolve()), "model": meta["spec"]["name"], "data": str(root.resolve()),
        "dataset": manifest_meta.get("dataset"), "trained_on": meta["data"].get("dataset"),
        "trained_data": meta["data"].get("manifest"),  # the prepared folder it trained on: within or cross
        "split": split, "protocol": protocol, "train_protocol": meta["data"]["protocol"], "aggregation": aggregation,
        "temperature": temperature, "bias": meta.get("bias", 0.0), "threshold": threshold, "costs": meta.get("costs"),
        "calibration": calibration, "decisions": DECISIONS, "seen_in_training": seen,
        "frame": _level_metrics(frames["label"], frames["p_fake"], frames["p_fake_raw"], frames["video_id"],
                                threshold, bootstrap),
        "video": _level_metrics(videos["label"], videos["p_fake"], videos["p_fake_raw"], videos["video_id"],
                                threshold, bootstrap),
    })
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with write_atomic(out_dir / "metrics.json", "w") as fh:
        json.dump(metrics, fh, indent=1)
    for name, df in (("frame_scores.csv", frames), ("video_scores.csv", videos)):
        with write_atomic(out_dir / name, "w") as fh:
            df.to_csv(fh, index=False)
    result = EvalResult(out_dir, metrics, frames, videos)
    if report:
        from unmask.evaluation.report import write_report

        write_report(result, run_dir=Path(run_dir), data_root=root, model=model, meta=meta,
                     per_case=explain_per_case, device=device)
    return result


def format_metrics(metrics: dict) -> str:
    """A plain-text table of the main figures (for the terminal)."""
    lines = [f"{metrics['model']} on {metrics['dataset']} ({metrics['split']} split, {metrics['protocol']} protocol, "
             f"{metrics['aggregation']} aggregation)",
             f"{'level':<7}{'decision':<17}{'n':>6}{'acc':>8}{'prec':>8}{'recall':>8}{'f1':>8}{'auc':>8}{'ap':>8}"
             f"{'eer':>8}{'logloss':>8}"]

    def fmt(x):
        return f"{x:8.4f}" if isinstance(x, (int, float)) else f"{'-':>8}"

    for level in ("frame", "video"):
        m = metrics[level]
        for decision, scores in (("raw_argmax", m["scores_raw"]), ("calibrated_cost", m["scores"])):
            d = m[decision]
            lines.append(f"{level:<7}{decision:<17}{m['n']:>6}{fmt(d['accuracy'])}{fmt(d['weighted']['precision'])}"
                         f"{fmt(d['weighted']['recall'])}{fmt(d['weighted']['f1'])}{fmt(scores['auc'])}"
                         f"{fmt(scores['ap'])}{fmt(scores['eer'])}{fmt(scores['log_loss'])}")
    lines.append("raw_argmax: the paper's argmax of the raw logits (scores: raw softmax); calibrated_cost: calibrated "
                 f"p_fake >= {metrics['threshold']:.3f} from the costs (scores: calibrated p_fake)")
    lines.append("precision, recall and F1 are weighted averages over both classes, as in the paper")
    return "\n".join(lines)
