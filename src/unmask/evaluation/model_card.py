"""The model card: what a run learnt from, how, how well, how it decides, and what it ran with.

``train`` writes it into every run folder (``MODEL_CARD.md`` to read, ``model_card.json`` for
tools, ``reliability.png``); every ``report.html`` shows it again, with the share of the
evaluated videos the run has seen. Everything comes from the checkpoint's record, so a card can
be rebuilt from ``model.safetensors`` alone (:func:`model_card`).

Which videos a run has seen is matched by *video identity*, not by the prepare folder's path:
the video file's content fingerprint (``video_hash``, see
:func:`unmask.utils.provenance.file_fingerprint`) where both manifests have one, else the pair
``dataset:video_id`` (``video_id`` is the path inside the dataset, the same wherever it is
prepared). The same videos prepared into another folder are then recognised as seen.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from unmask.data.manifest import VIDEO_HASH_COLUMN
from unmask.decision.calibration import MIN_VIDEOS_PER_CLASS
from unmask.decision.record import CheckpointRecord
from unmask.utils.atomic import atomic_path, write_atomic
from unmask.utils.rendering import render

CARD_JSON = "model_card.json"
CARD_MARKDOWN = "MODEL_CARD.md"
RELIABILITY_PNG = "reliability.png"
MATCHED_BY = "the video file's content fingerprint (video_hash) where both manifests have it, else dataset:video_id"
HASH_CHARS = 32  # 128 bits of the SHA-256: no collision among any dataset's videos, half the bytes
# The settings a reader needs to know how the model was trained (the whole config is in config.json).
# (named as today's settings: older checkpoints' names are read through the renames)
TRAINING_KEYS = (
    "model",
    "protocol",
    "size",
    "pretrained",
    "weights",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "lr_factor",
    "lr_patience",
    "min_lr",
    "class_weights",
    "loss",
    "batch_sampler",
    "synthesize",
    "sbi_ratio",
    "freeze_stages",
    "real_only",
    "label_level",
    "augment",
    "select_metric",
    "early_stopping",
    "precision",
    "seed",
)


def _face_step(prepare: dict) -> str | None:
    """How the training crops were cut, in a line (from the manifest settings the run recorded)."""
    if not prepare:
        return None
    from unmask.data.config import PrepareConfig

    config = PrepareConfig.from_recorded(prepare)
    passes = ", ".join(
        ["pass 1"]
        + ["pass 2"] * config.second_pass
        + ["small-face pass"] * config.small_face_pass
        + ["pass 3 (near the face)"] * config.near_pass
        + [f"gaps up to {config.bridge_max_gap} bridged"] * bool(config.bridge_max_gap)
    )
    return (
        f"{config.detector} detector ({passes}), {config.keep} face(s) per frame, margin {config.margin}, "
        f"{config.size} px {config.image_format}, {config.sampler.strategy} sampler, "
        f"{config.sampler.num_frames} frames per video"
    )


def _ids(df: pd.DataFrame) -> pd.Series:
    return df["dataset"].astype(str) + ":" + df["video_id"].astype(str)


def _hashes(df: pd.DataFrame) -> pd.Series | None:
    if VIDEO_HASH_COLUMN not in df or df[VIDEO_HASH_COLUMN].isna().all():
        return None
    return df[VIDEO_HASH_COLUMN].astype("string").str.slice(0, HASH_CHARS)


def record_videos(train_rows: pd.DataFrame, val_rows: pd.DataFrame) -> dict:
    """The identities of the videos a run trains and validates on, for its checkpoint.

    Returns:
        ``{"matched_by", "train": {"ids", "hashes"}, "val": {...}}``: sorted ``dataset:video_id``
        and (where the manifest has them) content fingerprints.
    """
    out = {"matched_by": MATCHED_BY}
    for name, rows in (("train", train_rows), ("val", val_rows)):
        hashes = _hashes(rows)
        out[name] = {
            "ids": sorted(set(_ids(rows))),
            "hashes": sorted(set(hashes.dropna())) if hashes is not None else [],
        }
    return out


def seen_in_training(
    record: CheckpointRecord, rows: pd.DataFrame, *, manifest: pd.DataFrame | None = None, root: Path | None = None
) -> dict:
    """How much of ``rows`` (evaluated crops) comes from videos the run trained or validated on.

    Matched by video identity (see the module's docstring). A checkpoint from before unmask
    recorded identities falls back to the old rule: same prepare folder, the run's own split.

    Returns:
        ``{"videos", "crops"}`` shares in [0, 1], ``"n_videos"``, ``"n_seen"`` and ``"matched_by"``.
    """
    recorded = record.data.get("videos")
    ids = _ids(rows)
    if recorded is not None:
        seen_ids = set(recorded["train"]["ids"]) | set(recorded["val"]["ids"])
        seen_hashes = set(recorded["train"]["hashes"]) | set(recorded["val"]["hashes"])
        hashes = _hashes(rows)
        seen = ids.isin(seen_ids).to_numpy()
        if seen_hashes and hashes is not None:
            has_hash = hashes.notna().to_numpy()
            seen = np.where(has_hash, hashes.isin(seen_hashes).to_numpy(), seen)
        matched_by = MATCHED_BY
    elif manifest is not None and root is not None and str(Path(root).resolve()) == record.data.get("manifest"):
        column = f"split_{record.data['protocol']}"
        seen = rows["video_id"].isin(set(manifest.loc[manifest[column].isin(["train", "val"]), "video_id"])).to_numpy()
        matched_by = "the prepare folder's path (this checkpoint records no video identities: train again)"
    else:
        seen = np.zeros(len(rows), dtype=bool)
        matched_by = "the prepare folder's path (this checkpoint records no video identities: train again)"
    per_video = pd.Series(seen, index=ids.index).groupby(ids).any()
    return {
        "videos": float(per_video.mean()) if len(per_video) else 0.0,
        "crops": float(seen.mean()) if len(seen) else 0.0,
        "n_videos": int(len(per_video)),
        "n_seen": int(per_video.sum()),
        "matched_by": matched_by,
    }


def split_sizes(manifest: pd.DataFrame, protocol: str) -> dict:
    """Videos and crops per split of ``protocol``, per class, and the methods each split holds."""
    column = f"split_{protocol}"
    out = {}
    for split, rows in manifest.groupby(column, sort=True):
        videos = rows.drop_duplicates("video_id")
        out[str(split)] = {
            "videos": int(len(videos)),
            "crops": int(len(rows)),
            "videos_fake": int((videos["label"] == 1).sum()),
            "videos_real": int((videos["label"] == 0).sum()),
            "crops_fake": int((rows["label"] == 1).sum()),
            "crops_real": int((rows["label"] == 0).sum()),
            "methods": {str(m): int(n) for m, n in videos["method"].value_counts().sort_index().items()},
        }
    return out


def card_warnings(record: CheckpointRecord) -> list[str]:
    """What a reader should not overlook: a calibration fit at a bound or on too little data."""
    warnings = []
    frame = record.calibration.get("health") or {}
    if frame.get("at_bound"):
        warnings.append(
            f"the frame calibration's slope hit its bound ({frame.get('note')}): probabilities are "
            "near 0 or 1 and over-confident"
        )
    if frame and not frame.get("trusted", True):
        warnings.append(
            f"the frame calibration rests on little data: {frame.get('n_fake')} fake and "
            f"{frame.get('n_real')} real validation crops ({frame.get('note')})"
        )
    few = [
        f"{n} {kind}"
        for kind, n in (("fake", frame.get("videos_fake")), ("real", frame.get("videos_real")))
        if n is not None and n < MIN_VIDEOS_PER_CLASS
    ]
    if few:
        warnings.append(
            f"the validation crops come from only {' and '.join(few)} videos: a threshold and a "
            "calibration fitted on so few videos may not hold on others"
        )
    video = (record.video_calibration.get("mean") or {}).get("health") or {}
    if video.get("at_bound"):
        warnings.append(f"the video calibration's slope hit its bound ({video.get('note')})")
    if video and not video.get("trusted", True):
        warnings.append(f"video calibration: {video.get('note')}")
    if not record.calibration:
        warnings.append("no calibration health recorded (trained before unmask recorded it)")
    return warnings


def model_card(record: CheckpointRecord, *, seen: dict | None = None) -> dict:
    """The card of the checkpoint whose record is ``record`` (JSON-serialisable).

    Args:
        seen: an evaluation's :func:`seen_in_training` result, shown when given.
    """
    data, config, spec, val, train = record.data, record.config, record.spec, record.val, record.train
    videos = data.get("videos") or {}
    card = {
        "model": {
            "name": spec.name,
            "timm_id": spec.timm_id,
            "input_size_px": record.size_px,
            "mean": spec.mean,
            "std": spec.std,
            "explanation_layer": spec.cam_layer,
        },
        "data": {
            "dataset": data.get("dataset"),
            "manifest": data.get("manifest"),
            "protocol": data.get("protocol"),
            "classes": {str(i): name for i, name in enumerate(record.class_names)},
            "label_level": config.get("label_level"),
            "face_step": _face_step(record.prepare),
            "train_crops": data.get("train_crops"),
            "val_crops": data.get("val_crops"),
            "splits": data.get("splits"),
            "videos_recorded": (
                {k: len(videos.get(k, {}).get("ids", [])) for k in ("train", "val")} if videos else None
            ),
        },
        "training": {
            **{k: config.get(k) for k in TRAINING_KEYS if k in config},
            "optimiser": "Adam",
            "class_weight_values": train.get("class_weights"),
            "best_epoch": train.get("epoch"),
            "epochs_run": train.get("epochs_run"),
            "best_metric": train.get("best_metric"),
        },
        "validation": {
            "best_epoch": val.get("history"),
            "at_threshold": val.get("at_threshold"),
            "reliability": val.get("reliability"),
        },
        "decision": {
            "costs": asdict(record.costs),
            "threshold": record.threshold,
            "rule": "fake when the calibrated p_fake >= threshold = c_false_alarm / (c_false_alarm + c_missed_fake)",
        },
        "calibration": {
            "temperature": record.temperature,
            "bias": record.bias,
            "prior_fake": record.calibration.get("prior_fake"),
            "frame_health": record.calibration.get("health"),
            "video_health": (record.video_calibration.get("mean") or {}).get("health"),
            "ece_frame": ((val.get("reliability") or {}).get("frame") or {}).get("ece"),
            "ece_video": ((val.get("reliability") or {}).get("video") or {}).get("ece"),
        },
        "warnings": card_warnings(record),
        "provenance": record.provenance or None,
        "prepare_provenance": data.get("prepare_provenance"),
        "unmask_version": record.unmask_version,
    }
    if seen is not None:
        card["seen_in_training"] = seen
    return json.loads(json.dumps(card, default=str))


def _f(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _signed(x) -> str:
    return "+ -" if x is None else f"{'-' if x < 0 else '+'} {abs(x):.4f}"


def _data_items(data: dict) -> list[tuple[str, str]]:
    split_rows = []
    for split, s in (data.get("splits") or {}).items():
        methods = "methods: " + ", ".join(f"{m} {n}" for m, n in s["methods"].items())
        split_rows.append(
            (
                split,
                f"{s['videos']} videos ({s['videos_fake']} fake, {s['videos_real']} real), "
                f"{s['crops']} crops ({s['crops_fake']} fake, {s['crops_real']} real); {methods}",
            )
        )
    if not split_rows:
        split_rows.append(("train / val", f"{data.get('train_crops')} / {data.get('val_crops')} crops"))
    return [
        ("dataset", str(data["dataset"])),
        ("prepared folder", str(data["manifest"])),
        ("split protocol", str(data["protocol"])),
        ("classes", ", ".join(f"{k} = {v}" for k, v in data["classes"].items()) + " (fake is the positive class)"),
        ("labels trained on", str(data.get("label_level"))),
        ("faces cut with", str(data.get("face_step"))),
        *split_rows,
    ]


def _calibration_items(cal: dict) -> list[tuple[str, str]]:
    health = cal.get("frame_health") or {}
    video_health = cal.get("video_health") or {}
    return [
        (
            "frame fit",
            f"p_fake = sigmoid(margin / {_f(cal.get('temperature'))} {_signed(cal.get('bias'))}); "
            f"{health.get('n_fake', '?')} fake and {health.get('n_real', '?')} real validation crops from "
            f"{health.get('videos_fake', '?')} fake and {health.get('videos_real', '?')} real videos; "
            f"{health.get('note', 'not recorded')}",
        ),
        ("video fit (mean)", str(video_health.get("note", "not recorded"))),
        (
            "validation ECE",
            f"frames {_f(cal.get('ece_frame'))}, videos {_f(cal.get('ece_video'))} (on the data "
            "the calibration was fitted on: optimistic)",
        ),
        ("validation share of fakes", _f(cal.get("prior_fake"))),
    ]


def _versions_items(card: dict) -> list[tuple[str, str]]:
    prov = card.get("provenance") or {}
    git = prov.get("git") or {}
    device = prov.get("device") or {}
    if device:
        cores = f", {device['cores']} cores)" if device.get("cores") else f", {device.get('count', 1)} visible)"
        device_text = f"{device.get('name')} ({device.get('type')}{cores}"
    else:
        device_text = "not recorded"
    return [
        ("unmask", str(prov.get("unmask") or card.get("unmask_version"))),
        ("python", str(prov.get("python"))),
        *[(name, str(version)) for name, version in (prov.get("packages") or {}).items()],
        ("device", device_text),
        ("command", str(prov.get("command"))),
        (
            "git commit",
            f"{git['commit']}{' (with uncommitted changes)' if git.get('dirty') else ''}"
            if git
            else "not from a git clone",
        ),
        ("trained", str(prov.get("time_utc"))),
    ]


def _sections(card: dict) -> list[tuple[str, list[tuple[str, str]]]]:
    """The card as titled lists of (field, value) in plain text: one source for Markdown and HTML."""
    model, decision = card["model"], card["decision"]
    best = card["validation"].get("best_epoch") or {}
    at = card["validation"].get("at_threshold") or {}
    sections = [
        (
            "Model",
            [
                ("backbone", f"{model['name']} (timm {model['timm_id']})"),
                ("input", f"{model['input_size_px']} px, mean {model['mean']}, std {model['std']}"),
                ("explanation layer", str(model["explanation_layer"])),
            ],
        ),
        ("Data", _data_items(card["data"])),
        ("Training", [(k, _f(v, 6) if isinstance(v, float) else str(v)) for k, v in card["training"].items()]),
        (
            "Validation (chosen epoch)",
            [
                ("epoch", _f(best.get("epoch"))),
                (
                    "raw scores",
                    f"AUC {_f(best.get('val_auc'))}, accuracy {_f(best.get('val_acc'))}, "
                    f"F1 {_f(best.get('val_f1'))}, loss {_f(best.get('val_loss'))}",
                ),
                (
                    "calibrated, at the threshold",
                    f"accuracy {_f(at.get('acc'))}, AUC {_f(at.get('auc'))}, F1 {_f(at.get('f1'))}",
                ),
            ],
        ),
        (
            "Costs and threshold",
            [
                ("costs", str(decision.get("costs"))),
                ("threshold", _f(decision.get("threshold"))),
                ("rule", decision["rule"]),
            ],
        ),
        ("Calibration", _calibration_items(card["calibration"])),
    ]
    if "seen_in_training" in card:
        seen = card["seen_in_training"]
        sections.append(
            (
                "Seen in training",
                [
                    (
                        "evaluated videos the run trained or validated on",
                        f"{seen['n_seen']} of {seen['n_videos']} ({100 * seen['videos']:.1f}%; "
                        f"{100 * seen['crops']:.1f}% of crops)",
                    ),
                    ("matched by", seen["matched_by"]),
                ],
            )
        )
    sections.append(("Versions", _versions_items(card)))
    return sections


def card_markdown(card: dict, *, reliability_png: str | None = None) -> str:
    """The card as Markdown (``MODEL_CARD.md``)."""
    text = render(
        "unmask.evaluation", "model_card.md", card=card, sections=_sections(card), reliability_png=reliability_png
    )
    return text.rstrip("\n") + "\n"


def card_html(card: dict, *, reliability_src: str | None = None) -> str:
    """The card as an HTML section (for ``report.html``), every value escaped."""
    return render(
        "unmask.evaluation", "model_card.html", card=card, sections=_sections(card), reliability_src=reliability_src
    )


def plot_reliability(curves: dict[str, dict], title: str = "reliability"):
    """A reliability diagram of :func:`unmask.evaluation.metrics.reliability` results, one line each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], "k:", linewidth=0.8, label="perfectly calibrated")
    for name, curve in curves.items():
        if not curve or not curve.get("bins"):
            continue
        bins = curve["bins"]
        ax.plot(
            [b["mean_p_fake"] for b in bins],
            [b["share_fake"] for b in bins],
            marker="o",
            label=f"{name} (ECE {curve['ece']:.3f}, n {curve['n']})",
        )
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean p(fake) in the bin", ylabel="share truly fake", title=title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def write_model_card(run_dir: str | Path, record: CheckpointRecord) -> Path:
    """Write ``MODEL_CARD.md``, ``model_card.json`` and ``reliability.png`` into ``run_dir``."""
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    card = model_card(record)
    reliability = (card["validation"].get("reliability")) or {}
    png = None
    if any(reliability.values()):
        fig = plot_reliability(reliability, "validation reliability (calibrated p_fake)")
        with atomic_path(run_dir / RELIABILITY_PNG) as tmp:
            fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        png = RELIABILITY_PNG
    with write_atomic(run_dir / CARD_JSON, "w") as fh:
        json.dump(card, fh, indent=1)
    path = run_dir / CARD_MARKDOWN
    with write_atomic(path, "w") as fh:
        fh.write(card_markdown(card, reliability_png=png))
    return path
