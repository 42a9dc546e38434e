import json

import cv2
import numpy as np
import pytest

from unmask.demo import load_portraits, write_video
from unmask.errors import NoFaceFoundError, UnknownNameError
from unmask.explain import PAPER_METHODS
from unmask.predict.explanation import explain_file as explain
from unmask.models.registry import PAPER_BACKBONES


@pytest.fixture(scope="module")
def face_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(load_portraits()["astronaut"], cv2.COLOR_RGB2BGR))
    return path


@pytest.mark.parametrize("backbone", PAPER_BACKBONES)
def test_the_papers_four_methods_on_each_paper_backbone(paper_runs, face_image, tmp_path, backbone):
    out = tmp_path / backbone
    explanations = explain(paper_runs[backbone].run_dir, face_image, out, methods=PAPER_METHODS)
    assert [e.method for e in explanations] == list(PAPER_METHODS)
    for e in explanations:
        image = cv2.imread(str(out / e.png))
        assert image is not None and image.shape == (224, 224, 3)  # a 128 px model's maps are shown at 224
        assert 0.0 <= e.p_fake <= 1.0
    record = json.loads((out / "explanations.json").read_text())
    assert len(record["explanations"]) == 4 and (out / "astronaut_000000_00_face.png").is_file()
    assert record["sheet"] == "astronaut_sheet.png" and (out / "astronaut_sheet.png").is_file()


def test_a_video_is_explained_most_suspicious_face_first(small_run, demo_clips, tmp_path):
    video = next((demo_clips / "fake").glob("*.mp4"))
    explanations = explain(small_run[0].run_dir, video, tmp_path, methods=["gradcam", "eigencam"], max_faces=3)
    assert len(explanations) == 6
    scores = [e.p_fake for e in explanations if e.method == "gradcam"]
    assert scores == sorted(scores, reverse=True)
    assert len({(e.frame_index, e.track_id) for e in explanations}) == 3
    # a 64 px model: its heatmaps are still written at 224 px, and one contact sheet shows them all
    assert cv2.imread(str(tmp_path / explanations[0].png)).shape == (224, 224, 3)
    sheet = cv2.imread(str(tmp_path / f"{video.stem}_sheet.png"))
    assert sheet.shape[0] > 3 * 224 and sheet.shape[1] > 3 * 224  # 3 faces x (face + 2 methods), colour bar
    record = json.loads((tmp_path / "explanations.json").read_text())
    assert record["sheet"] == f"{video.stem}_sheet.png" and len(record["explanations"]) == 6


def test_the_cli_says_where_the_index_and_the_sheet_are(small_run, demo_clips, tmp_path):
    import subprocess
    import sys

    video = next((demo_clips / "fake").glob("*.mp4"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "unmask",
            "explain",
            str(small_run[0].run_dir),
            str(video),
            "--out",
            str(tmp_path),
            "--methods",
            "gradcam",
            "--max-faces",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"index of every heatmap: {tmp_path / 'explanations.json'}" in result.stdout
    assert f"contact sheet: {tmp_path / (video.stem + '_sheet.png')}" in result.stdout


def test_errors_and_the_is_crop_escape(small_run, tmp_path):
    run = small_run[0].run_dir
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 120, 3), 127, np.uint8))
    with pytest.raises(NoFaceFoundError, match="No face found in blank.png.*is_crop=True"):
        explain(run, blank, tmp_path / "o1")
    assert len(explain(run, blank, tmp_path / "o2", methods=["gradcam"], is_crop=True)) == 1
    with pytest.raises(UnknownNameError, match="Unknown explanation method 'gradcam\\+'.*Did you mean 'gradcam\\+\\+'"):
        explain(run, blank, tmp_path / "o3", methods=["gradcam+"])
    write_video(tmp_path / "empty.mp4", [np.full((96, 128, 3), 60, np.uint8)] * 4)
    with pytest.raises(NoFaceFoundError, match="No face found in empty.mp4 \\(4 frames looked at\\)"):
        explain(run, tmp_path / "empty.mp4", tmp_path / "o4")


def test_smoothgrad_maps_are_reproducible(small_run):
    import torch

    from unmask.explain import explain_batch
    from unmask.decision.checkpoint import load_classifier

    model, _ = load_classifier(small_run[0].run_dir)
    x = torch.randn(2, 3, 64, 64)
    np.testing.assert_array_equal(explain_batch(model, x, "smoothgrad"), explain_batch(model, x, "smoothgrad"))


