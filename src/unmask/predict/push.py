"""``unmask push``: share a trained detector by name on the Hugging Face Hub.

The repository gets the run's ``model.safetensors`` (weights and the metadata ``predict`` needs),
its model card as ``README.md`` (the Hub shows it as the repository's page), the checkpoint
record as ``record.json`` and the card as ``model_card.json`` for tools, the reliability diagram,
and, when there is one, the brief of its test evaluation (``evaluation.json``, quoted by reports).
Anyone can then judge with ``--model hf://ORG/NAME`` (:mod:`unmask.decision.hub`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from unmask.errors import UnmaskError

logger = logging.getLogger(__name__)

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def check_repo_id(repo_id: str) -> str:
    """``ORG/NAME`` as the Hub spells repository ids (an ``hf://`` prefix is dropped).

    Raises:
        UnmaskError: anything else.
    """
    repo_id = re.sub(r"^hf:/{1,2}", "", str(repo_id)).strip("/")
    if not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise UnmaskError(f"{repo_id!r} is not a repository name; write ORG/NAME (letters, digits, '-', '_', '.')")
    return repo_id


def stage_run(
    run_dir: str | Path, folder: str | Path, *, repo_id: str = "ORG/NAME", evaluation: str | Path | None = None
) -> list[Path]:
    """Write the files ``unmask push`` uploads for the run in ``run_dir`` into ``folder``.

    Args:
        repo_id: the repository's name, quoted in the README's usage lines.
        evaluation: an ``unmask evaluate`` folder (or its ``metrics.json``) of the run's test
            split; default the newest one inside ``run_dir`` (see
            :func:`unmask.predict.report.find_test_evaluation`).

    Returns:
        The staged files.

    Raises:
        UnmaskError: no calibrated ``model.safetensors`` in ``run_dir``.
    """
    from unmask.decision.checkpoint import read_record
    from unmask.evaluation.model_card import RELIABILITY_PNG, card_markdown, model_card
    from unmask.predict.report import EVALUATION_JSON, evaluation_brief, find_test_evaluation

    run_dir, folder = Path(run_dir), Path(folder)
    checkpoint = run_dir / "model.safetensors" if run_dir.is_dir() else run_dir
    record = read_record(checkpoint)  # refuses an intermediate checkpoint
    folder.mkdir(parents=True, exist_ok=True)
    staged = [folder / "model.safetensors", folder / "record.json", folder / "model_card.json", folder / "README.md"]
    shutil.copyfile(checkpoint, staged[0])
    staged[1].write_text(json.dumps(record.to_metadata(), indent=1))
    card = model_card(record)
    staged[2].write_text(json.dumps(card, indent=1))
    reliability = checkpoint.parent / RELIABILITY_PNG
    if reliability.is_file():
        shutil.copyfile(reliability, folder / RELIABILITY_PNG)
        staged.append(folder / RELIABILITY_PNG)
    if evaluation is not None:
        path = Path(evaluation) / "metrics.json" if Path(evaluation).is_dir() else Path(evaluation)
        try:
            test = evaluation_brief(json.loads(path.read_text()), where=path.parent.name)
        except (OSError, ValueError) as exc:
            raise UnmaskError(f"Cannot read the evaluation {path} ({exc}); give an `unmask evaluate` folder") from None
    else:
        test = find_test_evaluation(checkpoint.parent)
    if test is not None:
        (folder / EVALUATION_JSON).write_text(json.dumps(test, indent=1))
        staged.append(folder / EVALUATION_JSON)
    staged[3].write_text(
        _readme(
            card,
            repo_id,
            test,
            has_reliability=reliability.is_file(),
            body=card_markdown(card, reliability_png=RELIABILITY_PNG if reliability.is_file() else None),
        )
    )
    return staged


def _readme(card: dict, repo_id: str, test: dict | None, *, has_reliability: bool, body: str) -> str:
    """The Hub page: YAML front matter, how to use the detector, its test result, then the card."""
    tags = ["unmask", "deepfake-detection", "video-classification", "safetensors"]
    front = ["---", "library_name: unmask", "tags:", *[f"- {t}" for t in tags], "---", ""]
    use = [
        "## Use",
        "",
        "```bash",
        "pip install unmask",
        f"unmask predict clip.mp4 --model hf://{repo_id}",
        f"unmask predict clip.mp4 --model hf://{repo_id} --report clip-report.html",
        f"unmask serve --model hf://{repo_id}",
        "```",
        "",
        "The files: `model.safetensors` (weights, and in its metadata everything `unmask` needs to judge as "
        "training did: preprocessing, calibration, costs and threshold, the face step), `record.json` (that "
        "metadata as JSON), `model_card.json` (this card, for tools).",
        "",
    ]
    if test and test.get("video_auc") is not None:
        ci = test.get("video_auc_ci95")
        interval = f" (95% interval {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""
        use += [
            "## Test result",
            "",
            f"Video AUC {test['video_auc']:.3f}{interval} on {test.get('videos')} "
            f"{test.get('dataset') or ''} {test.get('split')} videos (`evaluation.json`).",
            "",
        ]
    return "\n".join(front + [body.split("\n", 1)[0], ""] + use + [body.split("\n", 1)[1] if "\n" in body else ""])


def push_run(
    run_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    evaluation: str | Path | None = None,
    api=None,
) -> str:
    """Upload the run in ``run_dir`` to the Hub repository ``repo_id`` (made if need be).

    Args:
        private: make a new repository private.
        token: a Hub token with write access (default ``HF_TOKEN`` or the one ``hf auth login`` saved).
        api: a :class:`huggingface_hub.HfApi` (default a new one).

    Returns:
        The URL of the commit.

    Raises:
        UnmaskError: a bad name, no token, offline mode, or the Hub refused or could not be reached.
    """
    repo_id = check_repo_id(repo_id)
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        raise UnmaskError("Cannot push with HF_HUB_OFFLINE=1 (offline mode); unset it and try again")
    from huggingface_hub import HfApi, get_token

    token = token or get_token()
    if not token:
        raise UnmaskError("No Hugging Face token: run `hf auth login` (a token with write access) or set HF_TOKEN")
    api = api or HfApi()
    with tempfile.TemporaryDirectory(prefix="unmask-push-") as folder:
        stage_run(run_dir, folder, repo_id=repo_id, evaluation=evaluation)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True, token=token)
            commit = api.upload_folder(
                folder_path=folder, repo_id=repo_id, token=token, commit_message=f"unmask push of {Path(run_dir).name}"
            )
        except Exception as exc:  # HTTP errors, no network, refused token: one line, whatever the transport says
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UnmaskError(
                f"Could not push to {repo_id}: {first[:300]}; check the token's write access and the network"
            ) from None
    return str(getattr(commit, "commit_url", commit))
