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
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve  # noqa: E402

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


def _curves(frames: pd.DataFrame, videos: pd.DataFrame, threshold: float) -> str | None:
    """ROC (with its AUC and the operating point of the decision threshold) and precision-recall."""
    if frames["label"].nunique() < 2:
        return None
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, df in (("frame", frames), ("video", videos)):
        if df["label"].nunique() < 2:
            continue
        fpr, tpr, _ = roc_curve(df["label"], df["p_fake"])
        line, = roc_ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(df['label'], df['p_fake']):.3f})")
        called, fake = df["p_fake"] >= threshold, df["label"] == 1
        op_fpr, op_tpr = float(called[~fake].mean()), float(called[fake].mean())
        roc_ax.plot([op_fpr], [op_tpr], marker="o", markersize=8, markerfacecolor="none", color=line.get_color(),
                    label=f"{name} at p >= {threshold:.2f}: FPR {op_fpr:.2f}, TPR {op_tpr:.2f}")
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
        out.append((f"{video['video_id']} (truly {truth}, called {called}: video p(fake) {video['p_fake']:.3f})",
                    _png(fig)))
    return out


def _video_table(videos: pd.DataFrame, threshold: float) -> str:
    """Every evaluated video's score and verdict, most suspicious first; wrong verdicts marked."""
    rows = []
    for v in videos.sort_values("p_fake", ascending=False).itertuples():
        called = "fake" if v.p_fake >= threshold else "real"
        truth = "fake" if v.label else "real"
        cls = ' class="wrong"' if called != truth else ""
        rows.append(f"<tr{cls}><td>{html.escape(str(v.video_id))}</td><td>{html.escape(str(getattr(v, 'dataset', '')))}"
                    f"</td><td>{html.escape(str(v.method))}</td><td>{truth}</td><td>{v.p_fake:.4f}</td>"
                    f"<td>{v.score:.4f}</td><td>{v.p_fake_raw:.4f}</td><td>{called}</td><td>{v.n_crops}</td></tr>")
    head = ("<tr><th>video</th><th>dataset</th><th>method</th><th>truly</th><th>p(fake)</th><th>frame mean</th>"
            "<th>raw p(fake)</th><th>called</th><th>crops</th></tr>")
    return f"<table id='video-scores'>{head}{''.join(rows)}</table>"


def _method_table(metrics: dict) -> str:
    per_method = metrics.get("per_method") or {}

    def f(x):
        return "-" if x is None else f"{x:.4f}"

    rows = "".join(
        f"<tr><td>{html.escape(str(r['dataset']))}</td><td>{html.escape(str(r['method']))}</td><td>{r['label']}</td>"
        f"<td>{r['videos_fake']}</td><td>{r['videos_real']}</td><td>{f(r['video']['auc'])}</td>"
        f"<td>{f(r['video']['accuracy'])}</td><td>{f(r['video']['recall'])}</td><td>{f(r['frame']['auc'])}</td>"
        f"<td>{f(r['frame']['accuracy'])}</td><td>{f(r['frame']['recall'])}</td></tr>"
        for r in per_method.get("rows", []))
    head = ("<tr><th>dataset</th><th>method</th><th>label</th><th>fake videos</th><th>real videos</th>"
            "<th>video AUC</th><th>video accuracy</th><th>video recall</th><th>frame AUC</th><th>frame accuracy</th>"
            "<th>frame recall</th></tr>")
    return (f"<p>Pairing: {html.escape(per_method.get('pairing', ''))}. Accuracy and recall (the share of fakes "
            f"caught) at the decision threshold {per_method.get('threshold', 0.5):.3f} on the calibrated p(fake); "
            "a real source's row gives the share of its videos called real (its accuracy).</p>"
            f"<table id='per-method'>{head}{rows}</table>")


