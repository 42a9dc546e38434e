import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from unmask.errors import ManifestError, UnknownNameError, UnmaskError
from unmask.models.registry import PAPER_BACKBONES
from unmask.decision.checkpoint import load_classifier, read_metadata
from unmask.decision.record import CheckpointRecord
from unmask.training.config import PRESETS, make_config
from unmask.training.trainer import train

QUICK = dict(pretrained=False, size=64, batch_size=16, workers=0, synthesize="none")  # mechanics: the data alone


def test_small_model_learns_the_demo_fakes(small_run):
    result, rows = small_run
    run = result.run_dir
    assert len(rows) == 10 and result.best_epoch == max(range(1, 11), key=lambda e: rows[e - 1]["val_auc"])
    assert result.best_metric >= 0.8, f"validation AUC {result.best_metric:.3f} is not well above chance"
    history = pd.read_csv(run / "metrics.csv")
    assert list(history["epoch"]) == list(range(1, 11))
    assert history["train_loss"].iloc[-3:].mean() < history["train_loss"].iloc[:3].mean()
    assert any((run / "tensorboard").iterdir())

    model, record = load_classifier(run)
    assert record.spec.name == "mobilenetv3_small" and record.size_px == 64
    assert record.class_names == ("real", "fake") and record.threshold == 0.5
    assert record.temperature == pytest.approx(result.temperature) and record.temperature > 0
    assert record.data["protocol"] == "video" and record.train["epoch"] == result.best_epoch
    assert record.train["class_weights"] == [1.0, 1.0]  # the demo set is balanced
    assert record.config["costs"] == {"missed_fake": 1.0, "false_alarm": 1.0}
    assert CheckpointRecord.from_metadata(read_metadata(run)) == record == record.from_metadata(record.to_metadata())


def test_costs_set_the_threshold_and_travel_with_the_checkpoint(prepared, tmp_path):
    from unmask.decision.calibration import Costs

    config = make_config(model="mobilenetv3_small", epochs=1, costs=Costs(missed_fake=9.0, false_alarm=1.0), **QUICK)
    result = train(prepared, tmp_path / "run", config)
    assert result.threshold == pytest.approx(0.1)
    meta = read_metadata(result.checkpoint)
    assert meta["threshold"] == pytest.approx(0.1) and meta["costs"] == {"missed_fake": 9.0, "false_alarm": 1.0}


@pytest.mark.parametrize("name", PAPER_BACKBONES)
def test_paper_preset_runs_each_paper_backbone(paper_runs, name):
    meta = read_metadata(paper_runs[name].checkpoint)
    recorded = meta["config"]
    for key, value in PRESETS["paper"].items():
        if key not in ("size", "epochs", "batch_size"):
            assert recorded[key] == value, key
    assert meta["data"]["protocol"] == "paper" and meta["spec"]["name"] == name
    assert len(paper_runs[name].history) == 1


def test_paper_preset_is_the_papers_recipe():
    config = make_config("paper", model="xception")
    assert (config.size, config.lr, config.batch_size, config.epochs) == (224, 1e-3, 16, 20)
    assert (config.lr_factor, config.lr_patience, config.min_lr) == (0.5, 5, 1e-4)
    assert (config.class_weights, config.augment, config.select_metric, config.protocol) == (
        "balanced",
        False,
        "val_acc",
        "paper",
    )


def _cli(*args):
    return [sys.executable, "-m", "unmask", "train", *map(str, args)]


