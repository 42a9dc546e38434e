"""Shared fixtures: small face clips made at test time, and the real FF++ samples where present."""

from __future__ import annotations

from pathlib import Path

import pytest

from unmask.demo import make_demo_dataset

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples"


@pytest.fixture(scope="session")
def demo_clips(tmp_path_factory) -> Path:
    """``real/`` and ``fake/`` with 2 clips each: 1 s, 8 fps, 320x240 H.264."""
    return make_demo_dataset(tmp_path_factory.mktemp("clips"), clips_per_class=2, seconds=1.0, fps=8)


@pytest.fixture(scope="session")
def ffpp_samples() -> Path:
    """The four real FaceForensics++ clips in ../shared/samples (a developer's or CI's checkout)."""
    root = SAMPLES / "ffpp"
    if not root.is_dir():
        pytest.skip("../shared/samples/ffpp is absent (a user's clone has no ../shared); synthetic clips cover the mechanics")
    return root
