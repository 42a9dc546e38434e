"""``report.html``: one self-contained page (images inlined) to look at an evaluation."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve  # noqa: E402

from unmask.decision.record import CheckpointRecord  # noqa: E402
from unmask.utils.atomic import atomic_path  # noqa: E402
from unmask.utils.rendering import render  # noqa: E402

GALLERY_METHODS = ("gradcam", "gradcam++")
CASES = (
    ("TP", "fake called fake", 1, True),
    ("FN", "fake called real", 1, False),
    ("FP", "real called fake", 0, True),
    ("TN", "real called real", 0, False),
)


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _array_png(rgb: np.ndarray) -> str:
    import cv2

    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return "data:image/png;base64," + base64.b64encode(data.tobytes()).decode()


def _confusion(metrics: dict, level: str) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(7, 3))
    for ax, decision in zip(axes, ("raw_argmax", "calibrated_cost")):
        m = np.array(metrics[level][decision]["confusion_matrix"])
        ax.imshow(m, cmap="Blues")
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, str(v), ha="center", va="center", color="black" if v < m.max() / 2 else "white")
        ax.set_xticks([0, 1], ["real", "fake"])
        ax.set_yticks([0, 1], ["real", "fake"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{level}, {decision} (t={metrics[level][decision]['threshold']:.2f})")
    return _png(fig)


def _curves(frames: pd.DataFrame, videos: pd.DataFrame, threshold: float) -> str | None:
    """ROC (with its AUC and the operating point of the decision threshold) and precision-recall."""
    if frames["label"].nunique() < 2:
        return None
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, df in (("frame", frames), ("video", videos)):
        if df["label"].nunique() < 2:
            continue
        fpr, tpr, _ = roc_curve(df["label"], df["p_fake"])
        (line,) = roc_ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(df['label'], df['p_fake']):.3f})")
        called, fake = df["p_fake"] >= threshold, df["label"] == 1
        op_fpr, op_tpr = float(called[~fake].mean()), float(called[fake].mean())
        roc_ax.plot(
            [op_fpr],
            [op_tpr],
            marker="o",
            markersize=8,
            markerfacecolor="none",
            color=line.get_color(),
            label=f"{name} at p >= {threshold:.2f}: FPR {op_fpr:.2f}, TPR {op_tpr:.2f}",
        )
        precision, recall, _ = precision_recall_curve(df["label"], df["p_fake"])
        pr_ax.plot(recall, precision, label=name)
    roc_ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (calibrated p_fake)")
    pr_ax.set(xlabel="recall (fake)", ylabel="precision (fake)", title="precision-recall")
    roc_ax.legend(fontsize=7, loc="lower right")
    pr_ax.legend(fontsize=7)
    return _png(fig)


def _training_curves(run_dir: Path, chosen_epoch: int | None) -> str | None:
    """Loss, accuracy and AUC per epoch, the epoch whose weights the run kept marked."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    history = pd.read_csv(path)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    for ax, metric in zip(axes, ("loss", "acc", "auc")):
        for split in ("train", "val"):
            ax.plot(history["epoch"], history[f"{split}_{metric}"], marker="o", markersize=3, label=split)
        if chosen_epoch:
            ax.axvline(chosen_epoch, color="green", linestyle="--", linewidth=1, label=f"chosen epoch {chosen_epoch}")
        ax.set(xlabel="epoch", title=metric)
        ax.legend(fontsize=7)
    return _png(fig)


def wrongly_judged(videos: pd.DataFrame, threshold: float, count: int = 4) -> pd.DataFrame:
    """The ``count`` videos judged wrongly at ``threshold`` (calibrated p_fake), worst first.

    Only wrong verdicts: a real video called real is never "worst-judged", however high its score.
    """
    wrong = videos[(videos["p_fake"] >= threshold) != (videos["label"] == 1)]
    return wrong.assign(error=(wrong["p_fake"] - wrong["label"]).abs()).nlargest(count, "error")


