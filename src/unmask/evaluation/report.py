"""``report.html``: one self-contained page (images inlined) to look at an evaluation."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from unmask.utils.atomic import atomic_path  # noqa: E402

GALLERY_METHODS = ("gradcam", "gradcam++")
CASES = (("TP", "fake called fake", 1, True), ("FN", "fake called real", 1, False),
         ("FP", "real called fake", 0, True), ("TN", "real called real", 0, False))


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _array_png(rgb: np.ndarray) -> str:
    import cv2

    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return "data:image/png;base64," + base64.b64encode(data.tobytes()).decode()


def _img(src: str, alt: str, width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    return f'<img src="{src}" alt="{html.escape(alt)}"{size}>'


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


def _curves(frames: pd.DataFrame, videos: pd.DataFrame) -> str | None:
    if frames["label"].nunique() < 2:
        return None
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, df in (("frame", frames), ("video", videos)):
        if df["label"].nunique() < 2:
            continue
        fpr, tpr, _ = roc_curve(df["label"], df["p_fake"])
        roc_ax.plot(fpr, tpr, label=name)
        precision, recall, _ = precision_recall_curve(df["label"], df["p_fake"])
        pr_ax.plot(recall, precision, label=name)
    roc_ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr_ax.set(xlabel="recall (fake)", ylabel="precision (fake)", title="precision-recall")
    roc_ax.legend()
    pr_ax.legend()
    return _png(fig)


def _training_curves(run_dir: Path) -> str | None:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    history = pd.read_csv(path)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    for ax, metric in zip(axes, ("loss", "acc", "auc")):
        for split in ("train", "val"):
            ax.plot(history["epoch"], history[f"{split}_{metric}"], marker="o", markersize=3, label=split)
        ax.set(xlabel="epoch", title=metric)
        ax.legend()
    return _png(fig)


def _timelines(frames: pd.DataFrame, videos: pd.DataFrame, threshold: float, count: int = 4) -> list[tuple[str, str]]:
    worst = videos.assign(error=(videos["p_fake"] - videos["label"]).abs()).nlargest(count, "error")
    out = []
    for _, video in worst.iterrows():
        rows = frames[frames["video_id"] == video["video_id"]].sort_values("time_s")
        fig, ax = plt.subplots(figsize=(6, 2.2))
        for track, group in rows.groupby("track_id"):
            ax.plot(group["time_s"], group["p_fake"], marker=".", label=f"track {track}")
        ax.axhline(threshold, color="red", linestyle="--", linewidth=0.8, label="threshold")
        ax.set(ylim=(-0.02, 1.02), xlabel="time (s)", ylabel="p(fake)")
        ax.legend(fontsize=7, loc="upper right")
        truth = "fake" if video["label"] else "real"
        out.append((f"{video['video_id']} (truly {truth}, video score {video['p_fake']:.3f})", _png(fig)))
    return out


def _gallery(frames, data_root, model, meta, per_case, device) -> tuple[str, pd.DataFrame]:
    from unmask.explain.explainer import explain_crops
    from unmask.training.data import load_crop

    threshold = float(meta["threshold"])
    called_fake = frames["p_fake"] >= threshold
    picked = []
    for case, words, label, fake in CASES:
        rows = frames[(frames["label"] == label) & (called_fake == fake)]
        rows = rows.sort_values("p_fake", ascending=not fake).head(per_case)
        picked += [(case, words, row) for _, row in rows.iterrows()]
    if not picked:
        return "<p>No crops to explain.</p>", pd.DataFrame()
    crops = [load_crop(data_root / row["crop_path"]) for _, _, row in picked]
    scores, results = explain_crops(model, meta, crops, GALLERY_METHODS, device=device)
    import cv2

    from unmask.explain.overlay import overlay_heatmap

    size = meta["size_px"]
    cells, faithfulness = [], []
    for i, (case, words, row) in enumerate(picked):
        face = cv2.resize(crops[i], (size, size), interpolation=cv2.INTER_AREA)
        images = [_img(_array_png(face), "face", 150)]
        for method in GALLERY_METHODS:
            maps, faithful = results[method]
            images.append(_img(_array_png(overlay_heatmap(face, maps[i])), method, 150))
            faithfulness.append({"case": case, "method": method, "faithfulness": float(faithful[i])})
        scores_text = ", ".join(f"{m}: {results[m][1][i]:+.3f}" for m in GALLERY_METHODS)
        cells.append(f'<div class="case"><b>{case}</b> {html.escape(words)}: {html.escape(str(row["video_id"]))} '
                     f'frame {int(row["frame_index"])}, p(fake) {scores[i]:.3f}<br>{"".join(images)}'
                     f'<br><small>face, {", ".join(GALLERY_METHODS)}; faithfulness {scores_text}</small></div>')
    return "\n".join(cells), pd.DataFrame(faithfulness)


def _metrics_table(metrics: dict) -> str:
    head = ("<tr><th>level</th><th>decision</th><th>threshold</th><th>n</th><th>accuracy</th><th>precision</th>"
            "<th>recall</th><th>F1</th><th>F1 macro</th><th>AUC [95% CI]</th><th>AP</th><th>EER</th><th>log-loss</th><th>Brier</th></tr>")
    body = []

    def f(x):
        return "-" if x is None else f"{x:.4f}"

    for level in ("frame", "video"):
        m = metrics[level]
        ci = m.get("ci95") or {}
        auc_ci = ci.get("auc") or [None, None]
        for decision, scores in (("raw_argmax", m["scores_raw"]), ("calibrated_cost", m["scores"])):
            d = m[decision]
            body.append(
                f"<tr><td>{level}</td><td>{decision}</td><td>{d['threshold']:.3f}</td><td>{m['n']}</td>"
                f"<td>{f(d['accuracy'])}</td><td>{f(d['weighted']['precision'])}</td><td>{f(d['weighted']['recall'])}</td>"
                f"<td>{f(d['weighted']['f1'])}</td><td>{f(d['macro']['f1'])}</td>"
                f"<td>{f(scores['auc'])}" + (f" [{f(auc_ci[0])}, {f(auc_ci[1])}]" if decision != "raw_argmax" else "")
                + f"</td><td>{f(scores['ap'])}</td>"
                f"<td>{f(scores['eer'])}</td><td>{f(scores['log_loss'])}</td><td>{f(scores['brier'])}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _calibration_note(metrics: dict) -> str:
    cal = metrics.get("calibration") or {}
    items = []
    for level in ("frame", "video"):
        entry = cal.get(level) or {}
        health = entry.get("health") or {}
        text = html.escape(str(health.get("note") or entry.get("note") or "not recorded"))
        counts = f"{health.get('n_fake', '?')} fake, {health.get('n_real', '?')} real" if health else ""
        if level == "frame" and "videos_fake" in health:
            counts += f" crops from {health['videos_fake']} fake and {health['videos_real']} real videos"
        trusted = "" if health.get("trusted") else " <b>(rests on too little data to trust)</b>"
        items.append(f"<li>{level}: fitted on {counts} validation examples; {text}{trusted}</li>")
    prior = cal.get("prior_fake")
    if prior is not None:
        items.append(f"<li>probabilities shifted to a deployment share of fakes of {prior:.3f}</li>")
    return "<p>Calibration fit:</p><ul>" + "".join(items) + "</ul>"


def write_report(result, *, run_dir: Path, data_root: Path, model, meta: dict, per_case: int = 2, device=None) -> Path:
    """Write ``result.out_dir/report.html`` and return its path."""
    metrics, frames, videos = result.metrics, result.frame_scores, result.video_scores
    threshold = float(metrics["threshold"])
    sections = [
        f"<h1>unmask evaluation: {html.escape(metrics['model'])}</h1>",
        f"<p>Data {html.escape(str(metrics['data']))} ({html.escape(str(metrics['dataset']))}), "
        f"{metrics['split']} split of the {metrics['protocol']} protocol; trained with the "
        f"{metrics['train_protocol']} protocol. Video score: {metrics['aggregation']} of frame scores. "
        f"Calibration: temperature {metrics['temperature']:.3f}, bias {metrics.get('bias', 0.0):+.3f}; "
        f"cost-based threshold {threshold:.3f} "
        f"(costs {html.escape(str(metrics.get('costs')))}).</p>",
        _calibration_note(metrics),
        "<h2>Metrics</h2>", _metrics_table(metrics),
        "<p><b>raw_argmax</b>: the paper's decision, the argmax of the raw logits (its scores: the raw softmax). "
        "<b>calibrated_cost</b>: calibrated p_fake at the cost-based threshold (its scores: calibrated p_fake; "
        "per video, the video-level calibration).</p>",
        "<p>Precision, recall and F1 are weighted averages over both classes, as the paper reports them; "
        "fake is the positive class for AUC, AP and EER.</p>",
        "<h2>Confusion matrices</h2>", _img(_confusion(metrics, "frame"), "frame confusion matrices"),
        _img(_confusion(metrics, "video"), "video confusion matrices"),
    ]
    curves = _curves(frames, videos)
    sections += ["<h2>ROC and precision-recall</h2>", _img(curves, "ROC and PR curves") if curves else "<p>One class only: no curves.</p>"]
    training = _training_curves(run_dir)
    if training:
        sections += ["<h2>Training</h2>", _img(training, "training curves")]
    sections.append("<h2>Worst-judged videos</h2>")
    for title, src in _timelines(frames, videos, threshold):
        sections += [f"<h3>{html.escape(title)}</h3>", _img(src, title)]
    gallery, faithfulness = _gallery(frames, data_root, model, meta, per_case, device)
    sections += ["<h2>Explanations</h2>",
                 "<p>Heatmaps of the evidence for <i>fake</i> over the face. Faithfulness: how much further "
                 "the fake log-odds fall when the most highlighted pixels are blurred away than when as many "
                 "random ones are (above 0: the map points at what the model uses).</p>", gallery]
    if not faithfulness.empty:
        summary = faithfulness.groupby("method")["faithfulness"].agg(["mean", "count"]).reset_index()
        rows = "".join(f"<tr><td>{r.method}</td><td>{r.mean:+.4f}</td><td>{r.count}</td></tr>" for r in summary.itertuples())
        sections += ["<h3>Faithfulness by method</h3>",
                     f"<table><tr><th>method</th><th>mean faithfulness</th><th>heatmaps</th></tr>{rows}</table>"]
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>unmask report</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}.case{margin:1em 0}img{margin:2px}"
            "</style></head><body>" + "\n".join(sections) + "</body></html>")
    path = result.out_dir / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
