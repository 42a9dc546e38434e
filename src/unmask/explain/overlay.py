"""Heatmaps drawn over the face (jet colour map, alpha 0.5, as the paper)."""

from __future__ import annotations

import io

import cv2
import numpy as np


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """Blend a jet-coloured ``heatmap`` (``(h, w)`` in [0, 1]) over ``image`` (``(H, W, 3) uint8`` RGB).

    The heatmap is resized to the image; returns ``(H, W, 3) uint8`` RGB. Not pytorch-grad-cam's
    ``show_cam_on_image``: it divides the blend by its own maximum, which brightens dark faces;
    the paper's overlay is a plain blend.
    """
    heat = cv2.resize(np.clip(heatmap, 0, 1).astype(np.float32), (image.shape[1], image.shape[0]))
    colour = cv2.cvtColor(cv2.applyColorMap(np.uint8(255 * heat), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return np.uint8(np.clip((1 - alpha) * image.astype(np.float32) + alpha * colour.astype(np.float32), 0, 255))


MIN_SIDE_PX = 224  # heatmaps are shown at least this large, whatever the model's input size


def contact_sheet(
    rows: list[dict], methods: list[str], *, title: str = "", threshold: float | None = None
) -> np.ndarray:
    """One labelled image of several faces and their heatmaps, with a colour bar.

    Args:
        rows: one per face, most suspicious first: ``{"face": (S, S, 3) uint8 RGB, "label": str
            (e.g. "frame 12, track 0"), "p_fake": float, "overlays": {method: (S, S, 3) uint8},
            "faithfulness": {method: float (NaN: not measurable)}}``.
        methods: the column order.
        threshold: the decision threshold, to say "called fake/real" beside each p(fake).

    Returns:
        ``(H, W, 3) uint8`` RGB: a row per face; its face, then each method's heatmap titled with
        the method and faithfulness; the face titled with its p(fake); a jet colour bar from
        0 (no evidence for fake) to 1 (the map's strongest evidence).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    n_rows, n_cols = max(len(rows), 1), len(methods) + 1
    # 2.8 inches a column at 120 dpi: each face and heatmap is drawn about 235 px wide (>= 224)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.8 * n_cols + 0.8, 3.1 * n_rows), squeeze=False, dpi=120)
    for r, row in enumerate(rows):
        verdict = ""
        if threshold is not None:
            verdict = " (called fake)" if row["p_fake"] >= threshold else " (called real)"
        axes[r, 0].imshow(row["face"])
        axes[r, 0].set_title(f"{row.get('label', '')}\np(fake) {row['p_fake']:.3f}{verdict}", fontsize=8)
        for c, method in enumerate(methods, start=1):
            axes[r, c].imshow(row["overlays"][method])
            faithful = row["faithfulness"].get(method, float("nan"))
            score = "flat map: n/a" if not np.isfinite(faithful) else f"{faithful:+.3f}"
            axes[r, c].set_title(f"{method}\nfaithfulness {score}", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    bar = fig.colorbar(
        cm.ScalarMappable(norm=colors.Normalize(0, 1), cmap="jet"), ax=axes.ravel().tolist(), fraction=0.025, pad=0.02
    )
    bar.set_label("evidence for fake (1: the map's maximum)", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")  # tight: nothing cut, no empty margins
    plt.close(fig)
    image = cv2.imdecode(np.frombuffer(buffer.getvalue(), np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
