"""Stage 4: the detectors' networks: a registry of backbones, the paper's head, one preprocessing.

Names are imported when first used: the registry imports torch and timm, which a record's
reader (:mod:`unmask.models.spec`) and the numpy preprocessing must not pull in.
"""

from unmask._lazy import lazy_exports

_EXPORTS = {
    "BACKBONES": "unmask.models.registry",
    "BackboneSpec": "unmask.models.spec",
    "DeepfakeClassifier": "unmask.models.registry",
    "build_transform": "unmask.models.transforms",
    "create_model": "unmask.models.registry",
    "get_spec": "unmask.models.registry",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
