"""``unmask reproduce``: the paper's experiment in one call, beside the honest one.

Prepares a Celeb-DF-v2 or FaceForensics++ folder, trains each backbone twice (the ``paper``
preset: its random split of frames, its optimiser, no augmentation; and the ``default`` preset:
split by video and identity), evaluates each run on its own protocol's test split and writes the
paper's reported accuracy beside ours in ``results.md`` and ``results.html`` (next to each
evaluation's ``report.html``). The two rows of a backbone show how much of the paper's figure
is the leak of frames of one video into both sides of its split.

Every step is resumable: a finished step is skipped on a rerun (``.reproduce/done/`` records the
finished prepare and evaluations, a run's ``model.safetensors`` its finished training), an
interrupted training goes on from its last epoch (``train(..., resume=True)``), an interrupted
prepare keeps its finished videos. A step's recorded settings must match the asked ones: a rerun
with other settings stops with one line instead of mixing two experiments in one folder.

Layout of ``out_dir``::

    data/                       face crops + manifest.parquet (unmask prepare)
    runs/<model>-<preset>/      training runs (unmask train)
    eval/<model>-<preset>/      metrics.json, report.html ... (unmask evaluate)
    results.md, results.html, results.csv
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd

from unmask import __version__
from unmask.errors import UnmaskError, unknown_name
from unmask.utils.atomic import write_atomic
from unmask.utils.outdir import ensure_out_dir, hold_lock
from unmask.utils.rendering import render

logger = logging.getLogger(__name__)

DATASETS = {"celebdf": "Celeb-DF-v2", "ffpp": "FaceForensics++"}
PRESETS = ("paper", "default")
# The paper's reported weighted-average accuracy (frame level, its random split of frames):
# Mahmud et al., ICCIT 2023, arXiv 2312.10740.
PAPER_ACCURACY = {
    "celebdf": {"xception": 0.98, "inception_resnet_v2": 0.97, "efficientnetv2_s": 0.97, "efficientnetv2_m": 0.97},
    "ffpp": {"xception": 0.93, "inception_resnet_v2": 0.94, "efficientnetv2_s": 0.92, "efficientnetv2_m": 0.88},
}
STATE_DIR = ".reproduce"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".bin")
# Settings that change where or how fast a run goes, not what it learns: a rerun may differ in them.
VOLATILE = {"device", "workers", "precision", "compile", "cache", "cache_dir", "weights"}
RESULT_COLUMNS = [
    "model",
    "preset",
    "protocol",
    "test crops",
    "test videos",
    "paper says acc",
    "argmax acc",
    "argmax prec",
    "argmax recall",
    "argmax f1",
    "auc",
    "video auc",
    "video auc 95% ci",
    "seen in training",
]


@dataclass(frozen=True)
class ReproduceResult:
    """What ``reproduce`` wrote, and which steps it ran now or found finished."""

    out_dir: Path
    table: pd.DataFrame
    markdown: Path
    html: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def resolve_weights(
    models: Sequence[str], weights: Mapping[str, str | Path] | None = None, weights_dir: str | Path | None = None
) -> dict[str, str | None]:
    """Each model's local ImageNet weights file: given by name in ``weights``, else found in
    ``weights_dir`` as ``<model>`` or ``<timm id>`` with a ``.safetensors``, ``.pth`` or ``.bin``
    suffix, else ``None`` (timm's cache or hub).

    Raises:
        UnmaskError: ``weights`` names a model not asked for, or ``weights_dir`` holds nothing for
            one of ``models``.
    """
    from unmask.models.registry import get_spec

    weights = dict(weights or {})
    stray = sorted(set(weights) - set(models))
    if stray:
        raise UnmaskError(
            f"--weights given for {', '.join(stray)}, which --models does not train "
            f"({', '.join(models)}); give MODEL=FILE for those"
        )
    found: dict[str, str | None] = {}
    for name in models:
        if name in weights:
            found[name] = str(weights[name])
            continue
        found[name] = None
        if weights_dir is not None:
            folder = Path(weights_dir)
            if not folder.is_dir():
                raise UnmaskError(f"--weights-dir {folder} is not a folder")
            stems = (name, get_spec(name).timm_id)
            candidates = [folder / f"{stem}{suffix}" for stem in stems for suffix in WEIGHT_SUFFIXES]
            present = [p for p in candidates if p.is_file()]
            if not present:
                raise UnmaskError(
                    f"--weights-dir {folder} has no weights for {name}: expected {candidates[0].name} "
                    f"(or {', '.join(p.name for p in candidates[1:4])} ...)"
                )
            found[name] = str(present[0])
    return found


def _check_hub_weights(config) -> None:
    """Fail now, not after the prepare, when a run needs ImageNet weights this machine cannot get."""
    from unmask.models.registry import get_spec, resolve_hub_weights

    spec = get_spec(config.model)
    if not config.pretrained or config.weights or spec.bundled_weights:
        return
    try:
        resolve_hub_weights(spec)
    except UnmaskError as exc:
        raise UnmaskError(
            str(exc).replace("pass weights=FILE", f"pass weights with {config.model}=FILE, or a weights_dir")
        ) from None


def _differences(recorded: dict, asked: dict) -> list[str]:
    keys = sorted((set(recorded) & set(asked)) - VOLATILE)
    return [f"{k} {recorded[k]!r} there, {asked[k]!r} now" for k in keys if recorded[k] != asked[k]]


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with write_atomic(path, "w") as fh:
        json.dump(data, fh, indent=1)


def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` unless ``path`` already holds it: a rerun that finds all done changes nothing."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    with write_atomic(path, "w") as fh:
        fh.write(text)


def _checkpoint_stamp(path: Path) -> dict:
    stat = path.stat()
    return {"checkpoint": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def reproduce(
    root: str | Path,
    out_dir: str | Path,
    *,
    dataset: str,
    models: Sequence[str] | None = None,
    presets: Sequence[str] = PRESETS,
    num_frames: int = 32,
    crop_size: int = 224,
    detector: str | None = None,
    compression: str = "c23",
    prepare_workers: int = 1,
    epochs: int | None = None,
    size: int | None = None,
    batch_size: int | None = None,
    max_steps: int | None = None,
    pretrained: bool | None = None,
    weights: Mapping[str, str | Path] | None = None,
    weights_dir: str | Path | None = None,
    device: str | None = None,
    bootstrap: int = 1000,
    report: bool = True,
    report_examples: int = 2,
    progress: Callable[[str], None] | None = None,
    on_prepare: Callable | None = None,
    on_epoch: Callable[[str, dict], None] | None = None,
    on_step: Callable[[str, int, int, int], None] | None = None,
) -> ReproduceResult:
    """Prepare ``root``, train each of ``models`` with each of ``presets``, evaluate, write the table.

    Args:
        root: a Celeb-DF-v2 or FaceForensics++ folder (see ``unmask prepare``).
        out_dir: where everything goes (layout in the module's docstring); a rerun into it goes on
            where the last one stopped.
        dataset: ``celebdf`` or ``ffpp``.
        models: backbones; default the paper's four (:data:`unmask.models.registry.PAPER_BACKBONES`).
        presets: training presets (``paper`` and ``default``), each through
            :func:`unmask.training.config.make_config`, so ``default`` is whatever the default is.
        num_frames, crop_size, detector, compression, prepare_workers: the prepare step's
            frames per video, crop side, face detector, FF++ compression and worker processes.
        epochs, size, batch_size, max_steps, pretrained, device: override both
            presets (``None``: the preset's own). The paper's rows then no longer follow the paper
            exactly, and ``results.md`` says so.
        weights: local ImageNet weights per model name; ``weights_dir``: a folder holding them as
            ``<model>.safetensors`` (see :func:`resolve_weights`).
        bootstrap: resamples over videos for the 95% intervals.
        report: write each evaluation's ``report.html``; ``report_examples``: heatmap examples per
            cell of the confusion matrix in its gallery (see :func:`unmask.evaluation.evaluator.evaluate`).
        progress: called with a line as each step starts or is found finished.
        on_prepare: the prepare step's progress callback (see :func:`unmask.data.preparation.prepare`).
        on_epoch: called with ``(run name, epoch row)`` after each training epoch.
        on_step: called with ``(run name, epoch, step, steps)`` after each optimiser step.

    Returns:
        A :class:`ReproduceResult`.

    Raises:
        UnmaskError: a bad argument, weights that cannot be had, or ``out_dir`` holding steps
            finished with other settings; said before any long work where it can be.
    """
    overrides = dict(epochs=epochs, size=size, batch_size=batch_size, max_steps=max_steps, pretrained=pretrained)
    prepare = dict(num_frames=num_frames, crop_size=crop_size, detector=detector, compression=compression)
    evaluate = dict(bootstrap=bootstrap, report=report, explain_per_case=report_examples, device=device)
    steps = dict(
        overrides={**overrides, "device": device}, prepare={**prepare, "workers": prepare_workers}, evaluate=evaluate
    )
    plan = _plan(root, out_dir, dataset, models, presets, weights, weights_dir, bootstrap=bootstrap, **steps)
    say = progress or (lambda line: None)
    ran, skipped = [], []
    with hold_lock(plan.state, "lock"):
        _prepare_step(plan.root, plan.data_dir, plan.prepare, plan.state, say, on_prepare, ran, skipped)
        evals = [
            _train_and_evaluate(plan, model, preset, say, on_epoch, on_step, ran, skipped)
            for model, preset in plan.configs
        ]
        table, markdown, page = _write_results(plan, evals)
    return ReproduceResult(plan.out_dir, table, markdown, page, ran, skipped)


@dataclass(frozen=True)
class _Plan:
    """A reproduction's settings, checked, and each step's config."""

    root: Path
    out_dir: Path
    dataset: str
    prepare: object  # PrepareConfig
    configs: dict  # (model, preset) -> TrainConfig
    overrides: dict  # the presets' settings the caller changed (None: the preset's own)
    local: dict  # model -> local ImageNet weights file, or None
    evaluate: dict  # evaluate's options

    @property
    def data_dir(self) -> Path:
        return self.out_dir / "data"

    @property
    def state(self) -> Path:
        return self.out_dir / STATE_DIR


def _check_choices(dataset: str, models: list[str], presets: Sequence[str], bootstrap: int) -> None:
    from unmask.models.registry import get_spec

    if dataset not in DATASETS:
        raise unknown_name("dataset for reproduce", dataset, DATASETS)
    for name in models:
        get_spec(name)
    for name in presets:
        if name not in PRESETS:
            raise unknown_name("preset", name, PRESETS)
    if len(set(models)) != len(models) or len(set(presets)) != len(presets) or not models or not presets:
        raise UnmaskError(
            f"--models and --presets must each name at least one, none twice (got {', '.join(models)}; "
            f"{', '.join(presets)})"
        )
    if bootstrap < 0:
        raise UnmaskError(f"--bootstrap must not be negative, not {bootstrap}")


def _plan(
    root,
    out_dir,
    dataset: str,
    models,
    presets,
    weights,
    weights_dir,
    *,
    bootstrap: int,
    overrides: dict,
    prepare: dict,
    evaluate: dict,
) -> _Plan:
    """Check the settings and build each step's config, then make ``out_dir`` and check that every run
    yet to start can have its ImageNet weights: all before any long work."""
    from unmask.data.config import PrepareConfig
    from unmask.faces.detectors import DEFAULT_DETECTOR
    from unmask.models.registry import PAPER_BACKBONES
    from unmask.training.config import make_config
    from unmask.video.sampling import FrameSampler

    models = list(models or PAPER_BACKBONES)
    _check_choices(dataset, models, presets, bootstrap)
    local = resolve_weights(models, weights, weights_dir)
    configs = {(m, p): make_config(p, model=m, weights=local[m], **overrides) for m in models for p in presets}
    prepare_config = PrepareConfig(
        dataset,
        sampler=FrameSampler("uniform", prepare["num_frames"]),
        detector=prepare["detector"] or DEFAULT_DETECTOR,
        size=prepare["crop_size"],
        dataset_options={"compression": prepare["compression"]} if dataset == "ffpp" else {},
        workers=prepare["workers"],
    )
    out_dir = ensure_out_dir(out_dir)
    for (m, p), config in configs.items():
        run_dir = out_dir / "runs" / f"{m}-{p}"
        if not (run_dir / "model.safetensors").is_file() and not (run_dir / "last.safetensors").is_file():
            _check_hub_weights(config)
    return _Plan(Path(root), out_dir, dataset, prepare_config, configs, overrides, local, evaluate)


def _train_and_evaluate(plan: _Plan, model: str, preset: str, say, on_epoch, on_step, ran, skipped):
    """Train ``model`` with ``preset`` and evaluate it (each unless done already); ``(model, preset, eval folder)``."""
    name = f"{model}-{preset}"
    run_dir, eval_dir = plan.out_dir / "runs" / name, plan.out_dir / "eval" / name
    _train_step(name, plan.data_dir, run_dir, plan.configs[model, preset], say, on_epoch, on_step, ran, skipped)
    _evaluate_step(name, run_dir, plan.data_dir, eval_dir, plan.state, plan.evaluate, say, ran, skipped)
    return model, preset, eval_dir


def _write_results(plan: _Plan, evals) -> tuple[pd.DataFrame, Path, Path]:
    """``results.md``, ``results.html`` and ``results.csv`` (each left alone when unchanged)."""
    table = results_table(evals, plan.dataset)
    notes = _override_notes(plan.overrides, plan.local)
    markdown, page = plan.out_dir / "results.md", plan.out_dir / "results.html"
    _write_if_changed(markdown, results_markdown(table, plan.dataset, root=plan.root, notes=notes))
    _write_if_changed(page, results_html(table, plan.dataset, evals, plan.out_dir, notes=notes))
    _write_if_changed(plan.out_dir / "results.csv", table.to_csv(index=False))
    return table, markdown, page


def _prepare_step(root: Path, data_dir: Path, config, state: Path, say, on_prepare, ran, skipped) -> None:
    from unmask.data.config import PrepareConfig
    from unmask.data.preparation import prepare

    marker = state / "done" / "prepare.json"
    recorded = json.loads(json.dumps(config.recorded()))
    done = _read_json(marker)
    if done is not None and (data_dir / "manifest.parquet").is_file():
        changed = _differences(PrepareConfig.comparable(done["settings"]), recorded)
        if changed:
            raise UnmaskError(
                f"{data_dir} was prepared with other settings ({'; '.join(changed)}); "
                "use another --out, or the same settings"
            )
        say(f"prepare: done already ({done['crops']} face crops of {done['videos']} videos in {data_dir})")
        skipped.append("prepare")
        return
    say(f"prepare: {root} -> {data_dir}")
    summary = prepare(root, data_dir, config, progress=on_prepare)
    if summary.manifest is None:
        raise UnmaskError(f"No face was found in any video of {root}; see {summary.failures}")
    if summary.failed:
        logger.warning("%d videos failed to prepare; reasons in %s", summary.failed, summary.failures)
    _write_json(
        marker, {"settings": recorded, "videos": summary.videos, "crops": summary.crops, "failed": summary.failed}
    )
    ran.append("prepare")


def _train_step(name: str, data_dir: Path, run_dir: Path, config, say, on_epoch, on_step, ran, skipped) -> None:
    from dataclasses import asdict

    from unmask.training.trainer import train

    asked = json.loads(json.dumps(asdict(config)))
    finished, started = (run_dir / "model.safetensors").is_file(), (run_dir / "last.safetensors").is_file()
    train_on = None  # more epochs asked of a run than it was set to train: it trains on, not again
    if finished or started:
        recorded = (_read_json(run_dir / "config.json") or {}).get("config", {})
        epochs_there = recorded.get("epochs", asked["epochs"])
        if _differences({**recorded, "epochs": asked["epochs"]}, asked) or epochs_there > asked["epochs"]:
            raise UnmaskError(
                f"{run_dir} was trained with other settings ({'; '.join(_differences(recorded, asked))}); "
                "use another --out, or delete that run folder to train it again"
            )
        if epochs_there < asked["epochs"]:
            train_on = asked["epochs"]
    if finished and train_on is None:
        say(f"train {name}: done already")
        skipped.append(f"train {name}")
        return
    say(
        f"train {name}: "
        + (
            f"training on to {train_on} epochs"
            if train_on
            else "resuming from its last epoch"
            if started
            else f"{config.epochs} epochs"
        )
    )
    train(
        data_dir,
        run_dir,
        config,
        resume=started,
        epochs=train_on,
        on_epoch=(lambda row: on_epoch(name, row)) if on_epoch else None,
        on_step=(lambda e, s, n: on_step(name, e, s, n)) if on_step else None,
    )
    ran.append(f"train {name}")


def _evaluate_step(
    name: str, run_dir: Path, data_dir: Path, eval_dir: Path, state: Path, options: dict, say, ran, skipped
) -> None:
    from unmask.evaluation.evaluator import evaluate

    marker = state / "done" / f"evaluate-{name}.json"
    stamp = {**_checkpoint_stamp(run_dir / "model.safetensors"), **{k: v for k, v in options.items() if k != "device"}}
    if _read_json(marker) == stamp and (eval_dir / "metrics.json").is_file():
        say(f"evaluate {name}: done already")
        skipped.append(f"evaluate {name}")
        return
    say(f"evaluate {name}: its protocol's test split -> {eval_dir}")
    evaluate(run_dir, data_dir, eval_dir, split="test", **options)
    _write_json(marker, stamp)  # after everything evaluate writes: a kill before it means "do again"
    ran.append(f"evaluate {name}")


def results_table(evals: Sequence[tuple[str, str, Path]], dataset: str) -> pd.DataFrame:
    """The reproduction's table: per backbone and preset, the paper's reported accuracy (``paper
    says``, on ``paper`` rows only) beside ours at the paper's decision (weighted averages, frame
    level), the frame and video AUC, the video AUC's 95% interval and how much of the test data
    the run had seen in training.

    Args:
        evals: ``(model, preset, evaluate output folder)`` per row.
    """
    from unmask.evaluation.cross import format_interval
    from unmask.evaluation.table import load_metrics, make_table

    paper = make_table([e for _, _, e in evals])
    rows = []
    for (model, preset, eval_dir), (_, ours) in zip(evals, paper.iterrows()):
        m = load_metrics(eval_dir)
        rows.append(
            {
                "model": model,
                "preset": preset,
                "protocol": m["protocol"],
                "test crops": m["frame"]["n"],
                "test videos": m["video"]["n"],
                "paper says acc": PAPER_ACCURACY[dataset].get(model) if preset == "paper" else None,
                **{c: ours[c] for c in ("argmax acc", "argmax prec", "argmax recall", "argmax f1", "auc", "video auc")},
                "video auc 95% ci": format_interval((m["video"].get("ci95") or {}).get("auc")),
                "seen in training": ours["seen in training"],
            }
        )
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def _override_notes(overrides: dict, local: dict) -> list[str]:
    flags = {"size": "--size", "max_steps": "--max-steps", "batch_size": "--batch-size", "epochs": "--epochs"}
    notes = [
        ("--pretrained" if v else "--no-pretrained") if k == "pretrained" else f"{flags[k]} {v}"
        for k, v in overrides.items()
        if v is not None and k != "device"
    ]
    notes += [f"{m}: ImageNet weights from {Path(p).name}" for m, p in local.items() if p]
    return notes


def results_markdown(table: pd.DataFrame, dataset: str, *, root: Path, notes: Sequence[str] = ()) -> str:
    """``results.md``: the table, and how to read it."""
    from unmask.evaluation.table import to_markdown

    lines = [
        f"# The paper's table beside the honest one: {DATASETS[dataset]}",
        "",
        f"Data: `{root}` (`--dataset {dataset}`); unmask {__version__}.",
        "",
        to_markdown(table),
        "",
        "- `paper` rows follow the paper: a random split of frames (stratified, seed 42), so the test frames come "
        "from videos whose other frames it trained on (`seen in training`: the share of test crops from such "
        "videos). `paper says acc`: the accuracy the paper reports (Mahmud et al., ICCIT 2023; weighted average, "
        "frame level).",
        "- `default` rows: unmask's default preset, on test videos and people it never saw (split by video and "
        "identity): the figure to expect on new videos.",
        "- `argmax` columns: weighted averages over both classes at the paper's decision (argmax of the raw "
        "logits), frame level; `auc`: frame AUC; `video auc`: AUC of the video scores (mean of its frames), "
        "with its 95% bootstrap interval over videos.",
        "- Each row's `report.html` is under `eval/<model>-<preset>/`.",
    ]
    if notes:
        lines.append(
            "- Changed from the presets for this reproduction (so the `paper` rows are not the paper's "
            "setup exactly): " + ", ".join(notes) + "."
        )
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if isinstance(value, float):
        return "-" if pd.isna(value) else f"{value:.4f}"
    return "-" if value is None else str(value)


def results_html(table: pd.DataFrame, dataset: str, evals, out_dir: Path, *, notes: Sequence[str] = ()) -> str:
    """``results.html``: the table, each row linking to its evaluation's ``report.html``."""
    rows = []
    for row, (_, _, eval_dir) in zip(table.itertuples(index=False), evals):
        report = eval_dir / "report.html"
        rows.append(([_cell(v) for v in row], os.path.relpath(report, out_dir) if report.is_file() else None))
    return render(
        "unmask.recipes",
        "results.html",
        dataset_name=DATASETS[dataset],
        columns=list(table.columns),
        rows=rows,
        notes=list(notes),
    )
