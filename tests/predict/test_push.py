"""``unmask push``: the files it uploads, loaded back by name from a hub cache (offline), and its refusals."""

from __future__ import annotations

import json

import pytest

from unmask.errors import UnmaskError

from tests.decision.test_hub import COMMIT, lay_out_cache


@pytest.fixture(scope="module")
def staged(small_run, tmp_path_factory):
    from unmask.predict.push import stage_run

    folder = tmp_path_factory.mktemp("staged")
    return folder, stage_run(small_run[0].run_dir, folder, repo_id="my-lab/tiny")


def test_the_staged_folder_is_a_model_card_weights_and_the_record(staged, small_run):
    from unmask.decision.checkpoint import read_metadata
    from unmask.decision.record import CheckpointRecord

    folder, files = staged
    assert {p.name for p in files} >= {"model.safetensors", "README.md", "record.json", "model_card.json"}
    readme = (folder / "README.md").read_text()
    assert readme.startswith("---\nlibrary_name: unmask\n")
    assert "# Model card: mobilenetv3_small" in readme and "--model hf://my-lab/tiny" in readme
    assert "## Calibration" in readme
    record = CheckpointRecord.from_metadata(json.loads((folder / "record.json").read_text()))
    assert record == CheckpointRecord.from_metadata(read_metadata(small_run[0].run_dir))
    assert json.loads((folder / "model_card.json").read_text())["model"]["name"] == "mobilenetv3_small"


def test_what_push_uploads_loads_back_by_name_offline(staged, tmp_path, monkeypatch):
    from unmask import Detector

    folder, files = staged
    lay_out_cache(tmp_path / "hub", "my-lab/tiny", {p.name: p for p in files}, refs=("main", "v1"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    detector = Detector.load("hf://my-lab/tiny@v1", device="cpu")
    from unmask.decision.hub import resolve_model

    assert detector.spec.name == "mobilenetv3_small"
    assert resolve_model("hf://my-lab/tiny") == tmp_path / "hub" / "models--my-lab--tiny" / "snapshots" / COMMIT


class FakeApi:
    def __init__(self, fail: Exception | None = None):
        self.calls, self.fail = [], fail

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, *, folder_path, repo_id, **kwargs):
        from pathlib import Path

        if self.fail:
            raise self.fail
        self.calls.append(("upload_folder", repo_id, sorted(p.name for p in Path(folder_path).iterdir())))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/{COMMIT}"})()


def test_push_uploads_the_staged_folder_and_says_where(small_run, monkeypatch):
    from unmask.predict.push import push_run

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    api = FakeApi()
    url = push_run(small_run[0].run_dir, "hf://my-lab/tiny", token="hf_test", private=True, api=api)
    assert url.endswith(f"my-lab/tiny/commit/{COMMIT}")
    (create, repo, options), (upload, repo2, names) = api.calls
    assert (create, repo, options["private"], upload, repo2) == (
        "create_repo",
        "my-lab/tiny",
        True,
        "upload_folder",
        "my-lab/tiny",
    )
    assert {"model.safetensors", "README.md", "record.json"} <= set(names)


def test_push_refuses_in_one_line_without_a_token_offline_or_when_the_hub_says_no(small_run, tmp_path, monkeypatch):
    from unmask.predict.push import check_repo_id, push_run, stage_run

    run = small_run[0].run_dir
    (tmp_path / "empty").mkdir()
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no saved token there
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    monkeypatch.setattr(hub_constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf" / "stored_tokens"), raising=False)
    with pytest.raises(UnmaskError, match=r"^No Hugging Face token: run `hf auth login`"):
        push_run(run, "my-lab/tiny", api=FakeApi())
    with pytest.raises(UnmaskError, match=r"^Could not push to my-lab/tiny: 401 Unauthorized"):
        push_run(run, "my-lab/tiny", token="hf_bad", api=FakeApi(fail=RuntimeError("401 Unauthorized\nmore")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UnmaskError, match=r"^Cannot push with HF_HUB_OFFLINE=1"):
        push_run(run, "my-lab/tiny", token="hf_test", api=FakeApi())
    with pytest.raises(UnmaskError, match=r"^'just-a-name' is not a repository name; write ORG/NAME"):
        check_repo_id("just-a-name")
    with pytest.raises(UnmaskError, match=r"^No checkpoint at .*model.safetensors; train one"):
        stage_run(tmp_path / "empty", tmp_path / "out")