def _gallery(frames, data_root, model, meta, per_case, device) -> tuple[str, pd.DataFrame]:
    """A labelled contact sheet per cell of the confusion matrix (frame level), and the faithfulness
    of each heatmap in it."""
    from unmask.explain.explainer import explain_crops
    from unmask.explain.overlay import MIN_SIDE_PX, contact_sheet, overlay_heatmap
    from unmask.data.crops import load_crop

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

    side = max(MIN_SIDE_PX, int(meta["size_px"]))
    sheets, faithfulness = {}, []
    for i, (case, words, row) in enumerate(picked):
        interpolation = cv2.INTER_AREA if crops[i].shape[0] > side else cv2.INTER_CUBIC
        face = cv2.resize(crops[i], (side, side), interpolation=interpolation)
        entry = {"face": face, "label": f"{row['video_id']} frame {int(row['frame_index'])}",
                 "p_fake": float(scores[i]), "overlays": {}, "faithfulness": {}}
        for method in GALLERY_METHODS:
            maps, faithful = results[method]
            entry["overlays"][method] = overlay_heatmap(face, maps[i])
            entry["faithfulness"][method] = float(faithful[i])
            faithfulness.append({"case": case, "method": method, "faithfulness": float(faithful[i]),
                                 "called_fake": bool(scores[i] >= threshold)})
        sheets.setdefault((case, words), []).append(entry)
    cells = []
    for (case, words), rows in sheets.items():
        sheet = contact_sheet(rows, list(GALLERY_METHODS), title=f"{case}: {words}", threshold=threshold)
        cells.append(f'<div class="case"><h3>{case}: {html.escape(words)}</h3>'
                     f'{_img(_array_png(sheet), f"{case} heatmaps")}</div>')
    return "\n".join(cells), pd.DataFrame(faithfulness)


FAITHFULNESS_NOTE = (
    "<p>Heatmaps of the evidence for <i>fake</i> over the face (jet: blue none, red the map's strongest; each map "
    "is scaled to its own maximum, see the colour bar). <b>Faithfulness</b> is a deletion test: how much further "
    "the fake log-odds fall when the most highlighted pixels are blurred away than when as many random ones are "
    "(above 0: the map points at what the model uses; near or below 0: it could have been random).</p>"
    "<p><b>On a face called real</b> (TN, FN) the map shows the little evidence for fake there is: its "
    "faithfulness says whether that little evidence lies where the map points, not why the face was called real, "
    "so read it apart from the faces called fake (the summary below keeps them apart). A <b>flat map</b> (Grad-CAM "
    "finds no positive evidence for fake anywhere, common on real faces) points nowhere: there is nothing to test, "
    "and its faithfulness is n/a. (Scoring a flat map anyway would delete the image's first rows in pixel order, "
    "which is what once gave flat maps on true negatives the highest scores.)</p>")


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


def _reliability_img(metrics: dict, meta: dict) -> str:
    from unmask.evaluation.model_card import plot_reliability

    curves = {f"evaluated {level}s": (metrics.get("reliability") or {}).get(level) for level in ("frame", "video")}
    validation = (meta.get("val") or {}).get("reliability") or {}
    curves.update({f"validation {level}s": validation.get(level) for level in ("frame", "video")})
    return _png(plot_reliability(curves, "reliability of the calibrated p(fake)"))


def _faithfulness_summary(faithfulness: pd.DataFrame) -> str:
    rows = []
    for (method, called_fake), group in faithfulness.groupby(["method", "called_fake"]):
        measured = group["faithfulness"].dropna()
        mean = f"{measured.mean():+.4f}" if len(measured) else "-"
        rows.append(f"<tr><td>{method}</td><td>{'fake' if called_fake else 'real'}</td><td>{mean}</td>"
                    f"<td>{len(measured)}</td><td>{len(group) - len(measured)}</td></tr>")
    return ("<table><tr><th>method</th><th>faces called</th><th>mean faithfulness</th><th>heatmaps</th>"
            f"<th>flat maps (n/a)</th></tr>{''.join(rows)}</table>")


