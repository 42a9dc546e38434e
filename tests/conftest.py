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
        pytest.skip(
            "../shared/samples/ffpp is absent (a user's clone has no ../shared); synthetic clips cover the mechanics"
        )
    return root


# Which hard clips CI checks: a dark, small, compressed face on a real clip, and the other
# conditions the single pass misses most, on real clips and package portraits. (Where ../shared is
# absent, the portraits stand in for the real clips.)
HARD_CLIPS = {
    "ffpp004": ("small_dark", "profile"),
    "ffpp519": ("profile",),
    "hopper": ("rotated", "crf40", "small_dark", "cutaway"),
    "astronaut": ("blur", "small", "small_dark"),
}


@pytest.fixture(scope="session")
def hard_clips(tmp_path_factory):
    """A few 32-frame hard clips (:mod:`unmask.testing.hard_set`) and a dark no-face clip, made once."""
    from functools import partial

    from unmask.testing.hard_set import clip_frames, make_hard_set, portrait_frames

    out = tmp_path_factory.mktemp("hard-set")
    stand_in = {"ffpp004": "hopper", "ffpp519": "astronaut"}
    clips = []
    for name, conditions in HARD_CLIPS.items():
        real = SAMPLES / "ffpp" / "original_sequences" / "youtube" / "c23" / "videos" / f"{name[4:]}.mp4"
        if name.startswith("ffpp"):
            source = partial(clip_frames, real) if real.is_file() else partial(portrait_frames, stand_in[name])
        else:
            source = partial(portrait_frames, name)
        clips += make_hard_set(out, {name: source}, conditions=conditions, noface=())
    return clips + make_hard_set(out, {}, noface=("noface_dark",))


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """12 demo clips (6 real, 6 fake) -> 8 face crops each, 64 px, with all split protocols."""
    from unmask.data.preparation import PrepareConfig, prepare
    from unmask.video import FrameSampler

    clips = make_demo_dataset(tmp_path_factory.mktemp("train-clips"), clips_per_class=6, seconds=1.0, fps=8)
    out = tmp_path_factory.mktemp("prepared")
    prepare(clips, out, PrepareConfig("folder", sampler=FrameSampler("uniform", 8), size=64))
    return out


@pytest.fixture(scope="session")
def paper_runs(prepared, tmp_path_factory):
    """Each of the paper's four backbones trained with the paper preset for 2 steps at 128 px."""
    from unmask.models.registry import PAPER_BACKBONES
    from unmask.training.config import make_config
    from unmask.training.trainer import train

    root = tmp_path_factory.mktemp("paper-runs")
    runs = {}
    for name in PAPER_BACKBONES:
        config = make_config(
            "paper", model=name, pretrained=False, size=128, epochs=1, batch_size=4, max_steps=2, workers=0
        )
        runs[name] = train(prepared, root / name, config)
    return runs


@pytest.fixture(scope="session")
def small_run(prepared, tmp_path_factory):
    """mobilenetv3_small trained for 10 epochs on the demo crops (it learns them), from their own fakes
    alone (self-blended fakes have tests of their own, tests/training/test_sbi.py)."""
    from unmask.training.config import make_config
    from unmask.training.trainer import train

    config = make_config(
        model="mobilenetv3_small",
        pretrained=False,
        size=64,
        batch_size=16,
        workers=0,
        epochs=10,
        lr=1e-3,
        early_stopping=0,
        synthesize="none",
    )
    rows = []
    result = train(prepared, tmp_path_factory.mktemp("small-run") / "run", config, on_epoch=rows.append)
    return result, rows
