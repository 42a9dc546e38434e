"""Self-blended images: where they change a face, how much, and training on real videos alone."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from unmask.data.manifest import read_manifest, write_manifest
from unmask.errors import UnmaskError
from unmask.faces.crop import square_box
from unmask.training.config import make_config
from unmask.training.sbi import SBI_METHOD, SelfBlend, SelfBlendTwins, face_ellipses, with_blended_twins
from unmask.training.trainer import train

QUICK = dict(pretrained=False, size=64, batch_size=8, workers=0, epochs=1)


def _faces(n: int = 6, size: int = 96, seed: int = 0) -> torch.Tensor:
    """Textured images (a blend must change them visibly wherever its mask is)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, size // 8, size // 8, generator=g) * 255
    return torch.nn.functional.interpolate(base, size=size, mode="nearest").round().to(torch.uint8)


def test_blend_changes_the_face_only_inside_its_mask():
    x = _faces()
    ellipses = torch.tensor([[48.0, 46.0, 22.0, 28.0, 0.2]]).repeat(len(x), 1)
    out, masks = SelfBlend(torch.Generator().manual_seed(1))(x, ellipses, return_masks=True)
    changed = (out != x).any(1, keepdim=True)
    assert not changed[masks == 0].any()  # outside the mask: the real crop, bit for bit
    assert (masks == 0).float().mean() > 0.3  # and the outside is most of the crop's border
    inside = masks > 0.5
    assert changed[inside].float().mean() > 0.5  # the pseudo-fake is not the real
    assert not torch.equal(out, x)


def test_masks_lie_on_the_ellipse_they_are_given():
    blend = SelfBlend(torch.Generator().manual_seed(0))
    ellipses = torch.tensor([[30.0, 60.0, 12.0, 16.0, 0.0], [70.0, 30.0, 12.0, 16.0, 0.0]])
    masks = blend.masks(ellipses, 96)
    for mask, (cx, cy, *_) in zip(masks[:, 0], ellipses.tolist()):
        ys, xs = torch.nonzero(mask > 0, as_tuple=True)
        assert abs(float(xs.float().mean()) + 0.5 - cx) < 4 and abs(float(ys.float().mean()) + 0.5 - cy) < 4
        assert mask[int(cy), int(cx)] > 0.2  # a blend ratio is at least 0.25
        assert mask[0, 0] == 0 and mask[-1, -1] == 0


def test_same_seed_same_pseudo_fakes():
    x, e = _faces(), torch.tensor([[48.0, 46.0, 22.0, 28.0, 0.0]]).repeat(6, 1)
    a = SelfBlend(torch.Generator().manual_seed(3))(x, e)
    b = SelfBlend(torch.Generator().manual_seed(3))(x, e)
    c = SelfBlend(torch.Generator().manual_seed(4))(x, e)
    assert torch.equal(a, b) and not torch.equal(a, c)


def _row(box, landmarks, frame=(640, 480), margin=1.3, recorded=True):
    row = {"x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3]}
    names = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]
    for name, (x, y) in zip(names, landmarks or [(math.nan, math.nan)] * 5):
        row[f"{name}_x"], row[f"{name}_y"] = x, y
    if recorded:
        row.update(zip(["crop_x1", "crop_y1", "crop_x2", "crop_y2"], square_box(box, frame, margin)))
    return row


def test_ellipses_follow_the_landmarks_into_the_crop():
    # A face box 100 px wide in a frame; its crop square is 130 px, cut at 224 px.
    box = (200.0, 100.0, 300.0, 220.0)
    eyes = [(230.0, 140.0), (270.0, 140.0)]
    mouth = [(235.0, 190.0), (265.0, 190.0)]
    rows = pd.DataFrame([_row(box, [*eyes, (250.0, 165.0), *mouth])])
    cx, cy, half_w, half_h, roll = face_ellipses(rows, 224)[0]
    left, top, right, _ = square_box(box, (640, 480), 1.3)
    scale = 224 / (right - left)
    assert cx == pytest.approx((250 - left) * scale, abs=0.5)
    assert cy == pytest.approx((165 - 0.1 * 50 - top) * scale, abs=0.5)  # a little above the eye-mouth midpoint
    assert half_h == pytest.approx(1.25 * 50 * scale, rel=1e-4) and half_w == pytest.approx(1.05 * 40 * scale, rel=1e-4)
    assert roll == pytest.approx(0.0, abs=1e-6)
    # A face turned by 30 degrees turns its ellipse; eyes named the other way round change nothing.
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    turned = [
        (250 + (x - 250) * c - (y - 165) * s, 165 + (x - 250) * s + (y - 165) * c)
        for x, y in [*eyes, (250.0, 165.0), *mouth]
    ]
    swapped = [turned[1], turned[0], *turned[2:]]
    rolls = face_ellipses(pd.DataFrame([_row(box, turned), _row(box, swapped)]), 224)[:, 4]
    assert rolls == pytest.approx([math.radians(30)] * 2, abs=1e-4)


def test_ellipses_without_landmarks_or_recorded_square():
    box = (200.0, 100.0, 300.0, 220.0)
    no_points = face_ellipses(pd.DataFrame([_row(box, None)]), 224)[0]
    assert no_points[:2] == pytest.approx([112, 112], abs=0.5)  # the box's centre is the crop's
    # An older manifest without the crop square: rebuilt around the box (right away from the frame's edge).
    points = [(230.0, 140.0), (270.0, 140.0), (250.0, 165.0), (235.0, 190.0), (265.0, 190.0)]
    recorded = face_ellipses(pd.DataFrame([_row(box, points)]), 224)
    rebuilt = face_ellipses(pd.DataFrame([_row(box, points, recorded=False)]), 224)
    assert rebuilt == pytest.approx(recorded, abs=0.6)


