import pytest

from unmask.data.prepare import PrepareConfig, prepare
from unmask.demo import make_demo_dataset
from unmask.video import FrameSampler


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """12 demo clips (6 real, 6 fake) -> 8 face crops each, 64 px."""
    clips = make_demo_dataset(tmp_path_factory.mktemp("train-clips"), clips_per_class=6, seconds=1.0, fps=8)
    out = tmp_path_factory.mktemp("prepared")
    prepare(clips, out, PrepareConfig("folder", sampler=FrameSampler("uniform", 8), size_px=64))
    return out