def test_a_run_killed_after_an_epoch_resumes_to_the_same_weights(prepared, tmp_path):
    common = [
        "--model",
        "mobilenetv3_small",
        "--no-pretrained",
        "--size",
        "64",
        "--batch-size",
        "16",
        "--workers",
        "0",
        "--epochs",
        "8",
        "--early-stopping",
        "0",
        "--lr",
        "0.001",
    ]
    whole = subprocess.run(
        _cli(prepared, "--out", tmp_path / "whole", *common), capture_output=True, text=True, timeout=600
    )
    assert whole.returncode == 0, whole.stderr

    proc = subprocess.Popen(
        _cli(prepared, "--out", tmp_path / "cut", *common), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    history = tmp_path / "cut" / "metrics.csv"
    deadline = time.time() + 300
    while time.time() < deadline and not (history.is_file() and len(history.read_text().splitlines()) >= 2):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (tmp_path / "cut" / "model.safetensors").exists(), "the run finished before it could be killed"
    done = read_metadata(tmp_path / "cut" / "last.safetensors")["progress"]["epoch"]
    assert 1 <= done < 8

    resumed = subprocess.run(
        _cli(prepared, "--out", tmp_path / "cut", "--resume"), capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[0].startswith(f"epoch {done + 1}:")
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "whole" / "metrics.csv").drop(columns="seconds"),
        pd.read_csv(history).drop(columns="seconds"),
    )


def test_two_process_ddp_on_gloo(prepared, tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "unmask",
        "train",
        str(prepared),
        "--out",
        str(tmp_path / "ddp"),
        "--model",
        "mobilenetv3_small",
        "--no-pretrained",
        "--size",
        "64",
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--epochs",
        "2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    history = pd.read_csv(tmp_path / "ddp" / "metrics.csv")
    assert list(history["epoch"]) == [1, 2]
    assert result.stdout.count("epoch 1:") == 1  # only rank 0 reports
    assert result.stdout.count("checkpoint:") == 1 and result.stdout.count("next: unmask evaluate") == 1
    assert result.stderr.count("frame calibration rests on little data") == 1  # rank 1 logs errors only
    # The validation AUC the two ranks computed together is the one a single process computes.
    from sklearn.metrics import roc_auc_score

    from unmask.data.manifest import select_split
    from unmask.evaluation.evaluator import score_rows

    model, record = load_classifier(tmp_path / "ddp")
    val = select_split(pd.read_parquet(prepared / "manifest.parquet"), "video", "val")
    logits = score_rows(model, record, val, prepared)
    assert roc_auc_score(val["label"], logits[:, 1] - logits[:, 0]) == pytest.approx(
        history.loc[history["epoch"] == record.train["epoch"], "val_auc"].item(), abs=1e-6
    )


def _manifest_copy(prepared, tmp_path, edit):
    import shutil

    target = tmp_path / "data"
    shutil.copytree(prepared, target)
    df = pd.read_parquet(target / "manifest.parquet")
    import pyarrow.parquet as pq

    meta = pq.read_schema(target / "manifest.parquet").metadata
    from unmask.data.manifest import write_manifest

    write_manifest(edit(df), target / "manifest.parquet", json.loads(meta[b"unmask"]))
    return target


def test_bad_inputs_give_clear_errors(prepared, tmp_path):
    config = make_config(model="mobilenetv3_small", epochs=1, **QUICK)
    one_class = _manifest_copy(
        prepared, tmp_path / "a", lambda df: df[(df["label"] == 1) | (df["split_video"] != "train")]
    )
    with pytest.raises(ManifestError, match="training split has no real crops"):
        train(one_class, tmp_path / "r1", config)
    missing = _manifest_copy(prepared, tmp_path / "b", lambda df: df)
    rows = pd.read_parquet(missing / "manifest.parquet")
    os.remove(missing / rows.loc[rows["split_video"] == "train", "crop_path"].iloc[0])
    with pytest.raises(ManifestError, match="1 of .* crops listed in the manifest are missing"):
        train(missing, tmp_path / "r2", config)
    with pytest.raises(UnknownNameError, match="Unknown model 'xception2'"):
        train(prepared, tmp_path / "r3", make_config(model="xception2", **QUICK))
    with pytest.raises(UnmaskError, match="Nothing to resume"):
        train(prepared, tmp_path / "r4", config, resume=True)
    assert not (tmp_path / "r1" / "model.safetensors").exists()


def test_existing_runs_are_not_overwritten_and_truncated_checkpoints_are_refused(prepared, tmp_path):
    config = make_config(model="mobilenetv3_small", epochs=1, **QUICK)
    result = train(prepared, tmp_path / "run", config)
    with pytest.raises(UnmaskError, match="already holds a training run; pass resume=True"):
        train(prepared, tmp_path / "run", config)
    data = result.checkpoint.read_bytes()
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnmaskError, match="is not a complete unmask checkpoint"):
        load_classifier(broken)
    with pytest.raises(UnmaskError, match="No checkpoint at"):
        load_classifier(tmp_path / "nothing")