def _timelines(frames: pd.DataFrame, videos: pd.DataFrame, threshold: float, count: int = 4) -> list[tuple[str, str]]:
    out = []
    for _, video in wrongly_judged(videos, threshold, count).iterrows():
        rows = frames[frames["video_id"] == video["video_id"]].sort_values("time_s")
        fig, ax = plt.subplots(figsize=(6, 2.2))
        for track, group in rows.groupby("track_id"):
            ax.plot(group["time_s"], group["p_fake"], marker=".", label=f"track {track}")
        ax.axhline(threshold, color="red", linestyle="--", linewidth=0.8, label="threshold")
        ax.set(ylim=(-0.02, 1.02), xlabel="time (s)", ylabel="p(fake)")
        ax.legend(fontsize=7, loc="upper right")
        truth, called = ("fake", "real") if video["label"] else ("real", "fake")
        out.append(
            (f"{video['video_id']} (truly {truth}, called {called}: video p(fake) {video['p_fake']:.3f})", _png(fig))
        )
    return out


def _video_rows(videos: pd.DataFrame, threshold: float) -> list[dict]:
    """Every evaluated video's score and verdict, most suspicious first."""
    rows = []
    for v in videos.sort_values("p_fake", ascending=False).to_dict("records"):
        rows.append(
            {
                **v,
                "dataset": v.get("dataset", ""),
                "truth": "fake" if v["label"] else "real",
                "called": "fake" if v["p_fake"] >= threshold else "real",
            }
        )
    return rows


def _gallery(frames, data_root, model, record, per_case, device) -> tuple[list[tuple[str, str, str]], pd.DataFrame]:
    """A labelled contact sheet per cell of the confusion matrix (frame level) as ``(case, words,
    image)``, and the faithfulness of each heatmap in it."""
    from unmask.explain.explainer import explain_crops
    from unmask.explain.overlay import MIN_SIDE_PX, contact_sheet, overlay_heatmap
    from unmask.data.crops import load_crop

    threshold = record.threshold
    called_fake = frames["p_fake"] >= threshold
    picked = []
    for case, words, label, fake in CASES:
        rows = frames[(frames["label"] == label) & (called_fake == fake)]
        rows = rows.sort_values("p_fake", ascending=not fake).head(per_case)
        picked += [(case, words, row) for _, row in rows.iterrows()]
    if not picked:
        return [], pd.DataFrame()
    crops = [load_crop(data_root / row["crop_path"]) for _, _, row in picked]
    scores, results = explain_crops(model, record, crops, GALLERY_METHODS, device=device)
    import cv2

    side = max(MIN_SIDE_PX, record.size_px)
    sheets, faithfulness = {}, []
    for i, (case, words, row) in enumerate(picked):
        interpolation = cv2.INTER_AREA if crops[i].shape[0] > side else cv2.INTER_CUBIC
        face = cv2.resize(crops[i], (side, side), interpolation=interpolation)
        entry = {
            "face": face,
            "label": f"{row['video_id']} frame {int(row['frame_index'])}",
            "p_fake": float(scores[i]),
            "overlays": {},
            "faithfulness": {},
        }
        for method in GALLERY_METHODS:
            maps, faithful = results[method]
            entry["overlays"][method] = overlay_heatmap(face, maps[i])
            entry["faithfulness"][method] = float(faithful[i])
            faithfulness.append(
                {
                    "case": case,
                    "method": method,
                    "faithfulness": float(faithful[i]),
                    "called_fake": bool(scores[i] >= threshold),
                }
            )
        sheets.setdefault((case, words), []).append(entry)
    cells = [
        (
            case,
            words,
            _array_png(contact_sheet(rows, list(GALLERY_METHODS), title=f"{case}: {words}", threshold=threshold)),
        )
        for (case, words), rows in sheets.items()
    ]
    return cells, pd.DataFrame(faithfulness)


