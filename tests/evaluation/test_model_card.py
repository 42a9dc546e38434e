"""The model card a run writes, and which evaluated videos a run has seen (by identity, not path)."""

import json
import shutil

import pandas as pd
import pytest
import torch

from unmask.data.manifest import read_manifest, select_split
from unmask.evaluation.model_card import card_html, card_markdown, card_warnings, model_card, seen_in_training
from unmask.decision.checkpoint import read_metadata, read_record


def test_train_writes_a_model_card_with_data_settings_calibration_and_versions(small_run, prepared):
    run = small_run[0].run_dir
    card = json.loads((run / "model_card.json").read_text())
    manifest = pd.read_parquet(prepared / "manifest.parquet")
    for split in ("train", "val", "test"):
        rows = manifest[manifest["split_video"] == split]
        assert card["data"]["splits"][split]["videos"] == rows["video_id"].nunique()
        assert card["data"]["splits"][split]["crops"] == len(rows)
    assert card["data"]["classes"] == {"0": "real", "1": "fake"} and card["data"]["protocol"] == "video"
    assert card["training"]["lr"] == 1e-3 and card["training"]["epochs_run"] == 10
    assert card["training"]["size"] == 64 and card["training"]["batch_sampler"] == "shuffle"
    assert card["data"]["face_step"].startswith(
        "mtcnn detector (pass 1, pass 2, small-face pass, pass 3 (near the face), gaps up to 2 bridged)"
    )
    assert ", 64 px png, uniform sampler, 8 frames per video" in card["data"]["face_step"]
    assert card["decision"]["threshold"] == 0.5 and card["calibration"]["ece_frame"] is not None
    # 1 fake and 1 real validation video: the card must say the calibration rests on too little
    assert any("only 1 fake and 1 real videos" in w for w in card["warnings"]), card["warnings"]
    assert card["provenance"]["packages"]["torch"] == torch.__version__.split("+")[0]
    assert card["prepare_provenance"]["packages"]["pyav"]  # the manifest's own record, carried along
    text = (run / "MODEL_CARD.md").read_text()
    assert text.startswith("# Model card: mobilenetv3_small") and "**Warnings**" in text
    assert "| train | 8 videos (4 fake, 4 real), 64 crops (32 fake, 32 real)" in text
    assert "![reliability diagram](reliability.png)" in text and (run / "reliability.png").stat().st_size > 5000
    config = json.loads((run / "config.json").read_text())
    assert config["provenance"]["packages"]["timm"] and "command" in config["provenance"]
    assert read_metadata(run)["provenance"]["device"]["type"] == "cpu"
    _, manifest_meta = read_manifest(prepared)
    assert manifest_meta["provenance"]["packages"]["opencv"]


def _record(**meta):
    """The record of a checkpoint whose metadata holds ``meta`` (read as any checkpoint's is)."""
    from dataclasses import asdict

    from unmask.decision.record import CheckpointRecord
    from unmask.models.registry import get_spec

    return CheckpointRecord.from_metadata(
        {"spec": asdict(get_spec("mobilenetv3_small")), "size_px": 64, "temperature": 1.0, **meta}
    )


def test_a_healthy_calibration_gets_no_warning_and_a_bound_one_does():
    healthy = {
        "calibration": {
            "health": {
                "n_fake": 400,
                "n_real": 300,
                "videos_fake": 20,
                "videos_real": 15,
                "at_bound": False,
                "trusted": True,
                "note": "ok",
            }
        },
        "video_calibration": {"mean": {"health": {"trusted": True, "at_bound": False, "note": "ok"}}},
    }
    assert card_warnings(_record(**healthy)) == []
    bound = json.loads(json.dumps(healthy))
    bound["calibration"]["health"].update(at_bound=True, trusted=False, note="slope reached 1000")
    warnings = card_warnings(_record(**bound))
    assert any("hit its bound" in w for w in warnings) and any("rests on little data" in w for w in warnings)
    few = json.loads(json.dumps(healthy))
    few["calibration"]["health"]["videos_real"] = 2
    assert card_warnings(_record(**few)) == [
        "the validation crops come from only 2 real videos: a threshold and a "
        "calibration fitted on so few videos may not hold on others"
    ]
    assert "seen_in_training" not in model_card(_record(**healthy))