class _PatchModel:
    """A classifier whose only evidence for "fake" is red in the image: its heatmap must sit there."""

    @staticmethod
    def build():
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                conv = nn.Conv2d(3, 2, 3, padding=1, bias=False)
                with torch.no_grad():
                    conv.weight.zero_()
                    conv.weight[0, 0, 1, 1], conv.weight[0, 1, 1, 1], conv.weight[0, 2, 1, 1] = 2.0, -1.0, -1.0
                    conv.weight[1, :, 1, 1] = 0.01  # a second, uninformative channel
                self.features = nn.Sequential(conv, nn.ReLU())
                self.cam_layer = self.features
                self.head = nn.Linear(2, 2)
                with torch.no_grad():
                    self.head.weight.copy_(torch.tensor([[0.0, 0.0], [50.0, 0.0]]))
                    self.head.bias.zero_()

            def forward(self, x):
                return self.head(self.features(x).mean((2, 3)))

        return Net().eval()


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "hirescam", "layercam", "smoothgrad"])
def test_heatmaps_point_at_the_patch_the_model_keys_on(method):
    import torch

    from unmask.explain import explain_batch

    model = _PatchModel.build()
    x = torch.full((2, 3, 32, 32), 0.6)
    x[:, 0] = 0.3  # a greenish-grey background: no red evidence anywhere but in the patches
    patches = [(slice(4, 12), slice(20, 28)), (slice(22, 30), slice(3, 11))]  # a different place per image
    for i, (rows, cols) in enumerate(patches):
        x[i, 0, rows, cols] = 1.0
    maps = explain_batch(model, x, method)
    for i, (rows, cols) in enumerate(patches):
        inside = np.zeros((32, 32), bool)
        inside[rows, cols] = True
        peak = np.unravel_index(np.argmax(maps[i]), maps[i].shape)
        assert inside[peak], (method, i, peak)
        assert maps[i][inside].mean() > 3 * maps[i][~inside].mean(), method


def test_num_frames_sets_how_many_frames_of_a_video_are_looked_at(small_run, demo_clips, tmp_path):
    video = next((demo_clips / "fake").glob("*.mp4"))
    few = explain(small_run[0].run_dir, video, tmp_path / "few", methods=["gradcam"], max_faces=20, num_frames=3)
    assert len({e.frame_index for e in few}) == 3
    more = explain(small_run[0].run_dir, video, tmp_path / "more", methods=["gradcam"], max_faces=20, num_frames=6)
    assert len({e.frame_index for e in more}) == 6


def test_a_given_crop_cut_unlike_the_training_crops_is_warned_about(tmp_path, caplog):
    from unmask.predict.explanation import warn_crop_file_differences

    trained = {"size": 64, "margin": 1.3, "image_format": "png"}
    for name, shape in (("same.png", (64, 64, 3)), ("big.jpg", (100, 100, 3)), ("wide.png", (48, 64, 3))):
        cv2.imwrite(str(tmp_path / name), np.full(shape, 128, np.uint8))
    with caplog.at_level("WARNING", logger="unmask.explain"):
        assert warn_crop_file_differences(tmp_path / "same.png", trained) == []
        assert warn_crop_file_differences(tmp_path / "big.jpg", trained) == [
            "size 100 px, not 64 px as in training",
            "format jpg, not png as in training",
        ]
        assert warn_crop_file_differences(tmp_path / "wide.png", trained) == ["64x48 px, not square as in training"]
    assert caplog.text.count("was cut unlike the run's training crops") == 2


def test_a_flat_map_has_no_faithfulness_and_a_pointing_map_has_one():
    import torch

    from unmask.explain import deletion_faithfulness, explain_batch

    model = _PatchModel.build()
    x = torch.full((2, 3, 32, 32), 0.6)
    x[:, 0] = 0.3
    x[:, 0, 4:12, 20:28] = 1.0
    pointing = explain_batch(model, x, "gradcam")
    flat = np.zeros_like(pointing)  # what Grad-CAM gives when it finds no evidence for fake anywhere
    scores = deletion_faithfulness(model, x, np.stack([pointing[0], flat[1]]))
    assert scores[0] > 0 and np.isnan(scores[1])


def test_smoothgrad_is_drawn_smoothed_not_as_a_checkerboard():
    import torch

    from unmask.explain.cam import smoothgrad_display

    yy, xx = np.mgrid[:64, :64]
    blob = np.exp(-((yy - 40) ** 2 + (xx - 20) ** 2) / (2 * 6.0**2))
    checker = np.where((yy + xx) % 2 == 0, 1.8, -0.2)  # the stride artefact: strong and weak pixels alternate
    gradients = torch.tensor(np.stack([blob * checker] * 3)[None], dtype=torch.float32)
    shown = smoothgrad_display(gradients)[0]
    assert np.unravel_index(np.argmax(shown), shown.shape) == (40, 20)
    raw = np.abs(blob * checker)
    assert np.abs(np.diff(raw, axis=1)).max() > 0.5 * raw.max()  # the raw map: a checkerboard
    assert np.abs(np.diff(shown, axis=1)).max() < 0.1 * shown.max()  # drawn: neighbours differ little
    assert np.corrcoef(shown.ravel(), blob.ravel())[0, 1] > 0.95  # and it still shows where the evidence is