def test_loaded_checkpoint_scores_like_the_trained_model(small_run, prepared):
    from sklearn.metrics import roc_auc_score

    from unmask.data.manifest import select_split
    from unmask.evaluation.evaluator import score_rows

    result, rows = small_run
    model, record = load_classifier(result.checkpoint)
    val = select_split(pd.read_parquet(prepared / "manifest.parquet"), "video", "val")
    logits = score_rows(model, record, val, prepared)
    recorded = rows[result.best_epoch - 1]["val_auc"]
    assert roc_auc_score(val["label"], logits[:, 1] - logits[:, 0]) == pytest.approx(recorded, abs=1e-6)
    with pytest.raises(UnmaskError, match="intermediate checkpoint"):
        load_classifier(result.run_dir / "best.safetensors")


def test_settings_are_checked_before_any_work():
    with pytest.raises(UnmaskError, match="preset paper needs one of the paper.s backbones"):
        make_config("paper")
    with pytest.raises(UnmaskError, match="^size must not be negative"):
        make_config(size=-1)
    with pytest.raises(UnmaskError, match="^workers must not be negative"):
        make_config(workers=-1)
    with pytest.raises(UnmaskError, match="^device 'gpu' is not a device"):
        make_config(device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(UnmaskError, match="no usable GPU"):
            make_config(device="cuda")


def test_balanced_sampler_draws_classes_equally_and_is_never_combined_with_class_weights():
    import numpy as np

    from unmask.training.trainer import balanced_sampler

    labels = np.array([0] * 100 + [1] * 400)
    drawn = labels[list(balanced_sampler(labels, torch.Generator().manual_seed(0)))]
    assert 0.45 < drawn.mean() < 0.55  # the data are 80% fake; the batches half
    assert make_config(batch_sampler="balanced").class_weights == "none"  # the default weights give way
    with pytest.raises(UnmaskError, match="corrected twice"):
        make_config(batch_sampler="balanced", class_weights="balanced")
    assert make_config(batch_sampler="balanced", class_weights="none").batch_sampler == "balanced"


def _fewer_real_training_videos(df):
    real_train = sorted(set(df.loc[(df["label"] == 0) & (df["split_video"] == "train"), "video_id"]))
    return df[~df["video_id"].isin(real_train[:2])]


def test_val_loss_is_the_training_objective_focal_and_weighted(prepared, tmp_path):
    from unmask.data.manifest import select_split
    from unmask.evaluation.evaluator import score_rows
    from unmask.training.cost import FocalLoss

    data = _manifest_copy(prepared, tmp_path, _fewer_real_training_videos)
    config = make_config(model="mobilenetv3_small", epochs=1, loss="focal", class_weights="effective", **QUICK)
    result = train(data, tmp_path / "run", config)
    model, record = load_classifier(result.checkpoint)
    weights = torch.tensor(record.train["class_weights"], dtype=torch.float32)
    assert weights[0] > weights[1]  # fewer real crops: real weighs more
    val = select_split(pd.read_parquet(data / "manifest.parquet"), "video", "val")
    logits = torch.as_tensor(score_rows(model, record, val, data))
    target = torch.as_tensor(val["label"].to_numpy().copy())
    focal = FocalLoss(weights, gamma=2.0)(logits, target).item()
    assert result.history[0]["val_loss"] == pytest.approx(focal, rel=1e-4)
    assert focal != pytest.approx(torch.nn.functional.cross_entropy(logits, target).item(), rel=1e-3)


def test_val_loss_selects_the_checkpoint_and_early_stopping_stops_after_n_bad_epochs(prepared, tmp_path):
    config = make_config(
        model="mobilenetv3_small", epochs=8, select_metric="val_loss", early_stopping=2, max_steps=2, lr=3e-3, **QUICK
    )
    result = train(prepared, tmp_path / "run", config)
    losses = [row["val_loss"] for row in result.history]
    assert result.best_epoch == 1 + losses.index(min(losses)) and result.best_metric == min(losses)
    assert len(losses) < 8, losses  # it did stop early here ...
    assert len(losses) == result.best_epoch + 2  # ... two epochs after the best one
    assert read_metadata(result.checkpoint)["epoch"] == result.best_epoch


def test_label_level_face_leaves_out_the_other_faces_of_fake_videos(prepared, tmp_path):
    from unmask.data.manifest import label_levels, select_label_level

    df = pd.read_parquet(prepared / "manifest.parquet")
    assert set(df["label_level"]) == {"face"}  # one face per clip: the label is the face's
    two_faces = df.assign(track_id=df["frame_index"] % 2)  # as --keep all gives for two people
    levels = label_levels(two_faces)
    assert set(levels[two_faces["label"] == 1]) == {"video"} and set(levels[two_faces["label"] == 0]) == {"face"}
    kept = select_label_level(two_faces.assign(label_level=levels), "face")
    assert set(kept["label"]) == {0}
    with pytest.raises(ManifestError, match="prepare it again"):
        select_label_level(df.drop(columns="label_level"), "face")
    data = _manifest_copy(
        prepared,
        tmp_path,
        lambda d: d.assign(
            label_level=["video" if v.endswith("1") and l == 1 else "face" for v, l in zip(d["video_id"], d["label"])]
        ),
    )
    config = make_config(model="mobilenetv3_small", epochs=1, label_level="face", max_steps=1, **QUICK)
    meta = read_metadata(train(data, tmp_path / "run", config).checkpoint)
    rows = pd.read_parquet(data / "manifest.parquet")
    train_rows = rows[rows["split_video"] == "train"]
    assert meta["data"]["train_crops"] == (train_rows["label_level"] == "face").sum() < len(train_rows)


def test_bundled_weights_give_a_pretrained_start_with_no_internet(prepared, tmp_path):
    config = make_config(
        model="efficientnet_lite0", epochs=1, pretrained=True, size=64, batch_size=8, max_steps=1, workers=0
    )
    assert train(prepared, tmp_path / "run", config).checkpoint.is_file()


def test_frozen_stages_keep_their_imagenet_weights_and_statistics_through_training(prepared, tmp_path):
    from unmask.models import create_model

    config = make_config(
        model="efficientnet_lite0", epochs=1, size=64, batch_size=8, max_steps=2, workers=0, freeze_stages=2
    )
    train(prepared, tmp_path / "run", config)
    trained = {k.removeprefix("model."): v for k, v in load_file(tmp_path / "run" / "model.safetensors").items()}
    imagenet = {
        f"backbone.{k}": v for k, v in create_model("efficientnet_lite0", pretrained=True).backbone.state_dict().items()
    }
    for key in ("conv_stem.weight", "bn1.running_mean", "blocks.0.0.conv_dw.weight", "blocks.1.1.bn3.running_var"):
        assert torch.equal(trained[f"backbone.{key}"], imagenet[f"backbone.{key}"]), key
    for key in ("blocks.2.0.conv_pw.weight", "blocks.6.0.bn1.running_mean", "conv_head.weight"):
        assert not torch.equal(trained[f"backbone.{key}"], imagenet[f"backbone.{key}"]), key
    with pytest.raises(UnmaskError, match="freeze_stages must be 0-5"):
        create_model("mobilenetv3_small", pretrained=False).freeze_stages(6)


def test_unreachable_hub_weights_say_what_to_do(monkeypatch):
    import timm

    from unmask.models import create_model

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(timm, "create_model", offline)
    monkeypatch.setattr("unmask.models.registry.resolve_hub_weights", lambda spec: None)  # the hub answered
    with pytest.raises(
        UnmaskError, match="Cannot get ImageNet weights for 'xception'.*pass weights=FILE.*pretrained=False"
    ):
        create_model("xception", pretrained=True)
