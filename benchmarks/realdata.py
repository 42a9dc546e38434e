"""The realdata experiment in one command: training configurations x views, per family, with intervals.

``../shared/realdata`` holds 183 labelled real videos in four families with a fixed split by
person: the benchmark face swaps (``ffpp``, ``celebdf``, ``dfdc``) and ``talkinghead`` (clips of
talking-face and lip-sync generators and the recordings they start from). This script

1. prepares them once (``unmask prepare videos.csv --dataset csv``, scripts/realdata.sh's
   settings; or reuses a prepared folder, ``--prepared``) and derives each view's data folder as
   a manifest over the same crops (nothing is detected twice);
2. trains every configuration on every view (the ``official`` protocol: the set's own split),
   recording wall and CPU minutes (this process and its children);
3. scores each view's test split once, and from those scores alone writes a row per family (and
   one for all the view's test videos): video AUC with its 95% bootstrap interval over videos,
   and the verdicts at the default costs (share ``inconclusive``, accuracy of the verdicts given);
4. runs the shortcut check (:mod:`unmask.evaluation.shortcut`) on the view's test videos;
5. prints the table (Markdown) and writes it, with a JSON per configuration x view, under ``--work``.

The validation AUC of the chosen checkpoint is in every row: pick settings by it, never by the
test columns. A rerun skips every configuration x view whose JSON exists (a training killed
mid-way resumes from its last epoch).

Views (``--views``):

============== ============================================ ==========================================
name           trained on (train and validation splits)     judged on (test split)
============== ============================================ ==========================================
all            everything                                   everything
benchmarks     the face-swap benchmarks                     the benchmarks
talkinghead    the talking heads                            the talking heads
no-th-fakes    every real, the benchmarks' fakes (and the   the talking heads: generators it never saw
               configuration's self-blended fakes)
reals          the real videos alone, with self-blended     everything
               fakes (``real_only``; validation keeps the
               data's fakes)
============== ============================================ ==========================================

Configurations (``--configs``) are named entries of :data:`CONFIGS`: a preset and its overrides
(:func:`unmask.training.config.make_config`); a candidate is one more entry.

    python benchmarks/realdata.py                                     # the default configuration, every view
    python benchmarks/realdata.py --configs recipe,frozen-small --views all,no-th-fakes
    python benchmarks/realdata.py --prepared realdata/faces --jobs 2 --threads 1   # scripts/realdata.sh's folder
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
BENCHMARK_FAMILIES = ("ffpp", "celebdf", "dfdc")
FAMILIES = (*BENCHMARK_FAMILIES, "talkinghead")
# November's scripts/realdata.sh recipe, every setting the later defaults changed written out
RECIPE = {
    "preset": "default",
    "model": "efficientnet_lite0",
    "synthesize": "sbi",
    "epochs": 6,
    "max_steps": 25,
    "lr": 1e-4,
    "freeze_stages": 0,
}
CONFIGS: dict[str, dict] = {
    "recipe": RECIPE,
    # the backbone's first 3 stages (strides 2-8) frozen at ImageNet's, 160 px: each step costs about a third
    # of the recipe's, spent on twice the steps at twice the learning rate
    "frozen-small": {**RECIPE, "size": 160, "freeze_stages": 3, "max_steps": 50, "epochs": 8, "lr": 2e-4},
    # frozen-small at the backbone's own 224 px: what the default preset does with these settings
    "frozen": {**RECIPE, "freeze_stages": 3, "max_steps": 25, "epochs": 8, "lr": 2e-4},
    # only the last stage (stride 32) and the head tuned, validated every 20 steps: the least that can overfit
    "frozen4-small": {
        **RECIPE,
        "size": 160,
        "freeze_stages": 4,
        "max_steps": 20,
        "epochs": 12,
        "early_stopping": 4,
    },
    # frozen-small with a wider, deeper backbone of the same family (EfficientNet-Lite2, 1.7 times the cost)
    "lite2-small": {
        **RECIPE,
        "model": "efficientnet_lite2",
        "size": 160,
        "freeze_stages": 3,
        "max_steps": 50,
        "epochs": 8,
        "lr": 2e-4,
    },
    # the data's own fakes alone: does self-blending help or crowd them out?
    "data-fakes": {**RECIPE, "synthesize": "none"},
    # data-fakes was still improving at its 6th epoch: twice its epochs
    "data-fakes-longer": {**RECIPE, "synthesize": "none", "epochs": 12},
    # proves the machinery in minutes; its figures mean nothing
    "smoke": {**RECIPE, "epochs": 2, "max_steps": 2, "batch_size": 8, "size": 96, "early_stopping": 0},
}
DEFAULT_CONFIGS = ("frozen",)  # the default preset's settings, the validation split's choice
VIEWS: dict[str, dict] = {
    "all": {"train": "all", "judge": "all", "overrides": {}},
    "benchmarks": {"train": "benchmarks", "judge": "benchmarks", "overrides": {}},
    "talkinghead": {"train": "talkinghead", "judge": "talkinghead", "overrides": {}},
    "no-th-fakes": {"train": "no-th-fakes", "judge": "talkinghead", "overrides": {}},
    "reals": {"train": "all", "judge": "all", "overrides": {"real_only": True}},
}


def select(manifest, which: str):
    """The rows of ``manifest`` in the video group ``which`` (:data:`VIEWS`' train and judge names)."""
    family = manifest["dataset"].astype(str)
    if which == "all":
        return manifest["label"].notna()
    if which == "benchmarks":
        return family.isin(BENCHMARK_FAMILIES)
    if which == "talkinghead":
        return family == "talkinghead"
    if which == "no-th-fakes":
        return ~((family == "talkinghead") & (manifest["label"] == 1))
    raise ValueError(which)


def view_rows(manifest, view: str):
    """The rows of ``manifest`` in the data folder of ``view``: its training videos outside the
    official test split, the videos it is judged on inside it."""
    from unmask.data.splits import split_column

    test = manifest[split_column("official")] == "test"
    return (~test & select(manifest, VIEWS[view]["train"])) | (test & select(manifest, VIEWS[view]["judge"]))


def prepare_views(realdata: Path, prepared: Path, work: Path) -> dict[str, Path]:
    """Prepare the videos once; each view's folder is a manifest over the same crops: its
    training videos in the train and validation splits, the videos it is judged on in the test split."""
    from unmask.data.manifest import read_manifest, write_manifest
    from unmask.data.preparation import PrepareConfig, prepare

    if not (prepared / "manifest.parquet").is_file():
        summary = prepare(realdata / "videos.csv", prepared, PrepareConfig("csv", workers=2))
        print(f"prepared {summary.videos} videos, {summary.crops} crops ({summary.failed} failed)", flush=True)
    manifest, meta = read_manifest(prepared)
    folders = {}
    for name, view in VIEWS.items():
        folder = work / "data" / name
        if not (folder / "manifest.parquet").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            if not (folder / "crops").exists():
                (folder / "crops").symlink_to((prepared / "crops").resolve())
            write_manifest(
                manifest[view_rows(manifest, name)].reset_index(drop=True),
                folder / "manifest.parquet",
                {**meta, "view": f"{name} view of {prepared.resolve()}"},
            )
        folders[name] = folder
    return folders


def cpu_minutes() -> float:
    """CPU minutes used so far by this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return (own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime) / 60


def train_once(config_name: str, view: str, data: Path, run: Path, seed: int) -> dict:
    """Train (or resume, or find done) one configuration on one view; its timing and validation figures."""
    from unmask.decision.checkpoint import read_metadata
    from unmask.training.config import make_config
    from unmask.training.trainer import train

    settings = {**CONFIGS[config_name], **VIEWS[view]["overrides"]}
    timing_path = run / "timing.json"
    if not (run / "model.safetensors").is_file():
        config = make_config(seed=seed, protocol="official", **settings)
        # minutes add up over the parts of a resumed run (a killed part's last, unfinished epoch is lost)
        before = (
            json.loads(timing_path.read_text())
            if timing_path.is_file()
            else {"wall_min": 0.0, "cpu_min": 0.0, "parts": 0}
        )
        wall, cpu = time.perf_counter(), cpu_minutes()

        def record(finished: bool) -> None:
            timing_path.write_text(
                json.dumps(
                    {
                        "wall_min": before["wall_min"] + (time.perf_counter() - wall) / 60,
                        "cpu_min": before["cpu_min"] + cpu_minutes() - cpu,
                        "parts": before.get("parts", 0) + 1,
                        "finished": finished,
                    }
                )
            )

        def on_epoch(row: dict) -> None:
            print(f"[{config_name} / {view}] epoch {row['epoch']}: val auc {row['val_auc']:.3f}", flush=True)
            record(False)

        train(data, run, config, resume=(run / "last.safetensors").is_file(), on_epoch=on_epoch)
        record(True)
    meta = read_metadata(run / "model.safetensors")
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    return {
        **timing,
        "settings": settings,
        "best_epoch": meta.get("epoch"),
        "epochs_run": meta.get("epochs_run"),
        "val_auc": meta.get("best_metric") if meta.get("select_metric") == "val_auc" else None,
    }


def verdicts(frames, videos, record, frames_sampled: int) -> dict:
    """Share ``inconclusive`` and accuracy of the verdicts given, decided as ``unmask predict`` decides
    (:func:`unmask.decision.verdict.decide_track` on each video's calibrated face scores)."""
    from unmask.decision.calibration import decision_threshold
    from unmask.decision.verdict import decide_track

    threshold = decision_threshold(record)
    called = {}
    for video_id, faces in frames.groupby("video_id"):
        called[video_id] = decide_track(
            faces["p_fake"].to_numpy(),
            threshold=threshold,
            frames_sampled=frames_sampled,
            frame_index=faces["frame_index"].to_numpy(),
            record=record,
        ).verdict
    verdict = videos["video_id"].map(called)
    given = verdict != "inconclusive"
    right = (verdict == "fake") == (videos["label"] == 1)
    return {
        "inconclusive": float((~given).mean()) if len(videos) else None,
        "verdict_accuracy": float(right[given].mean()) if given.any() else None,
        "given": int(given.sum()),
        "threshold": float(threshold),
        "called_fake": int((verdict == "fake").sum()),
        "called_real": int((verdict == "real").sum()),
    }


def family_rows(frames, videos, record, frames_sampled: int, bootstrap: int) -> list[dict]:
    """One row per family of the judged videos, and one for them all: AUC, its interval, verdicts."""
    from unmask.decision.calibration import decision_threshold
    from unmask.evaluation.metrics import bootstrap_ci, score_metrics

    families = [f for f in FAMILIES if (videos["dataset"] == f).any()]
    swaps = videos["dataset"].isin(BENCHMARK_FAMILIES)
    # the set's two families (face swaps, talking heads) where both are judged, then each dataset
    groups = [("all", videos)]
    if swaps.any() and not swaps.all():
        groups.append(("face swaps", videos[swaps]))
    if len(families) > 1:
        groups += [(f, videos[videos["dataset"] == f]) for f in families]
    rows = []
    for family, v in groups:
        f = frames[frames["video_id"].isin(v["video_id"])]
        both = v["label"].nunique() == 2
        ci = (
            bootstrap_ci(v["label"], v["p_fake"], v["video_id"], decision_threshold(record), n=bootstrap)["auc"]
            if both and bootstrap
            else None
        )
        decided = verdicts(f, v, record, frames_sampled)
        rows.append(
            {
                "family": family,
                "fake": int((v["label"] == 1).sum()),
                "real": int((v["label"] == 0).sum()),
                "auc": score_metrics(v["label"], v["p_fake"])["auc"] if both else None,
                "auc_ci": ci,
                **decided,
            }
        )
    return rows


def judge_once(run: Path, data: Path, out: Path, shortcut_per_video: int) -> dict:
    """Score the view's test split once (the scores are kept under ``out``); the shortcut check."""
    from unmask.evaluation.evaluator import evaluate
    from unmask.evaluation.shortcut import check_shortcuts

    result = evaluate(run, data, out, split="test", report=False, bootstrap=0)
    shortcut = None
    if shortcut_per_video:
        shortcut = check_shortcuts(run, data, split="test", per_video=shortcut_per_video)
    return {"shortcut": shortcut, "frame_auc": result.metrics["frame"]["scores"]["auc"]}


def validation_families(run: Path, data: Path, scores: Path) -> dict:
    """Video AUC on the validation split, per family (face swaps, talking heads) where both labels are there."""
    import pandas as pd

    from unmask.evaluation.evaluator import evaluate
    from unmask.evaluation.metrics import score_metrics

    if not (scores / "video_scores.csv").is_file():
        evaluate(run, data, scores, split="val", report=False, bootstrap=0)
    videos = pd.read_csv(scores / "video_scores.csv")
    family = videos["dataset"].isin(BENCHMARK_FAMILIES).map({True: "face swaps", False: "talking heads"})
    aucs = {
        name: score_metrics(v["label"], v["p_fake"])["auc"]
        for name, v in videos.groupby(family)
        if v["label"].nunique() == 2
    }
    return aucs


def judged_rows(run: Path, data: Path, scores: Path, bootstrap: int) -> list[dict]:
    """The per-family rows, from the test scores :func:`judge_once` kept: a new row needs no new scoring."""
    import pandas as pd

    from unmask.data.manifest import read_manifest
    from unmask.decision.checkpoint import read_record

    record = read_record(run / "model.safetensors")
    _, data_meta = read_manifest(data)
    frames_sampled = int((data_meta.get("prepare") or data_meta).get("sampler", {}).get("num_frames", 32))
    frames, videos = pd.read_csv(scores / "frame_scores.csv"), pd.read_csv(scores / "video_scores.csv")
    return family_rows(frames, videos, record, frames_sampled, bootstrap)


def run_one(config_name: str, view: str, folders: dict[str, Path], work: Path, args) -> dict:
    """One configuration on one view, trained and judged once; its JSON is kept and reused."""
    result_path = work / "results" / f"{config_name}__{view}.json"
    if VIEWS[view]["overrides"].get("real_only") and CONFIGS[config_name].get("synthesize") == "none":
        return {"config": config_name, "view": view, "skipped": "real videos alone need self-blended fakes"}
    run, scores = work / "runs" / config_name / view, work / "evals" / config_name / view
    if result_path.is_file():
        figures = json.loads(result_path.read_text())
    else:
        import torch

        torch.set_num_threads(args.threads)
        figures = {
            "config": config_name,
            "view": view,
            "seed": args.seed,
            **train_once(config_name, view, folders[view], run, args.seed),
        }
        figures.update(judge_once(run, folders[view], scores, args.shortcut_per_video))
        result_path.parent.mkdir(parents=True, exist_ok=True)
        result_path.write_text(json.dumps(figures, indent=1, default=str))
    return {
        **figures,
        "rows": judged_rows(run, folders[view], scores, args.bootstrap),
        "val_families": validation_families(run, folders[view], work / "evals-val" / config_name / view),
    }


def _num(x, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def table(results: list[dict]) -> str:
    """The Markdown table: a row per configuration x view x family (``all``: the view's test videos)."""
    lines = [
        "| configuration | view | judged on | fake / real | video AUC (95% CI) | inconclusive | verdicts right | "
        "val AUC | best epoch | train min (CPU min) | outside face | AUC face only |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.get("skipped"):
            lines.append(f"| {r['config']} | {r['view']} | skipped: {r['skipped']} |" + " |" * 9)
            continue
        shortcut = r.get("shortcut") or {}
        for row in r["rows"]:
            ci = row["auc_ci"]
            auc = _num(row["auc"]) + (f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci else "")
            lines.append(
                f"| {r['config']} | {r['view']} | {row['family']} | {row['fake']} / {row['real']} | {auc} | "
                f"{_num(row['inconclusive'], '{:.0%}')} | {_num(row['verdict_accuracy'], '{:.0%}')} | "
                f"{_num(r.get('val_auc'))} | {r.get('best_epoch', '-')} | {_num(r.get('wall_min'), '{:.1f}')} "
                f"({_num(r.get('cpu_min'), '{:.1f}')}) | "
                + (
                    f"{_num(shortcut.get('outside_share'), '{:.0%}')} | {_num(shortcut.get('auc_blanked'))} |"
                    if row["family"] == "all"
                    else " | |"
                )
            )
    return "\n".join(lines)


TIE = 0.01  # validation AUCs this close are one figure: 27 validation videos cannot tell them apart
# CPU minutes this close (relative) are one cost: frozen on all measured 9.5 and 10.9 in two runs on this machine
COST_TIE = 0.2


def prior(result: dict) -> tuple:
    """The principle that settles a tie on validation and on cost: self-blended fakes first, then more
    of ImageNet kept frozen. Both teach what every blended face shares rather than one generator's marks,
    and the detector is judged on generators it never saw."""
    settings = result.get("settings") or {}
    return settings.get("synthesize", "none") != "none", settings.get("freeze_stages", 0)


def choices(results: list[dict]) -> str:
    """Per view, the configuration the validation split picks: the best validation AUC of the chosen
    checkpoint; among those within :data:`TIE` of it, the cheapest (CPU minutes, :data:`COST_TIE` counted
    as equal); among those, :func:`prior`. Each family's validation video AUC is shown beside it, not
    used: the face swaps of the validation split are 10 videos (4 real), too few to rank on."""
    lines = []
    for view in dict.fromkeys(r["view"] for r in results):
        scored = [r for r in results if r["view"] == view and r.get("val_auc") is not None]
        if not scored:
            continue
        top = max(r["val_auc"] for r in scored)
        near = [r for r in scored if r["val_auc"] >= top - TIE]
        cheapest = min(r.get("cpu_min") or float("inf") for r in near)
        level = [r for r in near if (r.get("cpu_min") or float("inf")) <= cheapest * (1 + COST_TIE)]
        best = max(level, key=lambda r: (prior(r), r["val_auc"]))
        families = ", ".join(f"{k} {v:.2f}" for k, v in (best.get("val_families") or {}).items() if v is not None)
        lines.append(
            f"- {view}: {best['config']}: validation {best['val_auc']:.3f}{f' ({families})' if families else ''}, "
            f"{best.get('cpu_min') or 0:.1f} CPU minutes. The best validation of {len(scored)}: {top:.3f}; within "
            f"{TIE} of it: {len(near)}; of those, as cheap as the cheapest ({cheapest:.1f} CPU minutes, "
            f"{COST_TIE:.0%} counted as equal): {len(level)}; then self-blended fakes and frozen stages first"
        )
    return "Chosen on the validation split:\n\n" + "\n".join(lines) if lines else ""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--realdata", type=Path, default=REALDATA)
    parser.add_argument("--work", type=Path, default=Path("runs/realdata"))
    parser.add_argument(
        "--prepared",
        type=Path,
        default=None,
        help="a folder prepared from videos.csv with scripts/realdata.sh's settings (default: WORK/prepared)",
    )
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS), help=f"some of {', '.join(CONFIGS)}")
    parser.add_argument("--views", default=",".join(VIEWS), help=f"some of {', '.join(VIEWS)}")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples of the videos for the 95%% intervals")
    parser.add_argument(
        "--shortcut-per-video", type=int, default=4, help="crops per test video in the shortcut check (0: no check)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="configuration x view pairs trained at once")
    parser.add_argument("--threads", type=int, default=max(1, os.cpu_count() or 1))
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="the table of the pairs already measured: nothing is prepared or trained (missing validation scores "
        "are computed)",
    )
    args = parser.parse_args()
    args.prepared = args.prepared or args.work / "prepared"
    args.configs = [n for n in args.configs.split(",") if n]
    args.views = [n for n in args.views.split(",") if n]
    for given, known, what in ((args.configs, CONFIGS, "configuration"), (args.views, VIEWS, "view")):
        unknown = sorted(set(given) - set(known))
        if unknown:
            sys.exit(f"unknown {what}(s) {unknown}; choose from {', '.join(known)}")
    if args.table_only and not (args.prepared / "manifest.parquet").is_file():
        sys.exit(f"--table-only needs the prepared folder {args.prepared} (give --prepared)")
    if not (args.realdata / "videos.csv").is_file() and not (args.prepared / "manifest.parquet").is_file():
        sys.exit(f"{args.realdata}/videos.csv not found; pass --realdata (the folder of ../shared/realdata)")
    return args


def run_in_parallel(pairs: list[tuple[str, str]], args) -> None:
    """Each configuration x view in a process of its own, ``--jobs`` at a time, ``--threads`` threads each."""
    common = [
        "--realdata",
        str(args.realdata),
        "--work",
        str(args.work),
        "--prepared",
        str(args.prepared),
        "--seed",
        str(args.seed),
        "--bootstrap",
        str(args.bootstrap),
        "--threads",
        str(args.threads),
        "--shortcut-per-video",
        str(args.shortcut_per_video),
    ]
    pending, running = list(pairs), []
    while pending or running:
        while pending and len(running) < args.jobs:
            config_name, view = pending.pop(0)
            running.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--configs", config_name, "--views", view, *common],
                    env={**os.environ, "OMP_NUM_THREADS": str(args.threads)},
                )
            )
        time.sleep(5)
        running = [p for p in running if p.poll() is None]


def main() -> None:
    args = parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    folders = prepare_views(args.realdata, args.prepared, args.work)
    pairs = [(c, v) for c in args.configs for v in args.views]
    if args.table_only:
        pairs = [(c, v) for c, v in pairs if (args.work / "results" / f"{c}__{v}.json").is_file()]
    elif args.jobs > 1 and len(pairs) > 1:
        run_in_parallel(pairs, args)
    results = [run_one(c, v, folders, args.work, args) for c, v in pairs]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {'GPU' if _has_gpu() else 'no GPU'}"
    header = f"realdata (official split, seed {args.seed}; {machine})"
    text = f"{table(results)}\n\n{choices(results)}"
    (args.work / "realdata.md").write_text(f"{header}\n\n{text}\n")
    print(f"\n{header}\n\n{text}")


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
