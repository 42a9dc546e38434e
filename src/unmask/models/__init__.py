"""Stage 4: the detectors' networks: a registry of backbones, the paper's head, one preprocessing."""

from unmask.models.registry import BACKBONES, BackboneSpec, DeepfakeClassifier, create_model, get_spec
from unmask.models.transforms import build_transform

__all__ = ["BACKBONES", "BackboneSpec", "DeepfakeClassifier", "build_transform", "create_model", "get_spec"]