def test_the_cards_html_escapes_every_value_and_its_markdown_keeps_them(small_run):
    card = json.loads((small_run[0].run_dir / "model_card.json").read_text())
    evil = "<script>alert(1)</script>"
    card = {**card, "data": {**card["data"], "dataset": evil}, "warnings": [f"about {evil}"]}
    page = card_html(card, reliability_src="data:image/png;base64,AAAA")
    assert "<script>" not in page and page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2
    assert "<tr><th>dataset</th><td>&lt;script&gt;" in page and '<img src="data:image/png;base64,AAAA"' in page
    text = card_markdown(card)
    assert f"| dataset | {evil} |" in text and f"- about {evil}" in text and text.endswith(" |\n")


def test_the_same_videos_prepared_into_another_folder_count_as_seen(small_run, prepared, tmp_path):
    from unmask.evaluation.evaluator import evaluate

    run = small_run[0].run_dir
    record = read_record(run)
    copy = tmp_path / "moved"
    shutil.copytree(prepared, copy, ignore=shutil.ignore_patterns("cache"))
    manifest, _ = read_manifest(copy)
    assert str(copy.resolve()) != record.data["manifest"]  # the old path rule would read all as unseen
    seen = seen_in_training(record, manifest)
    assert (seen["n_seen"], seen["n_videos"]) == (10, 12)  # train and val videos, not the 2 test ones
    result = evaluate(run, copy, tmp_path / "eval", protocol="paper", report=False, bootstrap=0)
    paper_test = select_split(manifest, "paper", "test")
    expected = paper_test.loc[paper_test["split_video"].isin(["train", "val"]), "video_id"].nunique()
    assert result.metrics["seen"]["n_seen"] == expected > 0
    assert result.metrics["seen_in_training"] == pytest.approx(expected / paper_test["video_id"].nunique())
    assert result.metrics["model_card"]["seen_in_training"]["n_seen"] == expected


def test_other_videos_under_the_same_names_are_not_seen(small_run, prepared):
    record = read_record(small_run[0].run_dir)
    manifest, _ = read_manifest(prepared)
    other = manifest.assign(video_hash="0" * 64)  # same dataset and ids, other content
    assert seen_in_training(record, other)["n_seen"] == 0
    old = manifest.drop(columns="video_hash")  # a manifest from before fingerprints: matched by dataset:video_id
    assert seen_in_training(record, old)["n_seen"] == 10


def test_seen_is_matched_by_fingerprint_first_then_by_dataset_and_id():
    from unmask.evaluation.model_card import record_videos

    def rows(*videos):  # (dataset, video_id, hash or None), two crops each
        return pd.DataFrame([{"dataset": d, "video_id": v, "video_hash": h} for d, v, h in videos for _ in range(2)])

    record = _record(
        data={
            "videos": record_videos(
                rows(("ffpp", "original/c23/004", "a" * 64)), rows(("ffpp", "Deepfakes/c23/519_515", "b" * 64))
            )
        }
    )
    evaluated = rows(
        ("ffpp", "original/c23/004", "a" * 64),  # the same file: seen
        ("folder", "real/004", "a" * 64),  # the same file under another adapter: seen
        ("ffpp", "Deepfakes/c23/519_515", "c" * 64),  # the same name, other content: not seen
        ("ffpp", "Deepfakes/c23/519_515", None),  # no fingerprint: the name decides, seen
        ("celebdf", "original/c23/004", None),
    )  # the same id in another dataset: not seen
    seen = seen_in_training(record, evaluated)
    assert (seen["n_seen"], seen["n_videos"]) == (3, 4)  # the two Deepfakes rows share one name: one video
    assert seen["crops"] == pytest.approx(6 / 10)