def _calibration_fits(metrics: dict) -> list[dict]:
    """Per level, what the calibration was fitted on and how far to trust it."""
    cal = metrics.get("calibration") or {}
    fits = []
    for level in ("frame", "video"):
        entry = cal.get(level) or {}
        health = entry.get("health") or {}
        counts = f"{health.get('n_fake', '?')} fake, {health.get('n_real', '?')} real" if health else ""
        if level == "frame" and "videos_fake" in health:
            counts += f" crops from {health['videos_fake']} fake and {health['videos_real']} real videos"
        fits.append(
            {
                "level": level,
                "counts": counts,
                "note": str(health.get("note") or entry.get("note") or "not recorded"),
                "trusted": bool(health.get("trusted")),
            }
        )
    return fits


def _reliability_img(metrics: dict, record: CheckpointRecord) -> str:
    from unmask.evaluation.model_card import plot_reliability

    curves = {f"evaluated {level}s": (metrics.get("reliability") or {}).get(level) for level in ("frame", "video")}
    validation = record.val.get("reliability") or {}
    curves.update({f"validation {level}s": validation.get(level) for level in ("frame", "video")})
    return _png(plot_reliability(curves, "reliability of the calibrated p(fake)"))


def _faithfulness_rows(faithfulness: pd.DataFrame) -> list[dict]:
    """Mean faithfulness per method and verdict, and how many maps were flat (nothing to test)."""
    rows = []
    if faithfulness.empty:
        return rows
    for (method, called_fake), group in faithfulness.groupby(["method", "called_fake"]):
        measured = group["faithfulness"].dropna()
        rows.append(
            {
                "method": method,
                "called": "fake" if called_fake else "real",
                "mean": f"{measured.mean():+.4f}" if len(measured) else "-",
                "heatmaps": len(measured),
                "flat": len(group) - len(measured),
            }
        )
    return rows


def _figures(result, run_dir: Path, record: CheckpointRecord) -> dict:
    """The report's plots, as inline PNGs (``None`` where there is nothing to plot)."""
    metrics, frames, videos = result.metrics, result.frame_scores, result.video_scores
    threshold = float(metrics["threshold"])
    return {
        "confusion_frame": _confusion(metrics, "frame"),
        "confusion_video": _confusion(metrics, "video"),
        "curves": _curves(frames, videos, threshold),
        "training": _training_curves(run_dir, record.train.get("epoch")),
        "timelines": _timelines(frames, videos, threshold),
    }


def write_report(
    result, *, run_dir: Path, data_root: Path, model, record: CheckpointRecord, per_case: int = 2, device=None
) -> Path:
    """Write ``result.out_dir/report.html`` (``record``: the evaluated checkpoint's) and return its path."""
    from unmask.evaluation.model_card import card_html

    metrics = result.metrics
    threshold = float(metrics["threshold"])
    gallery, faithfulness = _gallery(result.frame_scores, data_root, model, record, per_case, device)
    card = metrics.get("model_card")
    page = render(
        "unmask.evaluation",
        "report.html",
        metrics=metrics,
        threshold=threshold,
        bias=metrics.get("bias", 0.0),
        costs=str(metrics.get("costs")),
        seen=metrics.get("seen") or {},
        calibration_fits=_calibration_fits(metrics),
        prior_fake=(metrics.get("calibration") or {}).get("prior_fake"),
        per_method=metrics.get("per_method") or {},
        figures=_figures(result, run_dir, record),
        epoch=record.train.get("epoch"),
        select_metric=str(record.train.get("select_metric", "validation")),
        video_rows=_video_rows(result.video_scores, threshold),
        gallery=gallery,
        faithfulness=_faithfulness_rows(faithfulness),
        card_section=card_html(card, reliability_src=_reliability_img(metrics, record)) if card else None,
    )
    path = result.out_dir / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
