"""``hf://ORG/NAME[@REVISION]``: a detector loaded by name from huggingface_hub's cache, offline.

The tests lay the cache out on disk themselves, as huggingface_hub writes it (``models--ORG--NAME/
{blobs,refs,snapshots}``), and set ``HF_HUB_OFFLINE=1``: nothing touches the network.
"""

import hashlib
import os
from pathlib import Path

import pytest

from unmask.decision.hub import is_hub_name, parse_hub_name, resolve_model
from unmask.errors import UnmaskError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def lay_out_cache(cache: Path, repo_id: str, files: dict[str, Path], *, commit: str = COMMIT, refs=("main",)) -> Path:
    """Put ``files`` (name in the repo -> local file) into a hub cache as a snapshot of ``commit``."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        data = Path(source).read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, (snapshot / name).parent), snapshot / name)
    (repo / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (repo / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def hub_cache(small_run, tmp_path, monkeypatch):
    """A hub cache holding the small run as ``unmask-tests/tiny`` (main), offline."""
    run = small_run[0].run_dir
    cache = tmp_path / "hf" / "hub"
    files = {"model.safetensors": run / "model.safetensors", "README.md": run / "MODEL_CARD.md"}
    snapshot = lay_out_cache(cache, "unmask-tests/tiny", files)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache, snapshot


@pytest.fixture(scope="module")
def good_clip(demo_clips):
    return sorted((demo_clips / "fake").iterdir())[0]


def test_names_parse_also_after_pathlib_dropped_a_slash():
    assert parse_hub_name("hf://org/name") == ("org/name", None)
    assert parse_hub_name(Path("hf://org/name@v1.0")) == ("org/name", "v1.0")
    assert is_hub_name(Path("hf://org/name")) and not is_hub_name("runs/x")
    assert resolve_model("runs/x") == Path("runs/x")
    with pytest.raises(UnmaskError, match=r"^'hf://name-only' is not a model name; write hf://ORG/NAME"):
        parse_hub_name("hf://name-only")


def test_a_detector_loads_by_name_from_the_cache_offline(hub_cache, small_run, good_clip):
    from unmask import Detector

    cache, snapshot = hub_cache
    assert resolve_model("hf://unmask-tests/tiny") == snapshot
    assert resolve_model(Path(f"hf://unmask-tests/tiny@{COMMIT}")) == snapshot
    by_name = Detector.load("hf://unmask-tests/tiny", device="cpu")
    local = Detector.load(small_run[0].run_dir, device="cpu")
    assert by_name.threshold == local.threshold and by_name.spec == local.spec
    assert by_name.predict(good_clip).p_fake == pytest.approx(local.predict(good_clip).p_fake, abs=1e-6)


@pytest.mark.parametrize(
    "name, message",
    [
        (
            "hf://unmask-tests/absent",
            r"^Cannot load hf://unmask-tests/absent: offline \(HF_HUB_OFFLINE=1\) and it is "
            r"not in the cache",
        ),
        ("hf://unmask-tests/tiny@v9", r"^Cannot load hf://unmask-tests/tiny@v9: offline"),
    ],
)
def test_an_unknown_name_or_revision_is_one_clear_line(hub_cache, name, message):
    from unmask.decision.checkpoint import load_classifier

    with pytest.raises(UnmaskError, match=message) as info:
        load_classifier(name)
    assert "\n" not in str(info.value)


def test_a_repo_without_a_model_is_refused(hub_cache, tmp_path):
    cache, _ = hub_cache
    (tmp_path / "notes.md").write_text("not a model")
    lay_out_cache(cache, "unmask-tests/empty", {"README.md": tmp_path / "notes.md"})
    with pytest.raises(UnmaskError, match="holds no model.safetensors"):
        resolve_model("hf://unmask-tests/empty")


def test_the_command_line_takes_a_hub_name_and_says_what_is_wrong_in_one_line(hub_cache, good_clip):
    from tests.predict.test_cli import unmask

    # (Path("hf://...") drops a slash: the resolver reads both; loading by name itself is tested above)
    result = unmask("predict", good_clip, "--model", "hf://unmask-tests/nothing")
    assert result.returncode == 1, result.stderr
    assert "Cannot load hf://unmask-tests/nothing: offline" in result.stderr and "Traceback" not in result.stderr