def test_twins_are_added_for_real_crops_only():
    x, y = _faces(8), torch.tensor([0, 1, 0, 1, 0, 0, 1, 1])
    ellipses = np.tile(np.array([[48, 46, 22, 28, 0]], np.float32), (20, 1))
    twins = SelfBlendTwins(ellipses, 1.0, torch.Generator().manual_seed(0))
    out, labels, positions = twins(x, y, torch.arange(10, 18))
    assert out.shape[0] == 12 and labels.tolist() == [*y.tolist(), 1, 1, 1, 1]
    assert positions.tolist() == [*range(10, 18), 10, 12, 14, 15]  # each twin where its real is
    assert torch.equal(out[:8], x)
    assert not any(torch.equal(out[8 + i], x[j]) for i, j in enumerate([0, 2, 4, 5]))
    half = SelfBlendTwins(ellipses, 0.5, torch.Generator().manual_seed(0))
    counts = [len(half(x, y, torch.arange(8))[1]) - 8 for _ in range(200)]
    assert 1.7 < np.mean(counts) < 2.3  # half of the 4 reals, on average


@pytest.fixture(scope="module")
def real_only(prepared, tmp_path_factory):
    """The demo crops' real videos alone, in a data folder of their own."""
    manifest, meta = read_manifest(prepared)
    out = tmp_path_factory.mktemp("real-only")
    (out / "crops").symlink_to(prepared / "crops")
    write_manifest(manifest[manifest["label"] == 0].reset_index(drop=True), out / "manifest.parquet", meta)
    return out


def test_training_on_real_videos_alone_with_self_blended_fakes(real_only, tmp_path):
    with pytest.raises(UnmaskError, match="no fake"):
        train(real_only, tmp_path / "plain", make_config(model="mobilenetv3_small", synthesize="none", **QUICK))
    result = train(real_only, tmp_path / "sbi", make_config(model="mobilenetv3_small", synthesize="sbi", **QUICK))
    config = json.loads((tmp_path / "sbi" / "config.json").read_text())
    data = config["data"]
    assert data["val_self_blended"] == data["val_crops"] // 2 > 0  # a twin for each real validation crop
    assert config["config"]["synthesize"] == "sbi"
    assert math.isfinite(result.best_metric)  # validation AUC: reals against their twins
    assert result.checkpoint.is_file()


def test_real_only_trains_on_the_real_videos_and_validates_on_the_datas_fakes(prepared, tmp_path):
    manifest, _ = read_manifest(prepared)
    train_split = manifest[manifest["split_video"] == "train"]
    val_split = manifest[manifest["split_video"] == "val"]
    with pytest.raises(UnmaskError, match="needs synthesize sbi"):
        make_config(model="mobilenetv3_small", synthesize="none", real_only=True, **QUICK)
    train(prepared, tmp_path / "run", make_config(model="mobilenetv3_small", synthesize="sbi", real_only=True, **QUICK))
    data = json.loads((tmp_path / "run" / "config.json").read_text())["data"]
    assert data["train_crops"] == int((train_split["label"] == 0).sum()) < len(train_split)
    assert data["val_crops"] == len(val_split) and data["val_self_blended"] == 0  # its own fakes: no twins


def test_validation_twins_are_fixed_and_labelled(prepared):
    from unmask.models import get_spec
    from unmask.models.transforms import build_resize
    from unmask.data.crops import CropDataset

    manifest, _ = read_manifest(prepared)
    rows = manifest[manifest["label"] == 0].head(5).reset_index(drop=True)
    dataset = CropDataset(rows, prepared, build_resize(get_spec("mobilenetv3_small"), 64))
    a, rows_a = with_blended_twins(dataset, rows, seed=7)
    b, _ = with_blended_twins(dataset, rows, seed=7)
    assert len(a) == 10 and torch.equal(a.images, b.images)
    assert rows_a["label"].tolist() == [0] * 5 + [1] * 5
    assert (rows_a["method"].iloc[5:] == SBI_METHOD).all()
    assert rows_a["video_id"].iloc[5].endswith("#sbi")


def test_the_default_preset_blends_and_the_paper_preset_does_not():
    assert make_config().synthesize == "sbi" and not make_config().real_only
    assert make_config("paper", model="xception").synthesize == "none"


def test_a_run_recorded_before_a_setting_existed_keeps_what_it_did():
    import dataclasses

    from unmask.training.config import config_from_recorded

    recorded = json.loads(json.dumps(dataclasses.asdict(make_config())))
    for added in ("freeze_stages", "synthesize", "sbi_ratio"):
        del recorded[added]
    old = config_from_recorded(recorded)  # a resume or a repeat of it must not freeze or blend what it never did
    assert (old.freeze_stages, old.synthesize, old.sbi_ratio) == (0, "none", 1.0)
    assert make_config().freeze_stages == 3 and make_config("paper", model="xception").freeze_stages == 0


def test_settings_are_checked():
    with pytest.raises(UnmaskError, match="synthesizer"):
        make_config(synthesize="blend")
    with pytest.raises(UnmaskError, match="sbi_ratio"):
        make_config(synthesize="sbi", sbi_ratio=0.0)