def write_report(result, *, run_dir: Path, data_root: Path, model, meta: dict, per_case: int = 2, device=None) -> Path:
    """Write ``result.out_dir/report.html`` and return its path."""
    from unmask.evaluation.model_card import card_html

    metrics, frames, videos = result.metrics, result.frame_scores, result.video_scores
    threshold = float(metrics["threshold"])
    seen = metrics.get("seen") or {}
    sections = [
        f"<h1>unmask evaluation: {html.escape(metrics['model'])}</h1>",
        f"<p>Data {html.escape(str(metrics['data']))} ({html.escape(str(metrics['dataset']))}), "
        f"{metrics['split']} split of the {metrics['protocol']} protocol; trained with the "
        f"{metrics['train_protocol']} protocol. Video score: {metrics['aggregation']} of frame scores. "
        f"Calibration: temperature {metrics['temperature']:.3f}, bias {metrics.get('bias', 0.0):+.3f}; "
        f"cost-based threshold {threshold:.3f} "
        f"(costs {html.escape(str(metrics.get('costs')))}). "
        + (f"The run trained or validated on {seen['n_seen']} of the {seen['n_videos']} evaluated videos "
           f"({100 * seen['videos']:.1f}%).</p>" if seen else "</p>")
        + "<p>The run's <a href='#model-card'>model card</a> (data, training, calibration health, versions) is "
          "at the end.</p>",
        _calibration_note(metrics),
        "<h2>Metrics</h2>", _metrics_table(metrics),
        "<p><b>raw_argmax</b>: the paper's decision, the argmax of the raw logits (its scores: the raw softmax). "
        "<b>calibrated_cost</b>: calibrated p_fake at the cost-based threshold (its scores: calibrated p_fake; "
        "per video, the video-level calibration).</p>",
        "<p>Precision, recall and F1 are weighted averages over both classes, as the paper reports them; "
        "fake is the positive class for AUC, AP and EER.</p>",
        "<h2>Per method</h2>", _method_table(metrics),
        "<h2>Confusion matrices</h2>", _img(_confusion(metrics, "frame"), "frame confusion matrices"),
        _img(_confusion(metrics, "video"), "video confusion matrices"),
    ]
    curves = _curves(frames, videos, threshold)
    sections += ["<h2>ROC and precision-recall</h2>",
                 _img(curves, "ROC and PR curves") if curves else "<p>One class only: no curves.</p>"]
    training = _training_curves(run_dir, meta.get("epoch"))
    if training:
        sections += ["<h2>Training</h2>", _img(training, "training curves"),
                     f"<p>The run kept the weights of epoch {meta.get('epoch')} (chosen by "
                     f"{html.escape(str(meta.get('select_metric', 'validation')))} on the validation split).</p>"]
    sections.append("<h2>Wrongly judged videos</h2>")
    timelines = _timelines(frames, videos, threshold)
    if not timelines:
        sections.append(f"<p>Every evaluated video was judged rightly at the threshold {threshold:.3f}.</p>")
    for title, src in timelines:
        sections += [f"<h3>{html.escape(title)}</h3>", _img(src, title)]
    sections += ["<h2>Video scores</h2>",
                 "<p>Every evaluated video, most suspicious first; wrong verdicts are shaded. p(fake): the video's "
                 "calibrated probability (the one compared with the threshold); frame mean: the aggregated frame "
                 "p(fake) before the video calibration; raw: the aggregated raw softmax.</p>",
                 _video_table(videos, threshold)]
    gallery, faithfulness = _gallery(frames, data_root, model, meta, per_case, device)
    sections += ["<h2>Explanations</h2>", FAITHFULNESS_NOTE, gallery]
    if not faithfulness.empty:
        sections += ["<h3>Faithfulness by method</h3>", _faithfulness_summary(faithfulness)]
    card = metrics.get("model_card")
    if card:
        sections.append(card_html(card, reliability_src=_reliability_img(metrics, meta)))
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>unmask report</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}.case{margin:1em 0}img{margin:2px}"
            "tr.wrong{background:#fde2e2}.warnings{background:#fff3cd;border:1px solid #e0c060;padding:0.5em 1em}"
            "table.card th{text-align:left;font-weight:normal;color:#555}"
            "</style></head><body>" + "\n".join(sections) + "</body></html>")
    path = result.out_dir / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
