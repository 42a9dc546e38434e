"""Detectors shared by name: ``hf://ORG/NAME[@REVISION]`` resolved to a local folder.

A detector pushed with ``unmask push`` is a Hugging Face Hub model repository holding the run's
``model.safetensors``, its model card as ``README.md`` and its checkpoint record. Every command
that loads a model (``predict``, ``serve``, ``evaluate``, ``explain``, ``export``) goes through
:func:`resolve_model`, which downloads those files once into huggingface_hub's cache (``HF_HOME``,
``HF_HUB_CACHE``) and returns the cached snapshot folder; with ``HF_HUB_OFFLINE=1`` it reads the
cache and never touches the network. Anything else is returned as the local path it is.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from unmask.errors import UnmaskError

logger = logging.getLogger(__name__)

SCHEME = "hf://"
# the files of a pushed run (unmask.predict.push.stage_run writes them)
MODEL_FILES = ["model.safetensors", "README.md", "record.json", "model_card.json", "evaluation.json", "*.png"]
# ``hf://`` or, after pathlib collapsed the double slash of a Path("hf://..."), ``hf:/``
_NAME = re.compile(r"^hf:/{1,2}(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w./-]+))?/?$")


def is_hub_name(model: str | os.PathLike) -> bool:
    """True for ``hf://ORG/NAME[@REVISION]`` (also as a :class:`~pathlib.Path`, which drops a slash)."""
    return str(model).startswith("hf:/")


def parse_hub_name(model: str | os.PathLike) -> tuple[str, str | None]:
    """``(ORG/NAME, REVISION or None)`` of a hub name.

    Raises:
        UnmaskError: not of the form ``hf://ORG/NAME[@REVISION]``.
    """
    match = _NAME.match(str(model))
    if not match:
        text = str(model).replace("hf:/", "hf://", 1) if not str(model).startswith("hf://") else str(model)
        raise UnmaskError(f"{text!r} is not a model name; write hf://ORG/NAME or hf://ORG/NAME@REVISION")
    return match["repo"], match["revision"]


def resolve_model(model: str | os.PathLike) -> Path:
    """The local run folder or checkpoint file that ``model`` names.

    Args:
        model: a run folder, a checkpoint file, or ``hf://ORG/NAME[@REVISION]`` (REVISION a branch,
            tag or commit; default ``main``).

    Returns:
        ``model`` as a path, or the cached snapshot folder of the hub repository.

    Raises:
        UnmaskError: a malformed name, a repository or revision that does not exist, no network
            and nothing in the cache, or a repository without ``model.safetensors``.
    """
    if not is_hub_name(model):
        return Path(model)
    repo_id, revision = parse_hub_name(model)
    name = f"hf://{repo_id}" + (f"@{revision}" if revision else "")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError as exc:  # pragma: no cover - a dependency of unmask and timm
        raise UnmaskError(f"{name} needs the huggingface_hub package: pip install huggingface_hub") from exc
    offline = _env_true("HF_HUB_OFFLINE")
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=MODEL_FILES,
            cache_dir=_cache_dir(),
            local_files_only=offline,
            library_name="unmask",
        )
    except LocalEntryNotFoundError:
        where = "offline (HF_HUB_OFFLINE=1) and" if offline else "the Hub could not be reached and"
        raise UnmaskError(
            f"Cannot load {name}: {where} it is not in the cache ({_cache_dir() or 'the default'}); "
            "check the name, or fetch it once online"
        ) from None
    except (HfHubHTTPError, OSError, ValueError) as exc:  # 401/404 (no such repo or revision), bad ids
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnmaskError(
            f"Cannot load {name}: {first}; check the name and revision "
            "(a private repository needs `hf auth login` or HF_TOKEN)"
        ) from None
    folder = Path(folder)
    if not (folder / "model.safetensors").is_file():
        raise UnmaskError(f"{name} holds no model.safetensors: it is not a detector pushed with `unmask push`")
    logger.info("%s -> %s", name, folder)
    return folder


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _cache_dir() -> str | None:
    """The hub cache the environment names now (huggingface_hub reads it only when first imported)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None
